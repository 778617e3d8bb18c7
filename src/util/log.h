/* Logging to stderr or syslog. Never pass secrets: callers log names, codes
 * and fingerprints, not passwords or keys. */
#ifndef SCEPD_UTIL_LOG_H
#define SCEPD_UTIL_LOG_H

#include <stdbool.h>

typedef enum util_log_level {
    UTIL_LOG_ERROR = 0,
    UTIL_LOG_WARN,
    UTIL_LOG_INFO,
    UTIL_LOG_DEBUG
} util_log_level;

/* Set once from main(); defaults: stderr, INFO. */
void util_log_setup(const char *ident, util_log_level level, bool use_syslog);
void util_log(util_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) util_log(UTIL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) util_log(UTIL_LOG_WARN, __VA_ARGS__)
#define log_info(...) util_log(UTIL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) util_log(UTIL_LOG_DEBUG, __VA_ARGS__)

#endif
