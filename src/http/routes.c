/* SPDX-License-Identifier: MIT */
/* The route table and path matching. Pure functions; thread-safe. */
#include "http/routes.h"
#include "util/alloc.h"
#include "util/hex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIB 1024u
#define BIG_BODY ((size_t)-1) /* publish: limited by the server's event/batch limits */

static const hr_route_t routes[] = {
    {"POST", "/v1/buses/{}/events", hr_h_publish, BIG_BODY},
    {"GET", "/v1/buses/{}/events", hr_h_read, 0},
    {"GET", "/v1/buses/{}/stream", hr_h_stream, 0},
    {"GET", "/v1/buses/{}/events/{}/trace", hr_h_trace, 0},
    {"GET", "/v1/buses/{}/deadletters", hr_h_deadletters, 0},
    {"POST", "/v1/buses/{}/deadletters/redrive", hr_h_redrive, 64 * KIB},
    {"PUT", "/v1/triggers/{}", hr_h_trigger_put, 1024 * KIB},
    {"GET", "/v1/triggers/{}", hr_h_trigger_get, 0},
    {"DELETE", "/v1/triggers/{}", hr_h_trigger_delete, 0},
    {"GET", "/v1/triggers", hr_h_trigger_list, 0},
    {"POST", "/v1/triggers/{}/replay", hr_h_trigger_replay, 64 * KIB},
    {"POST", "/v1/filters/test", hr_h_filter_test, 2048 * KIB},
    {"PUT", "/v1/buses/{}", hr_h_bus_put, 64 * KIB},
    {"GET", "/v1/buses/{}", hr_h_bus_get, 0},
    {"DELETE", "/v1/buses/{}", hr_h_bus_delete, 0},
    {"GET", "/v1/buses", hr_h_bus_list, 0},
    {"GET", "/healthz", hr_h_health, 0},
    {"HEAD", "/healthz", hr_h_health, 0},
};

/* Percent-decodes one path segment; NULL when malformed or when it decodes to '/' or NUL. */
static char *decode_segment(const char *s, size_t n)
{
    char *out = hr_xmalloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h = i + 2 < n ? hr_hexval(s[i + 1]) : -1;
            int l = i + 2 < n ? hr_hexval(s[i + 2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0) || (h == 2 && l == 15)) {
                free(out);
                return NULL;
            }
            out[j++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[j++] = s[i];
        }
    }
    out[j] = '\0';
    return out;
}

/* Matches path against pattern; on success fills params. */
static bool match(const char *pattern, const char *path, char **params, size_t *n_params)
{
    size_t np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(s, '/');
            size_t len = end ? (size_t)(end - s) : strlen(s);
            if (len == 0 || np == HR_ROUTE_MAX_PARAMS) {
                goto fail;
            }
            char *seg = decode_segment(s, len);
            if (seg == NULL) {
                goto fail;
            }
            params[np++] = seg;
            s += len;
            p += 2;
        } else if (*p == *s) {
            p++;
            s++;
        } else {
            goto fail;
        }
    }
    if (*p == '\0' && *s == '\0') {
        *n_params = np;
        return true;
    }
fail:
    for (size_t i = 0; i < np; i++) {
        free(params[i]);
        params[i] = NULL;
    }
    return false;
}

const hr_route_t *hr_routes_match(const char *method, const char *path, char **params,
                                  size_t *n_params, bool *path_known)
{
    return hr_routes_match_allow(method, path, params, n_params, path_known, NULL, 0);
}

const hr_route_t *hr_routes_match_allow(const char *method, const char *path, char **params,
                                        size_t *n_params, bool *path_known, char *allow,
                                        size_t allow_size)
{
    size_t allow_len = 0;
    if (allow && allow_size) {
        allow[0] = '\0';
    }
    *path_known = false;
    *n_params = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t np = 0;
        char *tmp[HR_ROUTE_MAX_PARAMS] = {0};
        if (!match(routes[i].pattern, path, tmp, &np)) {
            continue;
        }
        if (strcmp(routes[i].method, method) == 0) {
            memcpy(params, tmp, sizeof tmp);
            *n_params = np;
            return &routes[i];
        }
        *path_known = true;
        if (allow && allow_len + strlen(routes[i].method) + 3 < allow_size) {
            allow_len += (size_t)snprintf(allow + allow_len, allow_size - allow_len, "%s%s",
                                          allow_len ? ", " : "", routes[i].method);
        }
        for (size_t k = 0; k < np; k++) {
            free(tmp[k]);
        }
    }
    return NULL;
}
