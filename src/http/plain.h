/*
 * Plain HTTP over libevent's HTTP client, for the blocking requests
 * (http_get, http_post): an http:// URL with no proxy and no trace needs
 * nothing of libcurl's, and a process that never loads libcurl starts about
 * 5 ms faster (docs/architecture.md, "libcurl and start-up time").
 * Not part of the public API.
 */
#ifndef SCEPD_HTTP_PLAIN_H
#define SCEPD_HTTP_PLAIN_H

#include "http/http.h"

/* Whether this request can go the plain way: http://, no user in the URL,
 * no proxy (neither in o nor in the environment libcurl reads), no trace. */
bool http_plain_eligible(const http_options *o, const char *url);

/* 0: *out has the response (any status); -1: err has a catalogue error
 * (NET_CONNECT, NET_RESOLVE, NET_RESET, NET_TIMEOUT, RESPONSE_TOO_LARGE);
 * 1: the server sent an interim (1xx) reply, which evhttp cannot skip: the
 * request is to be sent again through libcurl. The connection stays open for
 * the next request to the same host and port (docs/internals/http.md). */
int http_plain_perform(const http_options *o, const char *url, bool post, const uint8_t *body, size_t len,
                       const char *content_type, http_response *out, util_error *err) MUST_CHECK;

/* Closes the connection kept open for the next request, if any
 * (http_global_cleanup calls it). */
void http_plain_close_all(void);

#endif
