/* The Remote UI's files, embedded into scepd at build time. */
#ifndef SCEPD_WEB_H
#define SCEPD_WEB_H

#include "api/api.h"

/* NULL when the path names no embedded file. */
const api_static_file *web_lookup(const char *path);

#endif
