/* Text that came from the network (server headers and bodies, certificate
 * and CSR fields, user input) is escaped before it reaches a log, an API
 * error detail or a terminal: control characters (C0, DEL, C1) become
 * \n, \r, \t, \xHH or \u00HH, a backslash becomes \\, and bytes that are not
 * UTF-8 become \xHH. Printable UTF-8 passes unchanged. */
#ifndef SCEPD_UTIL_ESCAPE_H
#define SCEPD_UTIL_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Escapes len bytes of in into out (out_size >= 1), always NUL-terminated;
 * what does not fit is cut at a character boundary and marked "...".
 * Returns out. */
char *util_escape(const char *in, size_t len, char *out, size_t out_size);
/* The escaped copy of a string (malloc'd; NULL when out of memory). */
char *util_escape_dup(const char *in);
/* True when util_escape would change the string. */
bool util_escape_needed(const char *in, size_t len);

#include <stdio.h>
/* A stream that writes into raw with control characters escaped as above,
 * except that line feeds and tabs pass (and backslashes stay single): for a
 * program's whole terminal output. raw is flushed after each write and is
 * not closed with the stream. NULL when out of memory. */
FILE *util_escape_stream(FILE *raw);

#endif
