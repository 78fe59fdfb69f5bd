/* SPDX-License-Identifier: MIT */
/*
 * Internals of the delivery loop shared by loop.c (thread, task queue, timers, shutdown),
 * loop_http.c (requests: libcurl easy handles, header and body capture, error mapping) and
 * loop_h1.c (the loop's own HTTP/1.1 client for plain http:// to IP literals).
 *
 * Epoll keys: libcurl's sockets and the wake-up eventfd are registered with data.fd (the
 * upper 32 bits of data.u64 are zero); loop_h1.c's connections with data.u64 = the connection's
 * address | HR__DLOOP_H1_TAG. run_loop() tells them apart by that bit.
 */
#ifndef HR_DELIVERY_LOOP_INT_H
#define HR_DELIVERY_LOOP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <curl/curl.h>
#include <http_parser.h>

#include "delivery/loop.h"

/* Bit 63 of an epoll key: the rest is a struct hr__h1_conn *, not a file descriptor. */
#define HR__DLOOP_H1_TAG (UINT64_C(1) << 63)

/* hr_dloop_req_t.priv.h1_hdr_flags: which added headers replace the fast path's defaults, and
 * which it leaves to libcurl (message framing and connection management). */
enum {
    HR__H1_HDR_HOST = 1,       /* Host: replaces ours */
    HR__H1_HDR_USER_AGENT = 2, /* User-Agent: replaces opts.user_agent */
    HR__H1_HDR_ACCEPT = 4,     /* Accept: replaces "Accept: * / *" */
    HR__H1_HDR_CURL = 8,       /* Content-Length, Transfer-Encoding, Connection, Expect, ...:
                                * the request goes through libcurl */
};

/* The loop's own HTTP/1.1 client state (loop_h1.c); loop thread only. */
typedef struct hr__h1 {
    size_t max_conns;             /* opts.max_connections */
    size_t max_host_conns;        /* opts.max_host_connections */
    struct hr__h1_pool **buckets; /* pools by address and port; chained; power-of-two size */
    size_t n_buckets, n_pools;
    struct hr__h1_pool *wait_pools; /* pools with requests waiting for a connection */
    size_t n_open;                  /* connections open (connecting, busy or idle) */
    size_t n_idle;                  /* of which idle */
    struct hr__h1_conn *closed;     /* closed since the last hr__h1_reap(): an epoll batch may
                                     * still name them, so they are freed only after it */
    struct hr__h1_conn *spare;      /* closed and reaped, kept with their buffers for reuse */
    struct hr__h1_conn *flush;      /* connections with pipelined requests to write before
                                     * the loop next waits (hr__h1_flush), doubly linked */
    size_t n_spare;
    char *rbuf; /* one read buffer for every connection: the parser consumes all it is fed */
    hr_dloop_timer_t sweep; /* closes connections idle too long, frees unused pools */
    size_t n_timers;        /* the loop's own active timers (sweep, request timeouts) */
} hr__h1_t;

/*
 * One HTTP/1.1 response being received (one per connection, reused for each request on it):
 * http_parser in HTTP_RESPONSE mode, with callbacks that capture into `req` exactly as the
 * libcurl path does. Also driven directly by fuzz/h1resp_fuzz.c (no sockets).
 */
typedef struct hr__h1_resp {
    http_parser parser;
    hr_dloop_req_t *req;   /* the result fields receive status, body, captured headers */
    size_t max_body_bytes; /* body bytes kept; the rest is read and discarded */
    size_t n_fed;          /* bytes consumed for this request (1xx responses included) */
    hr_buf_t name, value;  /* the header being assembled from the parser's pieces; value
                            * only for headers that are kept */
    char kind;             /* hr__dloop_header_kind() of name, once its value started */
    bool in_value;         /* the parser is inside the current header's value */
    bool head;             /* the request was HEAD: the response has no body */
    bool interim;          /* the response being parsed is a 1xx (skipped) */
    bool complete;         /* the final response ended; the parser is paused */
    bool keep_alive;       /* once complete: the connection may carry another request */
    bool will_close;       /* the final response's head says the connection ends with it */
    bool bad_status;       /* the status code was below 100 (the parse then failed) */
} hr__h1_resp_t;

/* hr_dloop_req_t.priv.state */
enum {
    HR__DLOOP_REQ_IDLE = 0, /* owned by the caller */
    HR__DLOOP_REQ_QUEUED,   /* in the task queue, on its way from another thread */
    HR__DLOOP_REQ_ACTIVE,   /* added to the multi handle, on the in-flight list */
};

struct hr_dloop {
    CURLM *multi;
    pthread_t thread;
    int epoll_fd; /* the loop's sockets (libcurl's, via socket_cb) and wake_fd */
    int wake_fd;  /* eventfd: a poster made the task queue non-empty, or destroy */

    /* Options, immutable after create. */
    size_t max_body_bytes;
    size_t max_posted;
    size_t max_idle_handles;
    char *ca_file;    /* NULL = default */
    char *user_agent; /* never NULL */
    char *proxy;      /* NULL = environment */
    bool curl_only;   /* opts.curl_only */
    bool env_proxy;   /* proxy is NULL and an *_proxy variable was set at create */

    /* Shared with other threads: the task queue, under `mu`. */
    pthread_mutex_t mu;
    hr_dloop_task_t *q_head, *q_tail;
    bool q_stopping;        /* destroy asked the thread to stop */
    bool q_closed;          /* shutdown drained the queue for good; posts fail with HR_ECLOSED */
    atomic_size_t n_posted; /* hr_dloop_post() tasks allocated and not yet run */

    /* Loop thread only. */
    bool shutting_down;
    hr_dloop_req_t *active; /* in-flight requests, doubly linked through priv.prev/next */
    size_t n_active;
    CURL **pool; /* idle easy handles, reset, ready for the next request */
    size_t n_pool;
    hr_dloop_timer_t **heap; /* 0-based min-heap by (deadline_ns, seq); t->heap_pos = i + 1 */
    size_t n_heap, heap_cap;
    uint64_t timer_seq;
    uint64_t curl_deadline_ns; /* when libcurl wants CURL_SOCKET_TIMEOUT; UINT64_MAX = never */
    hr__h1_t h1;               /* the loop's own HTTP/1.1 client */
};

/* Loop thread. Hands `req` to libcurl: takes an easy handle from the pool, sets the options,
 * adds it to the multi handle and links it on the in-flight list. Returns 0 or a negative code
 * (the request is then idle again and done() is not called). */
int hr__dloop_req_start(hr_dloop_t *l, hr_dloop_req_t *req);

/* Loop thread. Completes an in-flight request whose transfer ended with `rc`: fills in the
 * result, returns the easy handle to the pool, then calls done(). */
void hr__dloop_req_finish(hr_dloop_t *l, hr_dloop_req_t *req, CURLcode rc);

/* Loop thread. Completes a request that is not in flight (queued, or cancelled) with `err`
 * and `text`, then calls done(). For an in-flight one, detaches it from libcurl first. */
void hr__dloop_req_fail(hr_dloop_t *l, hr_dloop_req_t *req, int err, const char *text);

/* Loop thread. Frees every pooled easy handle. */
void hr__dloop_pool_free(hr_dloop_t *l);

/* Loop thread. Links a starting request on the in-flight list / unlinks a finished one. */
void hr__dloop_active_add(hr_dloop_t *l, hr_dloop_req_t *req);
void hr__dloop_active_remove(hr_dloop_t *l, hr_dloop_req_t *req);

/* ---- response capture, shared by the transports (loop_http.c) ---- */

/* Clears the result fields; any state. */
void hr__dloop_clear_result(hr_dloop_req_t *req);

/* Which kept kind a response header name (len bytes, any case) is: 'c' ce-*, 't' Content-Type,
 * 'r' Retry-After, or 0 (not kept). */
char hr__dloop_header_kind(const char *name, size_t len);

/* A status line arrived: forgets the headers captured so far (those of a 1xx response). */
void hr__dloop_capture_reset(hr_dloop_req_t *req);

/* Keeps one response header of `kind` (non-zero): the name lower-cased, the value trimmed of
 * surrounding whitespace. Copies both. A name or value containing NUL is ignored. Returns 0 or
 * HR_ENOMEM (and sets priv.oom). */
int hr__dloop_capture_header(hr_dloop_req_t *req, char kind, const char *name, size_t name_len,
                             const char *value, size_t value_len);

/* Appends response body bytes, keeping at most max_body_bytes (the rest sets resp_truncated
 * and is dropped). Returns 0 or HR_ENOMEM (and sets priv.oom). */
int hr__dloop_capture_body(hr_dloop_req_t *req, size_t max_body_bytes, const char *p, size_t len);

/* Points the public resp_* fields into the captured headers. Returns 0 or HR_ENOMEM. */
int hr__dloop_publish_headers(hr_dloop_req_t *req);

/* ---- the loop's own HTTP/1.1 client (loop_h1.c), loop thread ---- */

/* Records whether the added header `name` matters to the fast path (HR__H1_HDR_*); any thread
 * that owns the idle request. */
void hr__h1_note_header(hr_dloop_req_t *req, const char *name);

/* Starts `req` on the fast path when it is eligible (plain http, IP literal or localhost, no
 * proxy, headers it can send, !curl_only): sets *taken and returns 0; done() will run. Not
 * eligible: *taken is false, nothing changed, and the caller uses libcurl. The result fields
 * must be cleared and priv.loop set already. */
int hr__h1_start(hr_dloop_t *l, hr_dloop_req_t *req, bool *taken);

/* Takes an in-flight fast-path request back (shutdown): closes its connection or removes it
 * from its pool's queue; it is then idle and done() is not called here. */
void hr__h1_cancel(hr_dloop_t *l, hr_dloop_req_t *req);

/* Handles epoll readiness `events` for the connection in `key` (HR__DLOOP_H1_TAG set). */
void hr__h1_on_event(hr_dloop_t *l, uint64_t key, uint32_t events);

/* Frees the connections closed since the last call. Call when no epoll batch is pending. */
void hr__h1_reap(hr_dloop_t *l);

/* Writes the pipelined requests started since the last call: one sendmsg per connection for
 * all its unwritten requests. Call once per iteration, just before epoll_wait(); done() may
 * run (a write failed). */
void hr__h1_flush(hr_dloop_t *l);

/* Closes every connection and frees every pool and buffer; nothing may be in flight. Safe to
 * call twice. */
void hr__h1_free(hr_dloop_t *l);

/* HR_ASSERT-checks the pools, their connection lists, queues and counters. */
void hr__h1_validate(const hr_dloop_t *l);

/* Response parsing (also fuzz/h1resp_fuzz.c). hr__h1_resp_begin prepares `r` for the response
 * to `req` (whose result fields were cleared); r's buffers are kept across calls. */
void hr__h1_resp_begin(hr__h1_resp_t *r, hr_dloop_req_t *req, size_t max_body_bytes, bool head);

/* Feeds n response bytes. Returns 0 (more needed; all consumed), 1 (the final response is
 * complete; *used bytes were consumed, any rest does not belong to it), HR_EIO (malformed:
 * hr__h1_resp_error says where) or HR_ENOMEM. */
int hr__h1_resp_feed(hr__h1_resp_t *r, const char *p, size_t n, size_t *used);

/* The peer closed the connection. Returns 1 when that completed the response (a body read
 * until close), else HR_EIO (r->n_fed tells whether anything had arrived). */
int hr__h1_resp_eof(hr__h1_resp_t *r);

/* Writes "Malformed HTTP response at byte N: <http_parser's description> (<name>)". */
void hr__h1_resp_error(const hr__h1_resp_t *r, char *out, size_t cap);

/* Frees r's buffers. */
void hr__h1_resp_free(hr__h1_resp_t *r);

#endif
