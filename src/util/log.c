#include "util/log.h"

#include "util/escape.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

/* The logging configuration is process-wide by nature (like syslog itself);
 * it is written once by main() before any thread starts. */
static struct {
    const char *ident;
    util_log_level level;
    bool syslog;
} log_config = {"scepd", UTIL_LOG_INFO, false};

void util_log_setup(const char *ident, util_log_level level, bool use_syslog)
{
    log_config.ident = ident;
    log_config.level = level;
    log_config.syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

void util_log(util_log_level level, const char *fmt, ...)
{
    if (level > log_config.level)
        return;
    static const char *names[] = {"error", "warning", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char raw[2048], msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* messages carry peer-supplied text (headers, bodies, names): no
     * control character reaches a terminal or a log viewer raw */
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof raw ? sizeof raw - 1 : (size_t)n;
    util_escape(raw, len, msg, sizeof msg);
    if (log_config.syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s %s[%s] %s\n", stamp, log_config.ident, names[level], msg);
}
