/* The per-profile constants of scepca (see profile.c). */
#ifndef SCEPD_CA_PROFILE_H
#define SCEPD_CA_PROFILE_H

#include <stddef.h>

#include "ca/ca.h"

typedef enum ca_post_mode {
    CA_POST_OK = 0,
    CA_POST_EMPTY_200, /* IIS 8.x: POST answered with an empty 200 (cryptlib) */
    CA_POST_REFUSED,   /* IIS 7.x: GET only */
} ca_post_mode;

typedef struct ca_profile_info {
    const char *name;
    const char *server;            /* Server: header */
    const char *caps;              /* GetCACaps body, exactly */
    const char *caps_content_type; /* NULL: none (old NDES) */
    ca_post_mode post;
    size_t default_max_query; /* IIS maxQueryString, or our own cap */
    int too_long_status;      /* IIS request filtering: 404 (404.15) */
} ca_profile_info;

const ca_profile_info *ca_profile_get(ca_profile p);

#endif
