/* Fault injection: --fault NAME[:ARG][@PROBABILITY]. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ca/internal.h"
#include "crypto/issue.h"

static const struct {
    const char *name;
    bool takes_arg;
    bool needs_arg;
    long default_arg;
} fault_table[CA_FAULT_COUNT] = {
    [CA_FAULT_DELAY] = {"delay", true, true, 0},
    [CA_FAULT_DROP] = {"drop", false, false, 0},
    [CA_FAULT_RESET] = {"reset", false, false, 0},
    [CA_FAULT_TRUNCATE] = {"truncate", false, false, 0},
    [CA_FAULT_GARBAGE] = {"garbage", false, false, 0},
    [CA_FAULT_HTTP] = {"http", true, true, 0},
    [CA_FAULT_WRONG_CONTENT_TYPE] = {"wrong-content-type", false, false, 0},
    [CA_FAULT_BAD_SIGNATURE] = {"bad-signature", false, false, 0},
    [CA_FAULT_WRONG_SIGNER] = {"wrong-signer", false, false, 0},
    [CA_FAULT_WRONG_TRANSACTION_ID] = {"wrong-transaction-id", false, false, 0},
    [CA_FAULT_WRONG_RECIPIENT_NONCE] = {"wrong-recipient-nonce", false, false, 0},
    [CA_FAULT_EXPIRED_RA] = {"expired-ra", false, false, 0},
    [CA_FAULT_PENDING_FOREVER] = {"pending-forever", false, false, 0},
    [CA_FAULT_SLOW_DRIP] = {"slow-drip", true, false, 2},
};

#define FAULT_MAX_DELAY_MS 600000L

const char *ca_fault_name(ca_fault_kind kind)
{
    return kind < CA_FAULT_COUNT ? fault_table[kind].name : "?";
}

static int parse_probability(const char *text, double *out, util_error *err)
{
    char *end = NULL;
    errno = 0;
    double p = strtod(text, &end);
    if (errno || end == text || *end || !(p > 0.0 && p <= 1.0))
        return util_error_set(err, UTIL_ERR_USAGE, "fault probability '%s' must be a number in (0, 1]", text);
    *out = p;
    return 0;
}

static int parse_arg(ca_fault_kind kind, const char *text, long *out, util_error *err)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end)
        return util_error_set(err, UTIL_ERR_USAGE, "fault %s: '%s' is not a number", fault_table[kind].name,
                              text);
    if (kind == CA_FAULT_HTTP && (v < 100 || v > 599))
        return util_error_set(err, UTIL_ERR_USAGE, "fault http:%ld: not an HTTP status", v);
    if (kind != CA_FAULT_HTTP && (v < 0 || v > FAULT_MAX_DELAY_MS))
        return util_error_set(err, UTIL_ERR_USAGE, "fault %s:%ld: 0 to %ld milliseconds",
                              fault_table[kind].name, v, FAULT_MAX_DELAY_MS);
    *out = v;
    return 0;
}

int ca_fault_parse(const char *spec, ca_fault *out, util_error *err)
{
    char buf[128];
    if (strlen(spec) >= sizeof buf)
        return util_error_set(err, UTIL_ERR_USAGE, "fault '%.40s...' is too long", spec);
    snprintf(buf, sizeof buf, "%s", spec);
    ca_fault f = {.probability = 1.0};
    char *at = strchr(buf, '@');
    if (at) {
        *at = '\0';
        if (parse_probability(at + 1, &f.probability, err) != 0)
            return -1;
    }
    char *colon = strchr(buf, ':');
    if (colon)
        *colon = '\0';
    size_t k = 0;
    while (k < CA_FAULT_COUNT && strcmp(fault_table[k].name, buf) != 0)
        k++;
    if (k == CA_FAULT_COUNT)
        return util_error_set(err, UTIL_ERR_USAGE, "unknown fault '%s' (see scepca --help)", buf);
    f.kind = (ca_fault_kind)k;
    f.arg = fault_table[k].default_arg;
    if (colon && !fault_table[k].takes_arg)
        return util_error_set(err, UTIL_ERR_USAGE, "fault %s takes no argument", buf);
    if (!colon && fault_table[k].needs_arg)
        return util_error_set(err, UTIL_ERR_USAGE, "fault %s needs an argument (%s:N)", buf, buf);
    if (colon && parse_arg(f.kind, colon + 1, &f.arg, err) != 0)
        return -1;
    *out = f;
    return 0;
}

static bool roll(double p)
{
    if (p >= 1.0)
        return true;
    uint8_t b[4];
    util_error ignored;
    if (crypto_ca_random_bytes(b, sizeof b, &ignored) != 0)
        return false;
    uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return (double)v / 4294967296.0 < p;
}

void ca_fault_roll(const ca_config *cfg, ca_fault_set *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < cfg->fault_count && i < CA_MAX_FAULTS; i++) {
        const ca_fault *f = &cfg->faults[i];
        if (f->kind >= CA_FAULT_COUNT || !roll(f->probability))
            continue;
        out->on[f->kind] = true;
        out->arg[f->kind] = f->arg;
    }
}

static void garbage(ca_http_response *resp)
{
    uint8_t junk[512];
    util_error ignored;
    if (crypto_ca_random_bytes(junk, sizeof junk, &ignored) != 0)
        memset(junk, 0xa5, sizeof junk);
    junk[0] = 0x04; /* not a SEQUENCE, so never mistaken for DER */
    (void)ca_response_set_body(resp, junk, sizeof junk);
}

void ca_fault_apply_reply(const ca_fault_set *f, ca_http_response *resp)
{
    if (f->on[CA_FAULT_GARBAGE])
        garbage(resp);
    if (f->on[CA_FAULT_HTTP]) {
        int code = (int)f->arg[CA_FAULT_HTTP];
        ca_response_text(resp, code, "scepca fault injection: http\n");
    }
    if (f->on[CA_FAULT_WRONG_CONTENT_TYPE])
        resp->content_type = "text/html; charset=utf-8";
    if (f->on[CA_FAULT_DELAY])
        resp->delay_ms = f->arg[CA_FAULT_DELAY];
    if (f->on[CA_FAULT_DROP])
        resp->conn_faults |= CA_CONN_DROP;
    if (f->on[CA_FAULT_RESET])
        resp->conn_faults |= CA_CONN_RESET;
    if (f->on[CA_FAULT_TRUNCATE])
        resp->conn_faults |= CA_CONN_TRUNCATE;
    if (f->on[CA_FAULT_SLOW_DRIP]) {
        resp->conn_faults |= CA_CONN_SLOW_DRIP;
        resp->drip_ms = f->arg[CA_FAULT_SLOW_DRIP];
    }
}
