/*
 * Shared between http.c (blocking) and multi.c (event loop): one transfer is
 * an http_xfer, set up and finished by the same code on both paths so that
 * options and error mapping are identical. Not part of the public API.
 */
#ifndef SCEPD_HTTP_INTERNAL_H
#define SCEPD_HTTP_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "util/buf.h"

#define HTTP_PIN_LEN 32 /* SHA-256 */

typedef enum http_pin_state {
    HTTP_PIN_UNCHECKED = 0,
    HTTP_PIN_OK,
    HTTP_PIN_MISMATCH,  /* no presented certificate has the fingerprint */
    HTTP_PIN_CHAIN_BAD, /* it has, but the chain does not verify up to it */
} http_pin_state;

typedef struct http_xfer {
    CURL *easy;
    struct curl_slist *headers;
    char *host;  /* for error details; never the query */
    char *query; /* scrubbed from curl's error text */
    util_buf body;
    char *server;    /* Server: of the current response */
    bool in_headers; /* between a status line and its blank line */
    bool too_large;
    bool oom;
    bool explicit_proxy;
    char proxy_name[256]; /* the configured proxy without user and password */
    bool has_pin;
    bool pin_check_host; /* the pinned chain must also name the URL's host */
    uint8_t pin[HTTP_PIN_LEN];
    http_pin_state pin_state;
    int pin_verify_error; /* X509_V_ERR_* when HTTP_PIN_CHAIN_BAD */
    char errbuf[CURL_ERROR_SIZE];
} http_xfer;

/* Builds a configured easy handle. body/len/content_type are used when post. */
int http_xfer_new(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                  const char *content_type, http_xfer **out, util_error *err) MUST_CHECK;
/* Turns curl's result into a response (any status) or a catalogue error. */
int http_xfer_finish(http_xfer *x, CURLcode rc, http_response *out, util_error *err) MUST_CHECK;
void http_xfer_free(http_xfer *x);

#endif
