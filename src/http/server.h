/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/1.1 server (server.c: epoll workers + nodejs http-parser). It owns per-request
 * state, body accumulation with limits, routing (routes.c) and the single authorization hook,
 * and offers handlers a small API to answer now or later from another thread.
 *
 * Threads: handlers run on the server's worker threads. hr_http_complete() and
 * hr_http_stream_wake() may be called from any thread (typically a bus commit thread).
 */
#ifndef HR_HTTP_SERVER_H
#define HR_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/bus.h"
#include "broker/triggers.h"
#include "util/buf.h"

typedef struct hr_http hr_http_t;
typedef struct hr_http_req hr_http_req_t;

typedef struct hr_http_opts {
    char listen_host[128];
    uint16_t port;
    unsigned threads;         /* worker threads (default: number of cores) */
    unsigned max_connections; /* default 1024 */
    unsigned timeout_s;       /* idle connection timeout (default 30) */
    size_t max_header_bytes;  /* per-connection memory for headers (default 64 KiB) */
    size_t max_event_bytes;   /* one event (default 1 MiB) */
    size_t max_batch_bytes;   /* one batch request body (default 16 MiB) */
    unsigned heartbeat_s;     /* SSE heartbeat interval (default 15) */
} hr_http_opts_t;

void hr_http_opts_default(hr_http_opts_t *o);

int hr_http_start(const hr_http_opts_t *opts, hr_buses_t *buses, hr_triggers_t *triggers,
                  hr_http_t **out);
/* Stops accepting, ends streams, waits for requests in flight, stops the daemon. */
void hr_http_stop(hr_http_t *srv);
/* The port actually bound (useful with port 0). */
uint16_t hr_http_port(const hr_http_t *srv);

/* ---- for handlers ---- */

const char *hr_http_param(const hr_http_req_t *req, size_t i); /* path parameter i */
const char *hr_http_query(const hr_http_req_t *req, const char *name);
const char *hr_http_header(const hr_http_req_t *req, const char *name); /* first, any case */
/* Calls fn for every request header, in arrival order (names as sent). */
void hr_http_header_each(const hr_http_req_t *req,
                         void (*fn)(void *ud, const char *name, const char *value), void *ud);
const hr_buf_t *hr_http_body(const hr_http_req_t *req);
const char *hr_http_method(const hr_http_req_t *req);
hr_buses_t *hr_http_buses(const hr_http_req_t *req);
hr_triggers_t *hr_http_triggers(const hr_http_req_t *req);
const hr_http_opts_t *hr_http_opts(const hr_http_req_t *req);

/* Checks that every query parameter is one of `allowed` (NULL-terminated); answers 400 naming
 * the first unknown one and returns false otherwise. */
bool hr_http_check_query(hr_http_req_t *req, const char *const *allowed);

/* Answers now (on the worker thread). Takes the body's memory. */
void hr_http_reply(hr_http_req_t *req, unsigned status, hr_buf_t *json_body);
/* Answers now with {"error": msg, "field": field} (field may be NULL). */
void hr_http_error(hr_http_req_t *req, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Adds a response header to the reply about to be sent (e.g. Retry-After). */
void hr_http_set_header(hr_http_req_t *req, const char *name, const char *value);

/* Parks the request until hr_http_complete(); call before handing work to another thread. */
void hr_http_suspend(hr_http_req_t *req);
/* Finishes a suspended request from any thread. Takes the body's memory. */
void hr_http_complete(hr_http_req_t *req, unsigned status, hr_buf_t *json_body);
/* Builds the {"error":…} body for hr_http_complete. */
void hr_http_error_body(hr_buf_t *out, const char *field, long index, const char *msg);

/* Handlers may keep state with the request; `free_fn` runs when the request ends. */
void hr_http_set_state(hr_http_req_t *req, void *state, void (*free_fn)(void *state));

/* Answers 200 with a streaming response (delimited by the connection's close) whose bytes come
 * from `reader`, called on the worker thread whenever the socket can take more: it returns
 * the bytes it wrote into buf (> 0), HR_HTTP_STREAM_WAIT (0) when it has none now (the
 * server then waits for hr_http_stream_wake), or HR_HTTP_STREAM_END (< 0) to close. `free_fn`
 * runs when the connection ends; once it returns, nothing may call hr_http_stream_wake for
 * this request any more. Used by SSE. */
#define HR_HTTP_STREAM_WAIT 0
#define HR_HTTP_STREAM_END (-1)
void hr_http_reply_stream(hr_http_req_t *req, const char *content_type,
                          long (*reader)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
                          void (*free_fn)(void *cls));

/* Makes the server call the stream's reader again soon. Any thread. */
void hr_http_stream_wake(hr_http_req_t *req);

/* ---- SSE streams registry (for heartbeats and shutdown) ---- */
typedef struct hr_http_stream hr_http_stream_t;
struct hr_http_stream {
    void (*poke)(hr_http_stream_t *s, bool closing); /* resume if suspended */
    hr_http_stream_t *prev, *next;
};
void hr_http_stream_add(hr_http_t *srv, hr_http_stream_t *s);
void hr_http_stream_remove(hr_http_t *srv, hr_http_stream_t *s);
hr_http_t *hr_http_server(const hr_http_req_t *req);
bool hr_http_stopping(const hr_http_t *srv);

#endif
