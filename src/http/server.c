/* SPDX-License-Identifier: MIT */
/*
 * Herald's HTTP/1.1 server: epoll workers, nodejs http-parser, and group-commit-friendly
 * completions. It replaced libmicrohttpd once profiles showed its per-request cost (an
 * inter-thread write and a poll wake-up for every resumed request) dominating durable ingest:
 * here a commit thread finishing a group of N requests on one worker costs that worker ONE
 * eventfd write, and the worker answers all N in one pass (DESIGN.md notes, "libuv +
 * http-parser": the measured alternative).
 *
 * Threads:
 *   - opts.threads workers, each with its own epoll set, wake-up eventfd and listening socket
 *     on the same port (SO_REUSEPORT: the kernel spreads new connections over the workers; one
 *     shared socket with EPOLLEXCLUSIVE left every connection on the first worker); a
 *     connection lives on the worker that accepted it, and only that worker touches it.
 *   - hr_http_complete() and hr_http_stream_wake() run on any thread: they push the request
 *     on its worker's completion list and write the eventfd only when the list was empty.
 *   - A heartbeat thread pokes SSE streams once a second (idle ones send heartbeats).
 *
 * Life of a connection: READ (bytes parsed as they come; pipelined requests wait in the input
 * buffer because the parser pauses at the end of each message) → the handler runs on the
 * worker at message end → it answers at once, or parks the request (hr_http_suspend) until
 * hr_http_complete() → the response is written (EPOLLOUT only when a write would block) →
 * READ again (keep-alive), or close. A streaming response (SSE) pulls bytes from its reader
 * while the socket takes them and parks when the reader has none, until hr_http_stream_wake().
 *
 * Early answers (before the body): 404/405, a denied request, and Content-Length +
 * Transfer-Encoding are answered after the body has been read and discarded, so the
 * connection stays usable; a declared body over the route's limit (413), header sections over
 * max_header_bytes (431) and unparsable requests (400) are answered at once with
 * "Connection: close", and the rest of the input is read and dropped until the client closes
 * or a short linger ends, so the client reads the answer instead of a reset.
 *
 * Limits: max_connections (over it a new connection is closed at once), idle timeout (no
 * byte received for timeout_s while waiting for a request: closed; parked and streaming
 * requests are exempt), header section size, body size per route (route->max_body).
 */
#include "http/server.h"
#include "http/routes.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/hex.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SMALL_BODY_LIMIT (64u * 1024)
#define READ_CHUNK (64u * 1024)
#define MAX_URL_BYTES (16u * 1024)
#define LINGER_NS (2ull * 1000000000ull)
#define MAX_EVENTS 256
/* Input buffered while a request is parked (pipelining) before reading pauses. */
#define MAX_BUFFERED_INPUT (1u << 20)

typedef struct worker worker_t;
typedef struct conn conn_t;

struct hr_http {
    hr_http_opts_t opts;
    hr_buses_t *buses;
    hr_triggers_t *triggers;
    uint16_t port;
    atomic_bool stopping;
    atomic_int suspended; /* requests parked awaiting hr_http_complete() */
    atomic_uint n_conns;
    pthread_mutex_t accept_mu; /* pausing and resuming accept at max_connections */
    bool accept_paused;
    worker_t *workers;
    unsigned n_workers;
    pthread_mutex_t streams_mu;
    hr_http_stream_t *streams;
    pthread_t heartbeat;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
};

struct worker {
    hr_http_t *srv;
    pthread_t thread;
    int ep, wake_fd;
    int listen_fd; /* this worker's listening socket (SO_REUSEPORT: the kernel spreads
                    * new connections over the workers) */
    atomic_bool quit;
    pthread_mutex_t mu;       /* the completion list */
    hr_http_req_t *done_head; /* pushed by any thread, LIFO; reversed when taken */
    conn_t *conns;            /* this worker's connections (doubly linked) */
    conn_t *graveyard;        /* closed in this iteration; freed at its end */
    uint64_t last_sweep_ns;
};

typedef struct hdr {
    char *name, *value;
} hdr_t;

enum { REQ_PARSING, REQ_HANDLING, REQ_PARKED, REQ_STREAMING };

struct hr_http_req {
    hr_http_t *srv;
    conn_t *conn;
    int state;
    const char *method;
    const hr_route_t *route;
    char *params[HR_ROUTE_MAX_PARAMS];
    size_t n_params;
    /* request line and headers, as parsed: "name\0value\0" pairs in hbuf */
    hr_buf_t url;
    char *path;
    hr_buf_t hbuf;
    size_t *hoff; /* name offsets into hbuf; value follows its NUL */
    size_t n_hdrs, hcap;
    bool in_value;
    hr_buf_t qbuf; /* decoded query: "key\0value\0" pairs; value_off 0 = no value */
    size_t *qoff;
    size_t n_query;
    bool query_parsed;
    hr_buf_t body;
    size_t body_limit;
    bool body_too_big;
    bool early_done; /* answered (or will be) without running the handler */
    bool handled;    /* the handler ran (or an answer was queued) */
    /* response */
    unsigned status;
    hr_buf_t resp;
    bool resp_ready; /* set by hr_http_complete, under the worker's mutex */
    hdr_t extra[4];
    size_t n_extra;
    void *state_ptr;
    void (*state_free)(void *);
    /* streaming */
    long (*reader)(void *cls, uint64_t pos, char *buf, size_t max);
    void *rcls;
    void (*rfree)(void *);
    uint64_t rpos;
    bool chunked; /* HTTP/1.1 client: chunked framing; else delimited by the close */
    /* completion list (worker mutex) */
    hr_http_req_t *qnext;
    bool queued;
    bool wake; /* a stream wake-up is pending */
};

struct conn {
    worker_t *w;
    int fd;
    http_parser p;
    hr_buf_t in;
    size_t in_off;
    hr_buf_t out;
    size_t out_off;
    hr_http_req_t *req;   /* the request being parsed, handled, parked or streamed */
    hr_http_req_t *spare; /* the last answered request, emptied, for the next one */
    size_t head_bytes;  /* request line + headers so far */
    bool want_out;      /* EPOLLOUT registered */
    bool reading;       /* EPOLLIN registered */
    bool peer_closed;   /* EOF seen */
    bool close_after;   /* close once out is written */
    bool lingering;     /* answered an unreadable request: drop input until EOF or deadline */
    bool dead;          /* closed while its request is parked or queued: freed later */
    uint64_t last_ns;   /* last byte received */
    uint64_t linger_until_ns;
    conn_t *prev, *next;
    conn_t *grave_next;
};

static http_parser_settings settings;

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

/* ---- requests ---- */

static hr_http_req_t *req_new(conn_t *c)
{
    hr_http_req_t *req = c->spare;
    if (req != NULL) {
        c->spare = NULL;
        return req;
    }
    req = hr_xcalloc(1, sizeof *req);
    req->srv = c->w->srv;
    req->conn = c;
    return req;
}

/* Frees what a request owns besides its buffers: parameters, extra headers, handler state
 * and stream. */
static void req_release(hr_http_req_t *req)
{
    for (size_t i = 0; i < req->n_params; i++) {
        free(req->params[i]);
    }
    for (size_t i = 0; i < req->n_extra; i++) {
        free(req->extra[i].name);
        free(req->extra[i].value);
    }
    if (req->state_free) {
        req->state_free(req->state_ptr);
    }
    if (req->rfree) {
        req->rfree(req->rcls);
    }
    free(req->path);
    hr_buf_free(&req->qbuf);
    free(req->qoff);
}

static void req_free(hr_http_req_t *req)
{
    req_release(req);
    hr_buf_free(&req->url);
    hr_buf_free(&req->hbuf);
    free(req->hoff);
    hr_buf_free(&req->body);
    hr_buf_free(&req->resp);
    free(req);
}

/* Largest body buffer a connection keeps for its next request. */
#define SPARE_BODY_MAX (64u * 1024u)

/* Empties an answered request and keeps it as the connection's spare. Why: keep-alive
 * clients send one request after another; reusing the request and its buffers saves about
 * eight allocations per request. Worker thread only (the request is no longer shared). */
static void req_recycle(conn_t *c, hr_http_req_t *req)
{
    if (c->spare != NULL || req->body.cap > SPARE_BODY_MAX) {
        req_free(req);
        return;
    }
    req_release(req);
    hr_buf_free(&req->resp); /* answers hand their own buffer over (hr_http_reply) */
    hr_buf_t url = req->url, hbuf = req->hbuf, body = req->body;
    size_t *hoff = req->hoff;
    size_t hcap = req->hcap;
    memset(req, 0, sizeof *req);
    req->srv = c->w->srv;
    req->conn = c;
    req->url = url;
    req->hbuf = hbuf;
    req->body = body;
    hr_buf_reset(&req->url);
    hr_buf_reset(&req->hbuf);
    hr_buf_reset(&req->body);
    req->hoff = hoff;
    req->hcap = hcap;
    c->spare = req;
}

/* ---- connections ---- */

static void conn_update_events(conn_t *c)
{
    bool want_in =
        !c->dead && !c->peer_closed && (c->lingering || c->in.len - c->in_off < MAX_BUFFERED_INPUT);
    bool want_out = c->out_off < c->out.len;
    if (want_in == c->reading && want_out == c->want_out) {
        return;
    }
    struct epoll_event ev = {0};
    ev.events = (want_in ? EPOLLIN | EPOLLRDHUP : 0u) | (want_out ? EPOLLOUT : 0u);
    ev.data.ptr = c;
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->reading = want_in;
    c->want_out = want_out;
}

static void conn_unlink(conn_t *c)
{
    worker_t *w = c->w;
    if (c->prev) {
        c->prev->next = c->next;
    } else if (w->conns == c) {
        w->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

/* At max_connections the listening socket leaves every worker's epoll set, so new
 * connections wait in the kernel's listen queue (not accepted, not reset) until one closes. */
static void set_accepting(hr_http_t *srv, bool on)
{
    pthread_mutex_lock(&srv->accept_mu);
    if (srv->accept_paused == on && !atomic_load(&srv->stopping)) {
        srv->accept_paused = !on;
        for (unsigned i = 0; i < srv->n_workers; i++) {
            struct epoll_event lev = {.events = EPOLLIN, .data.ptr = srv};
            epoll_ctl(srv->workers[i].ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
                      srv->workers[i].listen_fd, on ? &lev : NULL);
        }
    }
    pthread_mutex_unlock(&srv->accept_mu);
}

static void conn_free(conn_t *c)
{
    if (c->spare) {
        req_free(c->spare);
    }
    hr_buf_free(&c->in);
    hr_buf_free(&c->out);
    free(c);
}

/* Closes the socket now. The request, if any, is freed now unless another thread still owns
 * it (parked, or on the completion list): then the completion frees it and the conn. */
static void conn_close(conn_t *c)
{
    if (c->fd < 0) {
        return;
    }
    epoll_ctl(c->w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    conn_unlink(c);
    hr_http_t *srv = c->w->srv;
    if (atomic_fetch_sub(&srv->n_conns, 1) == srv->opts.max_connections) {
        set_accepting(srv, true);
    }
    hr_http_req_t *req = c->req;
    if (req) {
        if (req->rfree) {
            /* Detach the stream first: once its free function returns, nothing wakes it. */
            req->rfree(req->rcls);
            req->rfree = NULL;
        }
        pthread_mutex_lock(&c->w->mu);
        bool busy = req->state == REQ_PARKED || req->queued;
        pthread_mutex_unlock(&c->w->mu);
        if (busy) {
            c->dead = true; /* run_completions() frees the request and the conn */
            return;
        }
        req_free(req);
        c->req = NULL;
    }
    c->grave_next = c->w->graveyard;
    c->w->graveyard = c;
}

/* A dead conn's request came back from another thread: free both (at the iteration's end). */
static void conn_bury(conn_t *c)
{
    if (c->req) {
        req_free(c->req);
        c->req = NULL;
    }
    c->grave_next = c->w->graveyard;
    c->w->graveyard = c;
}

static const char *reason(unsigned status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 507:
        return "Insufficient Storage";
    default:
        return "Status";
    }
}

/* Writes as much of c->out as the socket takes. Returns false when the connection died. */
static bool conn_flush(conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        return false;
    }
    if (c->out_off == c->out.len) {
        hr_buf_reset(&c->out);
        c->out_off = 0;
    }
    return true;
}

/* Formats the response head (and body) of `req` into c->out. */
static void put_response(conn_t *c, hr_http_req_t *req, unsigned status, const hr_buf_t *body)
{
    size_t len = body ? body->len : 0;
    hr_buf_printf(&c->out, "HTTP/1.1 %u %s\r\nContent-Length: %zu\r\n", status, reason(status),
                  len);
    if (len) {
        hr_buf_puts(&c->out, "Content-Type: application/json\r\n");
    }
    for (size_t i = 0; i < req->n_extra; i++) {
        hr_buf_printf(&c->out, "%s: %s\r\n", req->extra[i].name, req->extra[i].value);
    }
    if (c->close_after) {
        hr_buf_puts(&c->out, "Connection: close\r\n");
    }
    hr_buf_puts(&c->out, "\r\n");
    if (len) {
        hr_buf_append(&c->out, body->data, len);
    }
}

/* The current request is answered (response in c->out): free it, start writing, and make
 * the parser ready for the next request. Returns true when the caller should parse on
 * (conn_process), false when the connection closed or waits to close. */
static bool request_done(conn_t *c)
{
    hr_http_req_t *req = c->req;
    c->req = NULL;
    if (req) {
        req_recycle(c, req);
    }
    if (!conn_flush(c)) {
        conn_close(c);
        return false;
    }
    if (c->close_after) {
        if (c->out_off == c->out.len) {
            if (c->lingering) {
                shutdown(c->fd, SHUT_WR);
                c->linger_until_ns = hr_mono_ns() + LINGER_NS;
                conn_update_events(c);
                return false;
            }
            conn_close(c);
            return false;
        }
        conn_update_events(c);
        return false;
    }
    if (HTTP_PARSER_ERRNO(&c->p) == HPE_PAUSED) {
        http_parser_pause(&c->p, 0);
    }
    return true;
}

/* Answers `req` (the connection's current request) now, on the worker thread. */
static void answer(hr_http_req_t *req, unsigned status, hr_buf_t *body)
{
    conn_t *c = req->conn;
    if (!http_should_keep_alive(&c->p) || atomic_load(&req->srv->stopping)) {
        c->close_after = true;
    }
    put_response(c, req, status, body);
}

/* ---- the handler API ---- */

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
    answer(req, status, json_body);
    if (json_body) {
        hr_buf_free(json_body);
    }
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
    req->handled = true;
    atomic_fetch_add(&req->srv->suspended, 1);
    pthread_mutex_lock(&req->conn->w->mu);
    req->state = REQ_PARKED;
    pthread_mutex_unlock(&req->conn->w->mu);
}

/* Puts `req` on its worker's completion list (worker mutex held by the caller). Returns true
 * when the list was empty, i.e. the worker must be woken. */
static bool push_locked(worker_t *w, hr_http_req_t *req)
{
    if (req->queued) {
        return false;
    }
    bool was_empty = w->done_head == NULL;
    req->queued = true;
    req->qnext = w->done_head;
    w->done_head = req;
    return was_empty;
}

static void wake_worker(worker_t *w)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(w->wake_fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
}

void hr_http_complete(hr_http_req_t *req, unsigned status, hr_buf_t *json_body)
{
    worker_t *w = req->conn->w;
    pthread_mutex_lock(&w->mu);
    req->status = status;
    if (json_body) {
        req->resp = *json_body;
        *json_body = (hr_buf_t)HR_BUF_INIT;
    }
    req->resp_ready = true;
    bool wake = push_locked(w, req);
    pthread_mutex_unlock(&w->mu);
    if (wake) {
        wake_worker(w);
    }
}

void hr_http_stream_wake(hr_http_req_t *req)
{
    worker_t *w = req->conn->w;
    pthread_mutex_lock(&w->mu);
    req->wake = true;
    bool wake = push_locked(w, req);
    pthread_mutex_unlock(&w->mu);
    if (wake) {
        wake_worker(w);
    }
}

void hr_http_set_state(hr_http_req_t *req, void *state, void (*free_fn)(void *state))
{
    req->state_ptr = state;
    req->state_free = free_fn;
}

static void stream_pump(conn_t *c);

void hr_http_reply_stream(hr_http_req_t *req, const char *content_type,
                          long (*reader)(void *cls, uint64_t pos, char *buf, size_t max), void *cls,
                          void (*free_fn)(void *cls))
{
    conn_t *c = req->conn;
    req->reader = reader;
    req->rcls = cls;
    req->rfree = free_fn;
    req->handled = true;
    req->state = REQ_STREAMING;
    /* HTTP/1.1: chunked, like any streaming server (clients keep the socket); HTTP/1.0: the
     * body ends with the connection. Either way the connection closes after the stream. */
    req->chunked = c->p.http_major == 1 && c->p.http_minor >= 1;
    c->close_after = true;
    hr_buf_printf(&c->out,
                  "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                  "X-Accel-Buffering: no\r\n%s\r\n",
                  content_type,
                  req->chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
}

/* ---- accessors ---- */

const char *hr_http_param(const hr_http_req_t *req, size_t i)
{
    return i < req->n_params ? req->params[i] : NULL;
}

/* Appends s[0..n) with '+' as space and %XX decoded (invalid escapes kept as is), then NUL. */
static void put_decoded(hr_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < n && hr_hexval(s[i + 1]) >= 0 && hr_hexval(s[i + 2]) >= 0) {
            ch = (char)(hr_hexval(s[i + 1]) * 16 + hr_hexval(s[i + 2]));
            i += 2;
        }
        hr_buf_putc(b, ch);
    }
    hr_buf_putc(b, '\0');
}

/* Splits the URL's query into decoded pairs, once. */
static void parse_query(hr_http_req_t *req)
{
    if (req->query_parsed) {
        return;
    }
    req->query_parsed = true;
    const char *u = req->url.len ? (const char *)req->url.data : "";
    const char *q = strchr(u, '?');
    if (q == NULL) {
        return;
    }
    q++;
    const char *end = q + strlen(q);
    const char *hash = strchr(q, '#');
    if (hash) {
        end = hash;
    }
    size_t cap = 0;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if (stop > q) {
            const char *eq = memchr(q, '=', (size_t)(stop - q));
            if (req->n_query * 2 + 2 > cap) {
                cap = cap ? cap * 2 : 16;
                req->qoff = hr_xrealloc(req->qoff, cap * sizeof *req->qoff);
            }
            req->qoff[req->n_query * 2] = req->qbuf.len;
            put_decoded(&req->qbuf, q, (size_t)((eq ? eq : stop) - q));
            if (eq) {
                req->qoff[req->n_query * 2 + 1] = req->qbuf.len;
                put_decoded(&req->qbuf, eq + 1, (size_t)(stop - eq - 1));
            } else {
                req->qoff[req->n_query * 2 + 1] = 0;
            }
            req->n_query++;
        }
        q = amp ? amp + 1 : end;
    }
}

const char *hr_http_query(const hr_http_req_t *creq, const char *name)
{
    hr_http_req_t *req = (hr_http_req_t *)creq;
    parse_query(req);
    for (size_t i = 0; i < req->n_query; i++) {
        const char *k = (const char *)req->qbuf.data + req->qoff[i * 2];
        if (strcmp(k, name) == 0) {
            size_t v = req->qoff[i * 2 + 1];
            return v ? (const char *)req->qbuf.data + v : NULL;
        }
    }
    return NULL;
}

const char *hr_http_header(const hr_http_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const char *n = (const char *)req->hbuf.data + req->hoff[i];
        if (strcasecmp(n, name) == 0) {
            return n + strlen(n) + 1;
        }
    }
    return NULL;
}

void hr_http_header_each(const hr_http_req_t *req,
                         void (*fn)(void *ud, const char *name, const char *value), void *ud)
{
    for (size_t i = 0; i < req->n_hdrs; i++) {
        const char *n = (const char *)req->hbuf.data + req->hoff[i];
        fn(ud, n, n + strlen(n) + 1);
    }
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

hr_http_t *hr_http_server(const hr_http_req_t *req)
{
    return req->srv;
}

bool hr_http_stopping(const hr_http_t *srv)
{
    return atomic_load(&srv->stopping);
}

bool hr_http_check_query(hr_http_req_t *req, const char *const *allowed)
{
    parse_query(req);
    const char *bad = NULL;
    for (size_t i = 0; i < req->n_query && bad == NULL; i++) {
        const char *k = (const char *)req->qbuf.data + req->qoff[i * 2];
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) {
            ok = strcmp(*a, k) == 0;
        }
        if (!ok) {
            bad = k;
        }
    }
    if (bad) {
        hr_buf_t list = HR_BUF_INIT;
        for (const char *const *a = allowed; *a; a++) {
            hr_buf_printf(&list, "%s%s", a == allowed ? "" : ", ", *a);
        }
        hr_http_error(req, 400, bad, "unknown query parameter \"%s\" (expected: %s)", bad,
                      allowed[0] ? (char *)list.data : "none");
        hr_buf_free(&list);
        return false;
    }
    return true;
}

/* ---- streams registry ---- */

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
    pthread_setname_np(pthread_self(), "hr-heartbeat"); /* for top -H and profiles */
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

/* ---- parsing ---- */

/* The one place where authentication and authorization hook in (DESIGN.md §9): returns true
 * to let the request through, or answers 401/403 itself and returns false. */
static bool authorize(hr_http_req_t *req)
{
    (void)req;
    return true;
}

/* An answer decided before the body: sent once the body has been read (and dropped). */
static void early_error(hr_http_req_t *req, unsigned status, const char *field, const char *msg)
{
    hr_buf_t b = HR_BUF_INIT;
    hr_http_error_body(&b, field, -1, msg);
    req->status = status;
    req->resp = b;
    req->early_done = true;
}

/* Answers at once and stops reading requests from this connection. */
static void fatal_answer(conn_t *c, unsigned status, const char *field, const char *msg)
{
    hr_http_req_t *req = c->req ? c->req : req_new(c);
    c->req = req;
    hr_buf_t b = HR_BUF_INIT;
    hr_http_error_body(&b, field, -1, msg);
    c->close_after = true;
    c->lingering = true;
    put_response(c, req, status, &b);
    hr_buf_free(&b);
    (void)request_done(c); /* close_after: never parses on */
}

static int on_message_begin(http_parser *p)
{
    conn_t *c = p->data;
    if (c->req == NULL) {
        c->req = req_new(c);
    }
    c->head_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->req->url.len + n > MAX_URL_BYTES) {
        return 1;
    }
    hr_buf_append(&c->req->url, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    hr_http_req_t *req = c->req;
    if (req->in_value || req->n_hdrs == 0) {
        if (req->n_hdrs > 0) {
            hr_buf_putc(&req->hbuf, '\0'); /* ends the previous value */
        }
        if (req->n_hdrs == req->hcap) {
            req->hcap = req->hcap ? req->hcap * 2 : 16;
            req->hoff = hr_xrealloc(req->hoff, req->hcap * sizeof *req->hoff);
        }
        req->hoff[req->n_hdrs++] = req->hbuf.len;
        req->in_value = false;
    }
    hr_buf_append(&req->hbuf, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    hr_http_req_t *req = c->req;
    if (!req->in_value) {
        hr_buf_putc(&req->hbuf, '\0'); /* ends the name */
        req->in_value = true;
    }
    hr_buf_append(&req->hbuf, at, n);
    return 0;
}

/* Trims trailing blanks of every header value in place. */
static void finish_headers(hr_http_req_t *req)
{
    if (req->n_hdrs == 0) {
        return;
    }
    if (!req->in_value) {
        hr_buf_putc(&req->hbuf, '\0'); /* a name without a value */
    }
    hr_buf_putc(&req->hbuf, '\0');
    char *base = (char *)req->hbuf.data;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        char *v = base + req->hoff[i] + strlen(base + req->hoff[i]) + 1;
        size_t len = strlen(v);
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t')) {
            v[--len] = '\0';
        }
    }
}

/* The end of on_headers_complete. An early answer to a request whose body is large, or that
 * waits for "100 Continue", is sent at once with "Connection: close" (the body is skipped and
 * then dropped while lingering); other early answers wait until the body has been read. */
static int early_headers_done(conn_t *c, http_parser *p)
{
    hr_http_req_t *req = c->req;
    const char *expect = hr_http_header(req, "Expect");
    bool continue_100 = expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1;
    if (!req->early_done) {
        if (continue_100) {
            hr_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        }
        return 0;
    }
    bool big = (p->flags & F_CHUNKED) != 0 ||
               (p->content_length != ULLONG_MAX && p->content_length > SMALL_BODY_LIMIT);
    if (big || continue_100) {
        c->close_after = true;
        c->lingering = true;
        return 1; /* skip the body: the message ends here */
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn_t *c = p->data;
    hr_http_req_t *req = c->req;
    finish_headers(req);
    hr_buf_putc(&req->url, '\0');
    req->url.len--;
    req->method = http_method_str((enum http_method)p->method);
    const char *u = (const char *)req->url.data;
    size_t plen = strcspn(u, "?#");
    req->path = hr_xstrndup(u, plen);

    const char *cl = hr_http_header(req, "Content-Length");
    const char *te = hr_http_header(req, "Transfer-Encoding");
    if (cl && te) {
        early_error(req, 400, "Transfer-Encoding",
                    "a request must not carry both Content-Length and Transfer-Encoding");
        return early_headers_done(c, p);
    }
    bool known = false;
    char allow[64];
    req->route = hr_routes_match_allow(req->method, req->path, req->params, &req->n_params, &known,
                                       allow, sizeof allow);
    if (req->route == NULL) {
        char msg[256];
        if (known) {
            snprintf(msg, sizeof msg, "method %s is not allowed on %s (allowed: %s)", req->method,
                     req->path, allow);
            hr_http_set_header(req, "Allow", allow);
            early_error(req, 405, "method", msg);
        } else {
            snprintf(msg, sizeof msg, "no such route: %s %.200s", req->method, req->path);
            early_error(req, 404, "path", msg);
        }
        return early_headers_done(c, p);
    }
    if (!authorize(req)) {
        req->early_done = true;
        return early_headers_done(c, p);
    }
    req->body_limit = req->route->max_body ? req->route->max_body : SMALL_BODY_LIMIT;
    if (req->body_limit == (size_t)-1) {
        size_t ev = req->srv->opts.max_event_bytes, batch = req->srv->opts.max_batch_bytes;
        req->body_limit = ev > batch ? ev : batch;
    }
    if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX &&
        p->content_length > req->body_limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "request body of %llu bytes exceeds the limit of %zu bytes",
                 (unsigned long long)p->content_length, req->body_limit);
        early_error(req, 413, "body", msg);
    }
    return early_headers_done(c, p);
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    hr_http_req_t *req = c->req;
    if (req->early_done || req->body_too_big) {
        return 0;
    }
    if (req->body.len + n > req->body_limit || hr_buf_append(&req->body, at, n) != 0) {
        req->body_too_big = true;
        hr_buf_free(&req->body);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static void stream_pump(conn_t *c);

/* Runs the handler for the complete request (or sends its early answer). Returns true when
 * the caller should parse on. */
static bool dispatch(conn_t *c)
{
    hr_http_req_t *req = c->req;
    hr_http_t *srv = req->srv;
    req->state = REQ_HANDLING;
    if (req->early_done) {
        answer(req, req->status, &req->resp);
        return request_done(c);
    }
    if (req->body_too_big) {
        hr_http_error(req, 413, "body", "request body exceeds the limit of %zu bytes",
                      req->body_limit);
    } else if (atomic_load(&srv->stopping)) {
        hr_http_set_header(req, "Retry-After", "1");
        hr_http_error(req, 503, NULL, "the server is shutting down");
    } else {
        if (req->body.data == NULL) {
            hr_buf_reserve(&req->body, 1);
        }
        req->route->handler(req);
        if (!req->handled) {
            hr_http_error(req, 500, NULL, "internal error: the handler gave no answer");
        }
    }
    if (req->state == REQ_PARKED) {
        return false; /* hr_http_complete() finishes it */
    }
    if (req->state == REQ_STREAMING) {
        stream_pump(c);
        return false;
    }
    return request_done(c);
}

/* Parses buffered input and runs the requests it completes, in order (pipelining), until the
 * input is used up or a request is parked, streaming or closing the connection. */
static void conn_process(conn_t *c)
{
    while (c->fd >= 0 && !c->lingering && c->in_off < c->in.len &&
           (c->req == NULL || c->req->state == REQ_PARSING)) {
        const char *data = (const char *)c->in.data + c->in_off;
        size_t avail = c->in.len - c->in_off;
        size_t n = http_parser_execute(&c->p, &settings, data, avail);
        enum http_errno err = HTTP_PARSER_ERRNO(&c->p);
        c->in_off += n;
        if (err == HPE_PAUSED) {
            if (!dispatch(c)) {
                break;
            }
            continue;
        }
        if (err != HPE_OK) {
            if (err == HPE_CB_url) {
                fatal_answer(c, 414, "path", "the request target is too long");
            } else if (err == HPE_UNEXPECTED_CONTENT_LENGTH) {
                fatal_answer(c, 400, "Transfer-Encoding",
                             "a request must not carry both Content-Length and "
                             "Transfer-Encoding");
            } else if (err == HPE_HEADER_OVERFLOW) {
                fatal_answer(c, 431, "headers", "request headers exceed the limit");
            } else {
                char msg[160];
                snprintf(msg, sizeof msg, "malformed HTTP request: %s",
                         http_errno_description(err));
                fatal_answer(c, 400, "request", msg);
            }
            return;
        }
    }
    if (c->fd < 0) {
        return;
    }
    if (c->in_off == c->in.len) {
        hr_buf_reset(&c->in);
        c->in_off = 0;
    } else if (c->in_off > READ_CHUNK && c->in_off * 2 > c->in.len) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    if (c->req == NULL || c->req->state == REQ_PARSING) {
        if (!conn_flush(c)) { /* e.g. "100 Continue" */
            conn_close(c);
            return;
        }
        if (c->peer_closed && c->out_off == c->out.len && !c->lingering) {
            conn_close(c);
            return;
        }
    }
    conn_update_events(c);
}

/* ---- streaming ---- */

static void stream_pump(conn_t *c)
{
    hr_http_req_t *req = c->req;
    char buf[16 * 1024];
    for (;;) {
        if (!conn_flush(c)) {
            conn_close(c);
            return;
        }
        if (c->out_off < c->out.len) {
            conn_update_events(c); /* the socket is full: wait for EPOLLOUT */
            return;
        }
        if (req->reader == NULL) { /* ended: the last chunk is out */
            conn_close(c);
            return;
        }
        long n = req->reader(req->rcls, req->rpos, buf, sizeof buf);
        if (n > 0) {
            req->rpos += (uint64_t)n;
            if (req->chunked) {
                hr_buf_printf(&c->out, "%lx\r\n", n);
            }
            hr_buf_append(&c->out, buf, (size_t)n);
            if (req->chunked) {
                hr_buf_puts(&c->out, "\r\n");
            }
            continue;
        }
        if (n == 0) {
            if (c->peer_closed) {
                conn_close(c); /* the client is gone (EOF): nobody to wait for */
                return;
            }
            conn_update_events(c); /* parked until hr_http_stream_wake() */
            return;
        }
        /* end of stream, or an error: the terminating chunk, then close */
        req->reader = NULL;
        if (req->chunked) {
            hr_buf_puts(&c->out, "0\r\n\r\n");
        }
    }
}

/* ---- the worker loop ---- */

/* Completions from other threads: parked requests answered, streams woken. */
static void run_completions(worker_t *w)
{
    pthread_mutex_lock(&w->mu);
    hr_http_req_t *list = w->done_head;
    w->done_head = NULL;
    /* reverse to FIFO */
    hr_http_req_t *fifo = NULL;
    while (list) {
        hr_http_req_t *next = list->qnext;
        list->qnext = fifo;
        fifo = list;
        list = next;
    }
    for (hr_http_req_t *r = fifo; r; r = r->qnext) {
        r->queued = false;
    }
    pthread_mutex_unlock(&w->mu);
    while (fifo) {
        hr_http_req_t *req = fifo;
        fifo = fifo->qnext;
        conn_t *c = req->conn;
        if (req->state == REQ_PARKED && req->resp_ready) {
            atomic_fetch_sub(&w->srv->suspended, 1);
            req->state = REQ_HANDLING;
            if (c->dead) {
                conn_bury(c);
                continue;
            }
            answer(req, req->status, &req->resp);
            if (request_done(c)) {
                conn_process(c);
            }
        } else if (c->dead && req->state != REQ_PARKED) {
            conn_bury(c);
        } else if (req->state == REQ_STREAMING && req->wake) {
            req->wake = false;
            stream_pump(c);
        }
    }
}

static void on_readable(conn_t *c)
{
    for (int reads = 0; reads < 64; reads++) {
        if (hr_buf_reserve(&c->in, READ_CHUNK) != 0) {
            conn_close(c);
            return;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            c->last_ns = hr_mono_ns();
            if (c->lingering) {
                continue; /* dropped: in is never grown while lingering */
            }
            c->in.len += (size_t)n;
            if ((size_t)n < room) {
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        c->peer_closed = true; /* EOF or reset */
        if (c->lingering || n < 0) {
            conn_close(c);
            return;
        }
        break;
    }
    if (c->lingering) {
        return;
    }
    if (c->req && c->req->state == REQ_STREAMING) {
        hr_buf_reset(&c->in); /* nothing more is read from a stream's client */
        c->in_off = 0;
        if (c->peer_closed) {
            conn_close(c);
        }
        return;
    }
    conn_process(c);
}

static void on_writable(conn_t *c)
{
    if (c->req && c->req->state == REQ_STREAMING) {
        stream_pump(c);
        return;
    }
    if (!conn_flush(c)) {
        conn_close(c);
        return;
    }
    if (c->out_off < c->out.len) {
        return;
    }
    if (c->close_after && (c->req == NULL || c->req->state != REQ_PARKED)) {
        if (c->lingering) {
            shutdown(c->fd, SHUT_WR);
            c->linger_until_ns = hr_mono_ns() + LINGER_NS;
            conn_update_events(c);
            return;
        }
        conn_close(c);
        return;
    }
    conn_update_events(c);
}

static void accept_all(worker_t *w)
{
    hr_http_t *srv = w->srv;
    for (;;) {
        if (atomic_load(&srv->n_conns) >= srv->opts.max_connections) {
            set_accepting(srv, false);
            /* a close may have raced with the pause: re-check */
            if (atomic_load(&srv->n_conns) < srv->opts.max_connections) {
                set_accepting(srv, true);
            }
            return;
        }
        int fd = accept4(w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN, or out of fds: try again on the next wake-up */
        }
        if (atomic_load(&srv->stopping)) {
            close(fd);
            continue;
        }
        atomic_fetch_add(&srv->n_conns, 1);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = hr_xcalloc(1, sizeof *c);
        c->w = w;
        c->fd = fd;
        c->last_ns = hr_mono_ns();
        http_parser_init(&c->p, HTTP_REQUEST);
        c->p.data = c;
        c->reading = true;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            atomic_fetch_sub(&srv->n_conns, 1);
            continue;
        }
        c->next = w->conns;
        if (w->conns) {
            w->conns->prev = c;
        }
        w->conns = c;
    }
}

/* Closes idle connections past the timeout, and lingering ones past their deadline. */
static void sweep(worker_t *w, uint64_t now)
{
    uint64_t timeout = (uint64_t)w->srv->opts.timeout_s * 1000000000ull;
    bool stopping = atomic_load(&w->srv->stopping);
    conn_t *next;
    for (conn_t *c = w->conns; c; c = next) {
        next = c->next;
        bool waiting = c->req == NULL || c->req->state == REQ_PARSING;
        if (c->lingering && c->out_off == c->out.len && now >= c->linger_until_ns &&
            c->linger_until_ns) {
            conn_close(c);
        } else if (waiting && !c->lingering &&
                   (now - c->last_ns > timeout || (stopping && c->req == NULL))) {
            conn_close(c);
        }
    }
}

static void free_graveyard(worker_t *w)
{
    while (w->graveyard) {
        conn_t *c = w->graveyard;
        w->graveyard = c->grave_next;
        conn_free(c);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load(&w->quit)) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, 1000);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == w) {
                uint64_t v;
                (void)!read(w->wake_fd, &v, sizeof v);
                run_completions(w);
                continue;
            }
            if (p == w->srv) {
                accept_all(w);
                continue;
            }
            conn_t *c = p;
            uint32_t e = evs[i].events;
            if (c->fd < 0) {
                continue; /* closed earlier in this batch */
            }
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                on_readable(c);
            }
            if (c->fd >= 0 && (e & EPOLLOUT)) {
                on_writable(c);
            }
        }
        uint64_t now = hr_mono_ns();
        if (now - w->last_sweep_ns >= 1000000000ull || atomic_load(&w->srv->stopping)) {
            w->last_sweep_ns = now;
            sweep(w, now);
        }
        free_graveyard(w);
    }
    /* Exit: every connection goes; parked requests were waited for by hr_http_stop. */
    run_completions(w);
    while (w->conns) {
        conn_close(w->conns);
    }
    free_graveyard(w);
    return NULL;
}

/* ---- start / stop ---- */

static void settings_init(void)
{
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
}

int hr_http_start(const hr_http_opts_t *opts, hr_buses_t *buses, hr_triggers_t *triggers,
                  hr_http_t **out)
{
    *out = NULL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, settings_init);
    http_parser_set_max_header_size((uint32_t)(opts->max_header_bytes + 1024));

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(opts->port);
    if (inet_pton(AF_INET, opts->listen_host, &sa.sin_addr) != 1) {
        fprintf(stderr, "herald: --listen host %s is not an IPv4 address\n", opts->listen_host);
        return HR_EINVAL;
    }
    unsigned n_workers = opts->threads ? opts->threads : 1;
    int *fds = hr_xcalloc(n_workers, sizeof *fds);
    for (unsigned i = 0; i < n_workers; i++) {
        /* One listening socket per worker on the same port (the first picks it when the
         * port is 0); the kernel hashes each new connection to one of them. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0) {
            fprintf(stderr, "herald: cannot listen on %s:%u: %s\n", opts->listen_host,
                    ntohs(sa.sin_port), strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            for (unsigned j = 0; j < i; j++) {
                close(fds[j]);
            }
            free(fds);
            return HR_EIO;
        }
        socklen_t slen = sizeof sa;
        getsockname(fd, (struct sockaddr *)&sa, &slen);
        fds[i] = fd;
    }

    hr_http_t *srv = hr_xcalloc(1, sizeof *srv);
    srv->opts = *opts;
    srv->buses = buses;
    srv->triggers = triggers;
    srv->port = ntohs(sa.sin_port);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->suspended, 0);
    atomic_init(&srv->n_conns, 0);
    pthread_mutex_init(&srv->streams_mu, NULL);
    pthread_mutex_init(&srv->hb_mu, NULL);
    pthread_cond_init(&srv->hb_cv, NULL);
    pthread_mutex_init(&srv->accept_mu, NULL);
    srv->n_workers = n_workers;
    srv->workers = hr_xcalloc(srv->n_workers, sizeof *srv->workers);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->listen_fd = fds[i];
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pthread_mutex_init(&w->mu, NULL);
        atomic_init(&w->quit, false);
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = srv};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = w};
        if (w->ep < 0 || w->wake_fd < 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, w->listen_fd, &lev) != 0 ||
            epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &wev) != 0) {
            fprintf(stderr, "herald: cannot set up HTTP worker %u: %s\n", i, strerror(errno));
            abort();
        }
        char name[16];
        snprintf(name, sizeof name, "hr-http-%hu", (unsigned short)i);
        pthread_create(&w->thread, NULL, worker_main, w);
        pthread_setname_np(w->thread, name);
    }
    pthread_create(&srv->heartbeat, NULL, heartbeat_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free(fds);
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
    /* No new connections; end streams, then wait (bounded) for parked publishes: their
     * commit threads complete them. */
    pthread_mutex_lock(&srv->accept_mu);
    for (unsigned i = 0; i < srv->n_workers; i++) {
        epoll_ctl(srv->workers[i].ep, EPOLL_CTL_DEL, srv->workers[i].listen_fd, NULL);
    }
    srv->accept_paused = true;
    pthread_mutex_unlock(&srv->accept_mu);
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
    for (unsigned i = 0; i < srv->n_workers; i++) {
        atomic_store(&srv->workers[i].quit, true);
        wake_worker(&srv->workers[i]);
    }
    for (unsigned i = 0; i < srv->n_workers; i++) {
        worker_t *w = &srv->workers[i];
        pthread_join(w->thread, NULL);
        close(w->ep);
        close(w->wake_fd);
        close(w->listen_fd);
        pthread_mutex_destroy(&w->mu);
    }
    free(srv->workers);
    pthread_mutex_destroy(&srv->accept_mu);
    pthread_mutex_destroy(&srv->streams_mu);
    pthread_mutex_destroy(&srv->hb_mu);
    pthread_cond_destroy(&srv->hb_cv);
    free(srv);
}
