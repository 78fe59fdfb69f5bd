/* SPDX-License-Identifier: MIT */
/*
 * libmicrohttpd glue. Life of a request (one hr_http_req_t per request, in MHD's con_cls):
 *
 *   first call ──► route match, early checks (Content-Length + Transfer-Encoding → 400,
 *                  declared length over the route's limit → 413, 404/405, authorization)
 *   upload calls ─► body appended up to the limit (past it: remembered, discarded, 413 at end)
 *   final call ──► handler: hr_http_reply() now, or hr_http_suspend() + work elsewhere
 *   resumed call ─► the response stored by hr_http_complete() is queued
 *
 * Threads: MHD worker threads (poll mode) run the access handler; hr_http_complete() runs on
 * whatever thread finished the work and only stores the response and resumes the connection.
 * A heartbeat thread pokes SSE streams once a second so idle ones can send heartbeats.
 */
#include "http/server.h"
#include "http/routes.h"
#include "util/alloc.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SMALL_BODY_LIMIT (64u * 1024)

struct hr_http {
    struct MHD_Daemon *d;
    hr_http_opts_t opts;
    hr_buses_t *buses;
    hr_triggers_t *triggers;
    uint16_t port;
    atomic_bool stopping;
    atomic_int suspended; /* requests parked awaiting hr_http_complete() */
    pthread_mutex_t streams_mu;
    hr_http_stream_t *streams;
    pthread_t heartbeat;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
};

typedef struct hdr {
    char *name, *value;
} hdr_t;

struct hr_http_req {
    hr_http_t *srv;
    struct MHD_Connection *conn;
    const char *method;
    const hr_route_t *route;
    char *params[HR_ROUTE_MAX_PARAMS];
    size_t n_params;
    hr_buf_t body;
    size_t body_limit;
    bool body_too_big;
    bool early_done; /* a response was queued before the body arrived */
    bool handled;    /* the handler ran */
    bool parked;     /* suspended, awaiting hr_http_complete */
    /* response stored by hr_http_complete (another thread) */
    pthread_mutex_t mu;
    bool ready;
    unsigned status;
    hr_buf_t resp;
    hdr_t extra[4];
    size_t n_extra;
    void *state;
    void (*state_free)(void *);
};

void hr_http_opts_default(hr_http_opts_t *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
    o->port = 8088;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = n > 0 ? (unsigned)n : 1;
    o->max_connections = 1024;
    o->timeout_s = 30;
    o->max_header_bytes = 64 * 1024;
    o->max_event_bytes = 1024 * 1024;
    o->max_batch_bytes = 16 * 1024 * 1024;
    o->heartbeat_s = 15;
}

/* ---- responses ---- */

static void queue(hr_http_req_t *req, unsigned status, hr_buf_t *body)
{
    size_t len = body ? body->len : 0;
    char *data = body ? hr_buf_steal(body) : NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (len) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
    for (size_t i = 0; i < req->n_extra; i++) {
        MHD_add_response_header(r, req->extra[i].name, req->extra[i].value);
    }
    MHD_queue_response(req->conn, status, r);
    MHD_destroy_response(r);
}

void hr_http_error_body(hr_buf_t *out, const char *field, long index, const char *msg)
{
    hr_buf_reset(out);
    hr_buf_puts(out, "{\"error\":");
    hr_buf_json_str(out, msg, strlen(msg));
    if (field && *field) {
        hr_buf_puts(out, ",\"field\":");
        hr_buf_json_str(out, field, strlen(field));
    }
    if (index >= 0) {
        hr_buf_printf(out, ",\"index\":%ld", index);
    }
    hr_buf_putc(out, '}');
}

void hr_http_reply(hr_http_req_t *req, unsigned status, hr_buf_t *json_body)
{
    queue(req, status, json_body);
    req->handled = true;
}

void hr_http_error(hr_http_req_t *req, unsigned status, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hr_buf_t b = HR_BUF_INIT;
    hr_http_error_body(&b, field, -1, msg);
    hr_http_reply(req, status, &b);
    hr_buf_free(&b);
}

void hr_http_set_header(hr_http_req_t *req, const char *name, const char *value)
{
    if (req->n_extra < sizeof req->extra / sizeof req->extra[0]) {
        req->extra[req->n_extra].name = hr_xstrdup(name);
        req->extra[req->n_extra].value = hr_xstrdup(value);
        req->n_extra++;
    }
}

void hr_http_suspend(hr_http_req_t *req)
{
    req->parked = true;
    req->handled = true;
    atomic_fetch_add(&req->srv->suspended, 1);
    MHD_suspend_connection(req->conn);
}

void hr_http_complete(hr_http_req_t *req, unsigned status, hr_buf_t *json_body)
{
    pthread_mutex_lock(&req->mu);
    req->status = status;
    if (json_body) {
        req->resp = *json_body;
        *json_body = (hr_buf_t)HR_BUF_INIT;
    }
    req->ready = true;
    pthread_mutex_unlock(&req->mu);
    MHD_resume_connection(req->conn);
}

void hr_http_set_state(hr_http_req_t *req, void *state, void (*free_fn)(void *state))
{
    req->state = state;
    req->state_free = free_fn;
}

void hr_http_reply_stream(hr_http_req_t *req, const char *content_type,
                          long (*reader)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
                          void (*free_fn)(void *cls))
{
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, (MHD_ContentReaderCallback)reader, cls, free_fn);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    MHD_queue_response(req->conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    req->handled = true;
}

/* ---- accessors ---- */

const char *hr_http_param(const hr_http_req_t *req, size_t i)
{
    return i < req->n_params ? req->params[i] : NULL;
}

const char *hr_http_query(const hr_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *hr_http_header(const hr_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const hr_buf_t *hr_http_body(const hr_http_req_t *req)
{
    return &req->body;
}

const char *hr_http_method(const hr_http_req_t *req)
{
    return req->method;
}

hr_buses_t *hr_http_buses(const hr_http_req_t *req)
{
    return req->srv->buses;
}

hr_triggers_t *hr_http_triggers(const hr_http_req_t *req)
{
    return req->srv->triggers;
}

const hr_http_opts_t *hr_http_opts(const hr_http_req_t *req)
{
    return &req->srv->opts;
}

struct MHD_Connection *hr_http_connection(hr_http_req_t *req)
{
    return req->conn;
}

hr_http_t *hr_http_server(const hr_http_req_t *req)
{
    return req->srv;
}

bool hr_http_stopping(const hr_http_t *srv)
{
    return atomic_load(&srv->stopping);
}

typedef struct query_check {
    const char *const *allowed;
    const char *bad;
} query_check_t;

static enum MHD_Result query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    (void)value;
    query_check_t *qc = cls;
    for (const char *const *a = qc->allowed; *a; a++) {
        if (strcmp(*a, key) == 0) {
            return MHD_YES;
        }
    }
    qc->bad = key;
    return MHD_NO;
}

bool hr_http_check_query(hr_http_req_t *req, const char *const *allowed)
{
    query_check_t qc = {allowed, NULL};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_iter, &qc);
    if (qc.bad) {
        hr_buf_t list = HR_BUF_INIT;
        for (const char *const *a = allowed; *a; a++) {
            hr_buf_printf(&list, "%s%s", a == allowed ? "" : ", ", *a);
        }
        hr_http_error(req, 400, qc.bad, "unknown query parameter \"%s\" (expected: %s)", qc.bad,
                      allowed[0] ? (char *)list.data : "none");
        hr_buf_free(&list);
        return false;
    }
    return true;
}

/* ---- streams ---- */

void hr_http_stream_add(hr_http_t *srv, hr_http_stream_t *s)
{
    pthread_mutex_lock(&srv->streams_mu);
    s->prev = NULL;
    s->next = srv->streams;
    if (srv->streams) {
        srv->streams->prev = s;
    }
    srv->streams = s;
    pthread_mutex_unlock(&srv->streams_mu);
}

void hr_http_stream_remove(hr_http_t *srv, hr_http_stream_t *s)
{
    pthread_mutex_lock(&srv->streams_mu);
    if (s->prev) {
        s->prev->next = s->next;
    } else if (srv->streams == s) {
        srv->streams = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&srv->streams_mu);
}

static void poke_streams(hr_http_t *srv, bool closing)
{
    pthread_mutex_lock(&srv->streams_mu);
    for (hr_http_stream_t *s = srv->streams; s; s = s->next) {
        s->poke(s, closing);
    }
    pthread_mutex_unlock(&srv->streams_mu);
}

static void *heartbeat_main(void *arg)
{
    hr_http_t *srv = arg;
    pthread_mutex_lock(&srv->hb_mu);
    while (!atomic_load(&srv->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&srv->hb_cv, &srv->hb_mu, &ts);
        if (!atomic_load(&srv->stopping)) {
            poke_streams(srv, false);
        }
    }
    pthread_mutex_unlock(&srv->hb_mu);
    return NULL;
}

/* ---- the access handler ---- */

/* The one place where authentication and authorization hook in (DESIGN.md §9): returns true
 * to let the request through, or answers 401/403 itself and returns false. */
static bool authorize(hr_http_req_t *req)
{
    (void)req;
    return true;
}

static void req_free(hr_http_req_t *req)
{
    for (size_t i = 0; i < req->n_params; i++) {
        free(req->params[i]);
    }
    for (size_t i = 0; i < req->n_extra; i++) {
        free(req->extra[i].name);
        free(req->extra[i].value);
    }
    if (req->state_free) {
        req->state_free(req->state);
    }
    hr_buf_free(&req->body);
    hr_buf_free(&req->resp);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

static void early_error(hr_http_req_t *req, unsigned status, const char *field, const char *msg)
{
    hr_http_error(req, status, field, "%s", msg);
    req->early_done = true;
}

/* First call: route and check what can be checked before the body. */
static void begin(hr_http_req_t *req, const char *url)
{
    const char *cl = hr_http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = hr_http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl && te) {
        /* MHD 0.9.75 accepts both; a proxy in front may disagree about the body's end
         * (request smuggling), so refuse. */
        early_error(req, 400, "Transfer-Encoding",
                    "a request must not carry both Content-Length and Transfer-Encoding");
        return;
    }
    bool known = false;
    char allow[64];
    req->route = hr_routes_match_allow(req->method, url, req->params, &req->n_params, &known, allow,
                                       sizeof allow);
    if (req->route == NULL) {
        char msg[256];
        if (known) {
            snprintf(msg, sizeof msg, "method %s is not allowed on %s (allowed: %s)", req->method,
                     url, allow);
            hr_http_set_header(req, "Allow", allow);
            early_error(req, 405, "method", msg);
        } else {
            snprintf(msg, sizeof msg, "no such route: %s %s", req->method, url);
            early_error(req, 404, "path", msg);
        }
        return;
    }
    if (!authorize(req)) {
        req->early_done = true;
        return;
    }
    req->body_limit = req->route->max_body ? req->route->max_body : SMALL_BODY_LIMIT;
    if (req->body_limit == (size_t)-1) {
        size_t ev = req->srv->opts.max_event_bytes, batch = req->srv->opts.max_batch_bytes;
        req->body_limit = ev > batch ? ev : batch;
    }
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end == '\0' && n > req->body_limit) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %zu bytes",
                     n, req->body_limit);
            early_error(req, 413, "body", msg);
        }
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    hr_http_t *srv = cls;
    hr_http_req_t *req = *con_cls;
    if (req == NULL) {
        req = hr_xcalloc(1, sizeof *req);
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        pthread_mutex_init(&req->mu, NULL);
        *con_cls = req;
        begin(req, url);
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->early_done && !req->body_too_big) {
            if (req->body.len + *upload_size > req->body_limit) {
                req->body_too_big = true;
                hr_buf_free(&req->body);
            } else if (hr_buf_append(&req->body, upload, *upload_size) != 0) {
                req->body_too_big = true;
                hr_buf_free(&req->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->early_done) {
        return MHD_YES; /* the response is queued; MHD sends it */
    }
    if (req->parked) {
        pthread_mutex_lock(&req->mu);
        bool ready = req->ready;
        pthread_mutex_unlock(&req->mu);
        if (!ready) {
            return MHD_YES;
        }
        req->parked = false;
        atomic_fetch_sub(&srv->suspended, 1);
        queue(req, req->status, &req->resp);
        return MHD_YES;
    }
    if (req->handled) {
        return MHD_YES;
    }
    if (req->body_too_big) {
        hr_http_error(req, 413, "body", "request body exceeds the limit of %zu bytes",
                      req->body_limit);
        return MHD_YES;
    }
    if (atomic_load(&srv->stopping)) {
        hr_http_set_header(req, "Retry-After", "1");
        hr_http_error(req, 503, NULL, "the server is shutting down");
        return MHD_YES;
    }
    req->route->handler(req);
    if (!req->handled) {
        hr_http_error(req, 500, NULL, "internal error: the handler gave no answer");
    }
    return MHD_YES;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    hr_http_req_t *req = *con_cls;
    if (req) {
        req_free(req);
        *con_cls = NULL;
    }
}

int hr_http_start(const hr_http_opts_t *opts, hr_buses_t *buses, hr_triggers_t *triggers,
                  hr_http_t **out)
{
    *out = NULL;
    hr_http_t *srv = hr_xcalloc(1, sizeof *srv);
    srv->opts = *opts;
    srv->buses = buses;
    srv->triggers = triggers;
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->suspended, 0);
    pthread_mutex_init(&srv->streams_mu, NULL);
    pthread_mutex_init(&srv->hb_mu, NULL);
    pthread_cond_init(&srv->hb_cv, NULL);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(opts->port);
    if (inet_pton(AF_INET, opts->listen_host, &sa.sin_addr) != 1) {
        fprintf(stderr, "herald: --listen host %s is not an IPv4 address\n", opts->listen_host);
        free(srv);
        return HR_EINVAL;
    }
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    srv->d =
        MHD_start_daemon(flags, opts->port, NULL, NULL, access_cb, srv, MHD_OPTION_SOCK_ADDR, &sa,
                         MHD_OPTION_THREAD_POOL_SIZE, opts->threads, MHD_OPTION_CONNECTION_LIMIT,
                         opts->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, opts->timeout_s,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts->max_header_bytes,
                         MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv, MHD_OPTION_END);
    if (srv->d == NULL) {
        fprintf(stderr, "herald: cannot listen on %s:%u\n", opts->listen_host, opts->port);
        pthread_mutex_destroy(&srv->streams_mu);
        free(srv);
        return HR_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : opts->port;
    pthread_create(&srv->heartbeat, NULL, heartbeat_main, srv);
    *out = srv;
    return 0;
}

uint16_t hr_http_port(const hr_http_t *srv)
{
    return srv->port;
}

void hr_http_stop(hr_http_t *srv)
{
    if (srv == NULL) {
        return;
    }
    atomic_store(&srv->stopping, true);
    pthread_mutex_lock(&srv->hb_mu);
    pthread_cond_signal(&srv->hb_cv);
    pthread_mutex_unlock(&srv->hb_mu);
    pthread_join(srv->heartbeat, NULL);
    MHD_quiesce_daemon(srv->d);
    /* End streams, then wait (bounded) for parked publishes: their commit threads resume them. */
    for (int i = 0; i < 500; i++) {
        poke_streams(srv, true);
        pthread_mutex_lock(&srv->streams_mu);
        bool streams = srv->streams != NULL;
        pthread_mutex_unlock(&srv->streams_mu);
        if (!streams && atomic_load(&srv->suspended) == 0) {
            break;
        }
        usleep(10000);
    }
    MHD_stop_daemon(srv->d);
    pthread_mutex_destroy(&srv->streams_mu);
    pthread_mutex_destroy(&srv->hb_mu);
    pthread_cond_destroy(&srv->hb_cv);
    free(srv);
}
