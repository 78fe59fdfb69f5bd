/* SPDX-License-Identifier: MIT */
/*
 * The delivery loop: one thread that runs many concurrent HTTP requests over keep-alive
 * connections, a min-heap of timers and a FIFO of tasks posted from other threads (DESIGN.md
 * §3, §6). Plain http:// requests to an IP literal or localhost, without a proxy, run on the
 * loop's own HTTP/1.1 client (loop_h1.c); everything else (https, proxies, host names) runs
 * on a libcurl multi handle. Both share one epoll set, the connection limits and the result
 * format; callers cannot tell them apart except by speed.
 *
 * The trigger runtime lives on this thread: it submits requests and starts timers from
 * done() callbacks, timer callbacks and posted tasks, all of which run on the loop thread.
 * Nothing here blocks on anything but epoll_wait(); callbacks must not block either.
 *
 * Threads:
 *   - hr_dloop_create / hr_dloop_destroy: any thread except the loop thread.
 *   - hr_dloop_submit, hr_dloop_post, hr_dloop_post_task, hr_dloop_on_loop_thread: any thread.
 *   - timers, hr_dloop_stats, hr_dloop_validate: the loop thread only (HR_ASSERT-checked).
 *   - hr_dloop_req_* helpers: whichever thread owns the request while it is idle.
 *
 * Shutdown (hr_dloop_destroy), in this order, on the loop thread:
 *   1. Queued tasks run (so that whatever their argument owns can be freed), FIFO.
 *   2. Requests queued from other threads and every transfer in flight complete with
 *      error HR_ECLOSED and error_text "shutting down"; their done() runs as usual.
 *      While shutting down, hr_dloop_submit() returns HR_ECLOSED without calling done().
 *   3. Steps 1-2 repeat until nothing is queued or in flight (callbacks may post more).
 *   4. Pending timers are cancelled: their callbacks do NOT run; each becomes inactive.
 * Then the thread exits and is joined. Other threads must stop calling into the loop before
 * hr_dloop_destroy() starts; posts that still race in get HR_ECLOSED.
 */
#ifndef HR_DELIVERY_LOOP_H
#define HR_DELIVERY_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct hr_dloop hr_dloop_t;
typedef struct hr_dloop_req hr_dloop_req_t;
typedef struct hr_dloop_timer hr_dloop_timer_t;
typedef struct hr_dloop_task hr_dloop_task_t;

/* ---- the loop ---- */

typedef struct hr_dloop_opts {
    size_t max_connections;      /* open connections in total; default 512 */
    size_t max_host_connections; /* open connections per host:port; default 64. Requests
                                  * beyond the limits wait (FIFO) for a free one. Each
                                  * transport counts its own connections against these. */
    size_t max_body_bytes;       /* response body bytes kept per request; default 64 KiB */
    size_t max_posted;           /* hr_dloop_post() tasks queued at once; default 65536 */
    size_t max_idle_handles;     /* curl easy handles kept for reuse; default 256 */
    const char *ca_file;         /* copied; NULL = libcurl's default CA bundle */
    const char *user_agent;      /* copied; NULL = "herald/" HR_VERSION (build-defined,
                                  * else "0.1.0") */
    const char *proxy;           /* copied; NULL = honour *_proxy environment variables,
                                  * "" = never use a proxy, else a proxy URL */
    bool curl_only;              /* every request through libcurl, none through the loop's
                                  * own HTTP/1.1 client (for tests and comparisons) */
} hr_dloop_opts_t;

/* Fills `o` with the defaults above. */
void hr_dloop_opts_default(hr_dloop_opts_t *o);

/* Creates the loop and starts its thread. `opts` (NULL = defaults; zero fields = defaults) and
 * its strings are copied. Returns 0, HR_ENOMEM, or -errno when the thread cannot start. */
int hr_dloop_create(const hr_dloop_opts_t *opts, hr_dloop_t **out);

/* Shuts down as described at the top of this file and frees the loop. Must not be called on
 * the loop thread. NULL is a no-op. */
void hr_dloop_destroy(hr_dloop_t *l);

/* True when the calling thread is `l`'s loop thread. Any thread. */
bool hr_dloop_on_loop_thread(const hr_dloop_t *l);

typedef struct hr_dloop_stats {
    size_t in_flight;      /* requests started (either transport) and not yet done */
    size_t timers;         /* active timers started by callers (not the loop's own) */
    size_t idle_handles;   /* pooled easy handles */
    size_t h1_connections; /* open connections of the loop's own HTTP/1.1 client (libcurl's
                            * are not counted) */
    size_t h1_idle;        /* of which idle (keep-alive) */
} hr_dloop_stats_t;

/* Loop thread only. */
void hr_dloop_stats(const hr_dloop_t *l, hr_dloop_stats_t *out);

/* Checks the timer heap, the in-flight list and the HTTP/1.1 connection pools with HR_ASSERT;
 * O(n). Loop thread only. */
void hr_dloop_validate(const hr_dloop_t *l);

/* ---- posting work to the loop thread ---- */

/* An intrusive task: embed it in your own struct. */
struct hr_dloop_task {
    void (*fn)(void *arg);
    void *arg;
    /* Internal. */
    hr_dloop_task_t *next;
    bool owned; /* allocated by hr_dloop_post(), freed by the loop */
};

/* Runs fn(arg) on the loop thread soon, never inside this call, after everything queued
 * before it: one FIFO holds hr_dloop_post, hr_dloop_post_task and (from threads other than
 * the loop thread) hr_dloop_submit. Tasks posted by a task run in a later iteration. Any thread.
 * Allocates a task; memory is bounded by opts.max_posted queued tasks. Returns 0, HR_EBUSY
 * when max_posted tasks are queued (back-pressure: retry later), HR_ENOMEM, or HR_ECLOSED
 * after shutdown finished. On error fn is not run. */
int hr_dloop_post(hr_dloop_t *l, void (*fn)(void *arg), void *arg);

/* Like hr_dloop_post() but allocation-free and unbounded: `task` (fn and arg set by the
 * caller) is borrowed until its fn starts running; it may then be freed or posted again.
 * Returns 0 or HR_ECLOSED (task not queued) after shutdown finished. Any thread. */
int hr_dloop_post_task(hr_dloop_t *l, hr_dloop_task_t *task);

/* ---- timers (loop thread only) ---- */

typedef void (*hr_dloop_timer_fn)(hr_dloop_timer_t *t, void *arg);

/* An intrusive timer: embed it in your own struct. A zero-initialised timer is inactive;
 * it needs no init call. It must stay valid while active (until it fires, is stopped or the
 * loop is destroyed). */
struct hr_dloop_timer {
    uint64_t deadline_ns; /* hr_mono_ns() clock; read-only for callers */
    /* Internal. */
    uint64_t seq;    /* start order: breaks deadline ties FIFO */
    size_t heap_pos; /* 1-based index in the heap; 0 = inactive */
    hr_dloop_timer_fn cb;
    void *arg;
};

/* Arms `t` to call cb(t, arg) on the loop thread once hr_mono_ns() >= deadline_ns (a deadline
 * in the past fires on the next loop iteration, never inside this call). Restarting an
 * active timer moves it. Timers with equal deadlines fire in start order. O(log n). The heap
 * grows with an aborting allocator (it holds one pointer per timer). */
void hr_dloop_timer_start(hr_dloop_t *l, hr_dloop_timer_t *t, uint64_t deadline_ns,
                          hr_dloop_timer_fn cb, void *arg);

/* Disarms `t`. O(log n). On an inactive timer it is a no-op that reads only `t` (`l` may be
 * NULL), so owners may clean up from any thread, also after hr_dloop_destroy() (which leaves
 * every timer inactive). */
void hr_dloop_timer_stop(hr_dloop_t *l, hr_dloop_timer_t *t);

static inline bool hr_dloop_timer_is_active(const hr_dloop_timer_t *t)
{
    return t->heap_pos != 0;
}

/* ---- HTTP requests ---- */

typedef struct hr_dloop_header {
    const char *name; /* lower-cased */
    const char *value;
} hr_dloop_header_t;

/*
 * An HTTP request and, after done(), its result. Embed it in your own struct, call
 * hr_dloop_req_init() once, set the request fields, add headers, then hr_dloop_submit().
 * The same request may be submitted again for the next attempt (from done() or later); the
 * previous result is cleared by hr_dloop_submit(). hr_dloop_req_free() releases its memory.
 *
 * Error codes in `error` (0 means a complete HTTP response was received, whatever its status):
 *   HR_ETIMEOUT   the attempt took longer than timeout_ms (connect, send or response)
 *   -errno        connecting failed, e.g. -ECONNREFUSED, -ENETUNREACH
 *   HR_ENOTFOUND  the host name did not resolve
 *   HR_EREJECTED  TLS failed: handshake, certificate verification, client certificate
 *   HR_EINVAL     the URL is malformed or its scheme is not http/https
 *   HR_ENOMEM     out of memory while building the request or receiving the response
 *   HR_ECLOSED    the loop shut down before the attempt finished ("shutting down")
 *   HR_EIO        any other transport failure (connection reset, malformed response, ...)
 * error_text then says what failed and where (libcurl's message, e.g. "Failed to connect to
 * 127.0.0.1 port 9 after 0 ms: Couldn't connect to server", or the loop's own client's in the
 * same form); curl_code has the CURLcode (the loop's own client reports the nearest one:
 * CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
 * CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_WEIRD_SERVER_REPLY, CURLE_OUT_OF_MEMORY).
 */
struct hr_dloop_req {
    /* Request: set by the caller; borrowed until done() runs. */
    const char *url;     /* http:// or https:// only; redirects are not followed */
    const char *method;  /* NULL = "POST"; "GET" and "HEAD" send no body */
    hr_iov_t body;       /* sent as is (Content-Length); not copied */
    uint32_t timeout_ms; /* per attempt, from hand-over to the transport, so it includes
                          * waiting for a free connection under the limits; 0 = none;
                          * default 10 s */
    bool verify_tls;     /* default true: verify the peer certificate and host name */
    uint16_t pipeline;   /* HTTP/1.1 pipelining: the most requests this one may share a
                          * keep-alive connection with, counting itself; 0 or 1 = none (the
                          * default). Requests with pipeline > 1 started in one loop iteration
                          * go out together, one write per connection, on connections that
                          * have proven keep-alive; a request whose connection fails under it
                          * before its response is started again, alone, and done() still runs
                          * once. Use only for idempotent or duplicate-tolerant requests: a
                          * restarted request may already have reached the sink. Honoured by
                          * the loop's own HTTP/1.1 client only; libcurl requests (https,
                          * proxies, host names) ignore it. */
    void (*done)(hr_dloop_req_t *req); /* runs once per successful submit, on the loop thread */
    void *user;

    /* Result: set before done(); the caller may read, modify or steal (hr_buf_steal) these
     * until it resets, frees or submits the request again. Pointers point into the request. */
    int error;            /* see above */
    int curl_code;        /* CURLcode of the attempt; 0 when error is 0 */
    char error_text[256]; /* "" when error is 0 */
    long status;          /* HTTP status; 0 when no status line arrived */
    uint64_t latency_us;  /* hand-over to the transport → completion */
    hr_buf_t resp_body;   /* at most opts.max_body_bytes bytes, NUL-terminated when non-empty */
    bool resp_truncated;  /* the body was longer; the rest was read and discarded */
    const char *resp_content_type;    /* Content-Type value or NULL */
    const char *resp_retry_after;     /* raw Retry-After value or NULL */
    const hr_dloop_header_t *resp_ce; /* response headers named ce-*, in arrival order */
    size_t resp_ce_count;

    /* Internal. */
    struct hr_dloop_req_priv {
        hr_buf_t hdrs; /* "Name: value\0" lines added by hr_dloop_req_add_header, or
                        * "Name;\0" for an empty value (libcurl's form) */
        size_t n_hdrs;
        bool has_content_type;
        uint8_t h1_hdr_flags; /* HR__H1_HDR_* (loop_int.h): headers the fast path cares for */
        void *slist;          /* struct curl_slist[n_hdrs + 2], pointing into hdrs */
        size_t slist_cap;
        hr_buf_t resp_hdrs; /* captured response headers: kind, "name\0value\0" records */
        hr_dloop_header_t *ce;
        size_t ce_cap;
        bool oom;
        int state; /* HR__DLOOP_REQ_* in loop.c */
        hr_dloop_t *loop;
        void *easy; /* CURL * while in flight */
        uint64_t start_ns;
        hr_dloop_req_t *prev, *next; /* in-flight list */
        hr_dloop_task_t submit_task; /* hand-over from another thread */
        /* The loop's own HTTP/1.1 client (loop_h1.c); meaningful while h1 is set. */
        bool h1;                     /* in flight there (easy is then NULL) */
        bool h1_retried;             /* already retried once on a fresh connection */
        bool h1_waiting;             /* queued in its pool for a free connection */
        int h1_err;                  /* failure found while starting, reported by h1_timer */
        int h1_curl_code;            /* its CURLcode */
        struct hr__h1_pool *h1_pool; /* host:port it goes to */
        struct hr__h1_conn *h1_conn; /* connection it runs on; NULL while waiting */
        hr_dloop_req_t *h1_wprev, *h1_wnext; /* the pool's FIFO of waiting requests */
        hr_dloop_req_t *h1_cnext;            /* next on its connection (FIFO of responses) */
        size_t h1_head_off, h1_head_len;     /* its head in the connection's head buffer */
        uint16_t h1_depth;                   /* pipeline in effect: 1 once restarted */
        hr_dloop_timer_t h1_timer;           /* timeout_ms, or the deferred failure */
        uint16_t h1_target_off;              /* "/path?query" inside url (0 = none: send "/") */
        uint16_t h1_target_len;
        uint16_t h1_host_off; /* host inside url, without brackets */
        uint16_t h1_host_len;
        uint16_t h1_port; /* from the URL; 80 when it has none */
        bool h1_ipv6;     /* the host is an IPv6 literal ("[...]" in Host:) */
    } priv;
};

/* Zeroes `req` and sets the defaults (POST, timeout 10 s, verify_tls). */
void hr_dloop_req_init(hr_dloop_req_t *req);

/* Adds a request header; name and value are copied. An empty value sends "Name:" with an
 * empty value. A Content-Type header replaces libcurl's default; without one none is sent.
 * Host, User-Agent and Accept replace the defaults. Headers that frame the message or manage
 * the connection (Content-Length, Transfer-Encoding, Connection, Expect, TE, Upgrade,
 * Keep-Alive, Proxy-Connection, Trailer) are sent as given, and make the request go through
 * libcurl.
 * Returns 0, HR_EINVAL (empty name, or CR, LF, NUL, ':' or whitespace in the name; CR or LF
 * in the value) or HR_ENOMEM. Not while the request is in flight. */
int hr_dloop_req_add_header(hr_dloop_req_t *req, const char *name, const char *value);

/* Removes all added headers (keeps their memory for reuse). Not while in flight. */
void hr_dloop_req_clear_headers(hr_dloop_req_t *req);

/* Clears the result fields, keeping request fields, headers and buffer capacity. Not while
 * in flight. hr_dloop_submit() does this itself. */
void hr_dloop_req_reset(hr_dloop_req_t *req);

/* Frees all memory the request owns (headers and result); hr_dloop_req_init() is needed
 * before reusing it. Not while in flight. */
void hr_dloop_req_free(hr_dloop_req_t *req);

/* Starts an attempt. `req` must be idle (initialised, not in flight); it and everything it
 * points to are borrowed until done(req) runs on the loop thread, exactly once, after which
 * the loop never touches it again (done may free or resubmit it).
 * On the loop thread the transfer starts now: returns 0, or HR_ENOMEM / HR_EINVAL (bad
 * option) / HR_ECLOSED (shutting down) and then done() is NOT called.
 * From another thread the request is queued (FIFO with posts) and the loop woken: returns 0,
 * or HR_ECLOSED after shutdown finished; failures found later are reported through done(). */
int hr_dloop_submit(hr_dloop_t *l, hr_dloop_req_t *req);

#endif
