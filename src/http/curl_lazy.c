/* libcurl on demand, for scepctl only (meson: http_lazy). scepctl is not
 * linked with libcurl: these definitions of the libcurl functions http.c
 * calls load libcurl.so.4 with dlopen the first time one of them is called,
 * which happens only for HTTPS, a proxy or a trace; plain HTTP goes through
 * plain.c and never maps libcurl and its 25-odd dependencies (about 5 ms of
 * start-up, docs/architecture.md). curl_global_init is remembered and run
 * right after loading. Never link this into a program that links libcurl. */
#define CURL_DISABLE_TYPECHECK /* the type-checking macros would rename our definitions */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define CURL_LIBRARY "libcurl.so.4"

/* One table, filled once: this file's whole state. */
static struct {
    void *handle;
    bool failed;
    long init_flags;
    bool init_wanted;
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURLcode (*easy_perform)(CURL *);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    void (*free)(void *);
    CURLU *(*url)(void);
    CURLUcode (*url_set)(CURLU *, CURLUPart, const char *, unsigned int);
    CURLUcode (*url_get)(CURLU *, CURLUPart, char **, unsigned int);
    void (*url_cleanup)(CURLU *);
    curl_version_info_data *(*version_info)(CURLversion);
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

#define LOAD(field, name)                                                                                    \
    do {                                                                                                     \
        *(void **)&lib.field = dlsym(lib.handle, name);                                                      \
        if (!lib.field)                                                                                      \
            goto fail;                                                                                       \
    } while (0)

static void load(void)
{
    if (!(lib.handle = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL)))
        goto fail;
    LOAD(global_init, "curl_global_init");
    LOAD(global_cleanup, "curl_global_cleanup");
    LOAD(easy_init, "curl_easy_init");
    LOAD(easy_setopt, "curl_easy_setopt");
    LOAD(easy_getinfo, "curl_easy_getinfo");
    LOAD(easy_perform, "curl_easy_perform");
    LOAD(easy_cleanup, "curl_easy_cleanup");
    LOAD(easy_strerror, "curl_easy_strerror");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
    LOAD(free, "curl_free");
    LOAD(url, "curl_url");
    LOAD(url_set, "curl_url_set");
    LOAD(url_get, "curl_url_get");
    LOAD(url_cleanup, "curl_url_cleanup");
    LOAD(version_info, "curl_version_info");
    if (lib.init_wanted && lib.global_init(lib.init_flags) != CURLE_OK)
        goto fail;
    return;
fail:;
    const char *why = dlerror();
    fprintf(stderr, "scepctl: cannot load %s: %s\n", CURL_LIBRARY, why ? why : "initialisation failed");
    lib.failed = true;
}

static bool ready(void)
{
    pthread_once(&lib_once, load);
    return !lib.failed;
}

static bool loaded(void)
{
    return lib.handle && !lib.failed;
}

CURLcode curl_global_init(long flags)
{
    lib.init_flags = flags;
    lib.init_wanted = true;
    return CURLE_OK;
}

void curl_global_cleanup(void)
{
    if (loaded() && lib.init_wanted)
        lib.global_cleanup();
}

CURL *curl_easy_init(void)
{
    return ready() ? lib.easy_init() : NULL;
}

/* One argument of the type the option's number says (curl.h: CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
    if (!ready())
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT)
        rc = lib.easy_setopt(curl, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT)
        rc = lib.easy_setopt(curl, option, va_arg(ap, void *));
    else if (option < CURLOPTTYPE_OFF_T)
        rc = lib.easy_setopt(curl, option, va_arg(ap, void (*)(void)));
    else if (option < CURLOPTTYPE_BLOB)
        rc = lib.easy_setopt(curl, option, va_arg(ap, curl_off_t));
    else
        rc = lib.easy_setopt(curl, option, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
    if (!ready())
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = lib.easy_getinfo(curl, info, va_arg(ap, void *)); /* always a pointer */
    va_end(ap);
    return rc;
}

CURLcode curl_easy_perform(CURL *curl)
{
    return ready() ? lib.easy_perform(curl) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL *curl)
{
    if (loaded())
        lib.easy_cleanup(curl);
}

const char *curl_easy_strerror(CURLcode code)
{
    return ready() ? lib.easy_strerror(code) : "libcurl could not be loaded";
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
    return ready() ? lib.slist_append(list, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
    if (loaded())
        lib.slist_free_all(list);
}

void curl_free(void *p)
{
    if (loaded())
        lib.free(p);
}

CURLU *curl_url(void)
{
    return ready() ? lib.url() : NULL;
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
    return ready() ? lib.url_set(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
    return ready() ? lib.url_get(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

void curl_url_cleanup(CURLU *u)
{
    if (loaded())
        lib.url_cleanup(u);
}

curl_version_info_data *curl_version_info(CURLversion age)
{
    static curl_version_info_data none; /* all NULL and zero: "no TLS backend" */
    return ready() ? lib.version_info(age) : &none;
}
