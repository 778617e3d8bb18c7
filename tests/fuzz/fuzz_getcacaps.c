/* GetCACaps bodies: parse, format, and parse the formatted text again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scep/scep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scep_caps caps, again;
    scep_caps_parse(data, size, &caps);
    if (caps.unknown_count > SCEP_CAPS_MAX_UNKNOWN)
        abort();
    static char out[16384];
    scep_caps_format(&caps, out, sizeof out);
    /* what we print reads back the same */
    scep_caps_parse((const uint8_t *)out, strlen(out), &again);
    if (again.flags != caps.flags || again.unknown_count != caps.unknown_count)
        abort();
    char small[24];
    scep_caps_format(&caps, small, sizeof small);
    if (strlen(small) >= sizeof small || strncmp(small, out, strlen(small)) != 0)
        abort();
    (void)scep_caps_has(&caps, SCEP_CAP_AES | SCEP_CAP_SHA256);
    scep_caps_clear(&again);
    scep_caps_clear(&caps);
    return 0;
}
