/* SPDX-License-Identifier: MIT */
/* The route table: method + path pattern → handler. Patterns use "{}" for one path segment. */
#ifndef HR_HTTP_ROUTES_H
#define HR_HTTP_ROUTES_H

#include "http/server.h"

#define HR_ROUTE_MAX_PARAMS 4

typedef void (*hr_handler_fn)(hr_http_req_t *req);

typedef struct hr_route {
    const char *method;
    const char *pattern;
    hr_handler_fn handler;
    size_t max_body; /* 0: no body accepted beyond the default small limit */
} hr_route_t;

/* Finds the route for (method, path). Fills params (percent-decoded, owned by the caller: free
 * each). Returns the route, or NULL with *path_known telling 405 (path exists) from 404. */
const hr_route_t *hr_routes_match(const char *method, const char *path, char **params,
                                  size_t *n_params, bool *path_known);

/* The same, and on a 405 also fills `allow` with the path's methods ("GET, POST"). */
const hr_route_t *hr_routes_match_allow(const char *method, const char *path, char **params,
                                        size_t *n_params, bool *path_known, char *allow,
                                        size_t allow_size);

/* Helpers the read handlers share (h_events.c). Each answers 400 itself and returns false
 * when its input is bad. */
struct hr_cesql;
/* A seq parameter: decimal digits, 1 to 2^63. Does not answer. */
bool hr__parse_seq(const char *s, uint64_t *out);
/* ?from= or ?from_time= as a start seq (default 1). */
bool hr__read_start(hr_http_req_t *req, hr_bus_t *bus, uint64_t *from);
/* ?filter= compiled as CESQL; *out stays NULL when absent. */
bool hr__read_filter(hr_http_req_t *req, struct hr_cesql **out);

/* Handlers (h_*.c). */
void hr_h_publish(hr_http_req_t *req);
void hr_h_read(hr_http_req_t *req);
void hr_h_stream(hr_http_req_t *req);
void hr_h_bus_put(hr_http_req_t *req);
void hr_h_bus_get(hr_http_req_t *req);
void hr_h_bus_delete(hr_http_req_t *req);
void hr_h_bus_list(hr_http_req_t *req);
void hr_h_health(hr_http_req_t *req);
void hr_h_trigger_put(hr_http_req_t *req);
void hr_h_trigger_get(hr_http_req_t *req);
void hr_h_trigger_delete(hr_http_req_t *req);
void hr_h_trigger_list(hr_http_req_t *req);
void hr_h_trigger_replay(hr_http_req_t *req);
void hr_h_deadletters(hr_http_req_t *req);
void hr_h_redrive(hr_http_req_t *req);
void hr_h_trace(hr_http_req_t *req);
void hr_h_filter_test(hr_http_req_t *req);

#endif
