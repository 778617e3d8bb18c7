/* What each emulated server looks like from the client's side. */
#include <string.h>

#include "ca/profile.h"

static const ca_profile_info profiles[] = {
    [CA_PROFILE_GENERIC] =
        {
            .name = "generic",
            .server = "scepca/" SCEPD_VERSION,
            .caps = "AES\nDES3\nGetNextCACert\nPOSTPKIOperation\nRenewal\nSHA-1\nSHA-256\nSHA-512\n"
                    "SCEPStandard\n",
            .caps_content_type = "text/plain",
            .post = CA_POST_OK,
            .default_max_query = 65536,
            .too_long_status = 414,
        },
    [CA_PROFILE_NDES2008R2] =
        {
            .name = "ndes2008r2",
            .server = "Microsoft-IIS/7.5",
            .caps = "", /* no KB2483564: an empty reply */
            .caps_content_type = NULL,
            .post = CA_POST_REFUSED,
            .default_max_query = 2048,
            .too_long_status = 404,
        },
    [CA_PROFILE_NDES2012R2] =
        {
            .name = "ndes2012r2",
            .server = "Microsoft-IIS/8.5",
            .caps = "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3",
            .caps_content_type = "text/plain",
            .post = CA_POST_EMPTY_200,
            .default_max_query = 2048,
            .too_long_status = 404,
        },
    [CA_PROFILE_NDES2016] =
        {
            .name = "ndes2016",
            .server = "Microsoft-IIS/10.0",
            .caps = "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3",
            .caps_content_type = "text/plain",
            .post = CA_POST_OK,
            .default_max_query = 2048,
            .too_long_status = 404,
        },
};

const ca_profile_info *ca_profile_get(ca_profile p)
{
    if ((int)p < 0 || (size_t)p >= sizeof profiles / sizeof profiles[0])
        return &profiles[CA_PROFILE_GENERIC];
    return &profiles[p];
}

int ca_profile_parse(const char *name, ca_profile *out)
{
    for (size_t i = 0; i < sizeof profiles / sizeof profiles[0]; i++)
        if (strcmp(profiles[i].name, name) == 0) {
            *out = (ca_profile)i;
            return 0;
        }
    return -1;
}

const char *ca_profile_name(ca_profile p)
{
    return ca_profile_get(p)->name;
}

bool ca_profile_is_ndes(ca_profile p)
{
    return p != CA_PROFILE_GENERIC;
}
