/* SPDX-License-Identifier: MIT */
/*
 * The delivery loop's own HTTP/1.1 client: plain http:// requests to an IPv4/IPv6 literal or
 * localhost, without a proxy, run here instead of through libcurl (whose per-request cost,
 * mallocs, liveness poll() on every reuse and epoll_ctl churn were half the loop's CPU).
 * hr__dloop_req_start() (loop_http.c) offers every request to hr__h1_start(); what it does
 * not take (https, proxies, host names, unusual headers or URLs) goes to libcurl unchanged.
 * Everything here runs on the delivery loop thread.
 *
 * Pools. One pool per (address, port) holds its open connections (idle ones LIFO, so the
 * warmest is reused and the coldest ages out) and a FIFO of requests waiting for one. A pool
 * opens at most opts.max_host_connections connections and all pools together at most
 * opts.max_connections (libcurl counts its own against the same limits). When the total is
 * reached, an idle connection of another pool is closed to make room; otherwise the request
 * waits, and every connection that frees up (response done, closed) goes to the head of the
 * queue first, before done() runs. Its timeout runs while it waits.
 *
 * A connection (non-blocking, TCP_NODELAY) is registered once, at connect, with
 * EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET and key = its address | HR__DLOOP_H1_TAG; close()
 * removes it (herald never forks, so no other process holds the socket open), so a connection
 * costs one epoll_ctl in its lifetime. Edge-triggered, so:
 *   - a request is written at once when it gets a connection (one sendmsg of [head, body]),
 *     unless it is pipelined (below); a short write keeps its offset and continues on the
 *     next EPOLLOUT edge;
 *   - reads continue until a short read (the receive queue was emptied, epoll(7)) or EAGAIN,
 *     and until EOF when the event carried EPOLLRDHUP/EPOLLHUP;
 *   - any readiness on an idle connection (data, FIN, error) closes it: the peer gave up on it.
 *
 * States of a connection:
 *     CONNECTING --connected--> BUSY --last response done (keep-alive)--> IDLE
 *          ^                     ^                                          |
 *          +-- new connection    +------------- a request ------------------+
 *     any --error, timeout, Connection: close, cancel--> CLOSED (freed after the epoll batch)
 * A busy connection carries a FIFO of requests (q_head .. q_tail): responses come in request
 * order, so the head's response is the one being parsed, and w_req marks the first request
 * not yet written whole. Without pipelining the FIFO holds one request. A response may
 * complete before its request is fully written (a sink answering early): the connection is
 * then closed, never reused.
 *
 * Pipelining (hr_dloop_req_t.pipeline > 1, "depth" here; loop.h). Invariants:
 *   1. A pipelined request joins a busy connection only if it proved HTTP/1.1 keep-alive (a
 *      response on which it stayed open), is not closing (the response being read says
 *      close, or the peer shut its side), every request on it is pipelined and the count on
 *      it stays within every one's depth (can_join()). So a request without pipelining is
 *      always alone on its connection, and new connections carry one request.
 *   2. Connection choice: choose(), (a) a connection filling up in this iteration, (b) idle,
 *      (c) new under the limits, (d) the joinable busy one with the fewest requests, (e) the
 *      pool's FIFO.
 *   3. Coalescing: pipelined requests are not written when they get a connection; it is
 *      listed in l->h1.flush and hr__h1_flush() (loop.c, just before epoll_wait) writes all
 *      its unwritten requests in one sendmsg. Their heads sit back to back in the
 *      connection's head buffer.
 *   4. Exactly once: a request is on one connection, in one wait FIFO, or failed and due
 *      (h1_err, reported by its timer), never two (hr__h1_validate() checks it). Only the
 *      request that failed, the head on EOF/reset/malformed responses, or the one whose timer
 *      fired, is completed with the error; the others on a connection that closes under them
 *      without their complete response are started again (restart_all) without done(),
 *      keeping their deadline, and from then on alone (depth 1): a sink that keeps failing
 *      cannot bounce them forever, and their next failure is reported. Requests behind a
 *      response that says Connection: close (or an HTTP/1.0 one without keep-alive) restart
 *      the same way.
 *   5. A restarted request may already have reached the sink (it was written, the sink may
 *      have acted before the connection failed): pipelining is for requests where a
 *      duplicate is acceptable, as with any retry.
 *
 * Responses are parsed by nodejs' http_parser (hr__h1_resp_*, loop_h1resp.c, also fuzzed):
 * 1xx responses are skipped, HEAD responses have no body, bodies come by Content-Length,
 * chunked, or until close. Headers and body go through loop_http.c's capture helpers, so both
 * transports give identical results.
 *
 * Failures (error, curl_code, error_text in libcurl's words, so logs and dead letters read
 * the same): connect errors -errno / CURLE_COULDNT_CONNECT; timeouts HR_ETIMEOUT /
 * CURLE_OPERATION_TIMEDOUT; malformed responses HR_EIO / CURLE_WEIRD_SERVER_REPLY naming the
 * parser's error and byte; a peer that closes early HR_EIO / CURLE_GOT_NOTHING or
 * CURLE_PARTIAL_FILE; send/receive errors HR_EIO / CURLE_SEND_ERROR or CURLE_RECV_ERROR. A
 * reused keep-alive connection that fails before any response byte (the sink closed it while
 * idle) is retried once on a fresh connection, as libcurl does. done() never runs inside
 * hr_dloop_submit(): failures found while starting are reported from a due timer.
 *
 * Steady state allocates nothing per request: connections keep their head buffer (grown to
 * the heads of a pipelined batch) and parser buffers, closed ones are kept (up to SPARE_MAX)
 * for reuse, one read buffer serves all.
 */
#include "delivery/loop_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#define RBUF_SIZE (64 * 1024)
#define IDLE_MAX_NS (60 * UINT64_C(1000000000)) /* idle connections and unused pools */
#define SWEEP_EVERY_NS (10 * UINT64_C(1000000000))
#define SPARE_MAX 64     /* closed connections kept for reuse */
#define SEND_MAX_REQS 64 /* requests per sendmsg (two iovecs each) */

typedef struct hr__h1_pool pool_t;
typedef struct hr__h1_conn conn_t;

typedef struct pool_key {
    uint16_t family; /* AF_INET or AF_INET6 */
    uint16_t port;   /* host order */
    uint8_t addr[16];
} pool_key_t;

struct hr__h1_pool {
    pool_key_t key;
    pool_t *hnext;            /* hash chain */
    pool_t *wprev, *wnext;    /* l->h1.wait_pools, while wait_head != NULL */
    conn_t *idle, *idle_tail; /* idle connections, most recently used first */
    conn_t *busy;             /* connections with a request */
    size_t n_open;            /* idle + busy */
    size_t n_idle;
    hr_dloop_req_t *wait_head, *wait_tail; /* requests waiting for a connection, FIFO */
    size_t n_wait;
    size_t n_reqs;            /* in-flight requests that point here (the pool outlives them) */
    uint64_t unused_since_ns; /* when n_open and n_reqs last reached 0 */
};

enum conn_state { C_CONNECTING, C_BUSY, C_IDLE, C_CLOSED };

struct hr__h1_conn {
    int fd;
    enum conn_state state;
    pool_t *pool;
    hr_dloop_req_t *q_head, *q_tail; /* its requests (CONNECTING, BUSY), FIFO through
                                      * priv.h1_cnext: responses come in this order */
    size_t n_reqs;
    uint16_t depth;        /* the smallest priv.h1_depth of its requests: never more on it */
    hr_dloop_req_t *w_req; /* the first request not completely written; NULL = all written */
    size_t w_off;          /* bytes of w_req's head + body written */
    conn_t *prev, *next;   /* the pool's idle or busy list; next: l->h1.closed, spare */
    conn_t *fprev, *fnext; /* l->h1.flush, while in_flush */
    bool in_flush;         /* has requests queued in this iteration, written by hr__h1_flush */
    bool reused;           /* completed a response on which it stayed open */
    bool pipelinable;      /* and its last such response was HTTP/1.1 */
    bool peer_closing;     /* the peer shut its side (EPOLLRDHUP): what is left is read */
    uint64_t idle_since_ns;
    hr_buf_t head; /* heads of w_req and the requests after it, back to back (priv.h1_head_off);
                    * started over when a request is queued after all were written */
    hr__h1_resp_t resp; /* the response to q_head */
};

/* How a request gets a connection (choose()). */
enum { GO_WAIT, GO_JOIN, GO_IDLE, GO_NEW };

static void on_req_timer(hr_dloop_timer_t *t, void *arg);
static void connect_for(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req);
static int build_head(const hr_dloop_t *l, const hr_dloop_req_t *req, hr_buf_t *b);
static int choose(hr_dloop_t *l, pool_t *p, uint16_t depth, conn_t **out);
static void go(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req, int how, conn_t *c);
static void conn_read(hr_dloop_t *l, conn_t *c, uint32_t events);

/* ---- the loop's own timers (not counted in hr_dloop_stats) ---- */

static void itimer_start(hr_dloop_t *l, hr_dloop_timer_t *t, uint64_t deadline_ns,
                         hr_dloop_timer_fn cb, void *arg)
{
    if (!hr_dloop_timer_is_active(t)) {
        l->h1.n_timers++;
    }
    hr_dloop_timer_start(l, t, deadline_ns, cb, arg);
}

static void itimer_stop(hr_dloop_t *l, hr_dloop_timer_t *t)
{
    if (hr_dloop_timer_is_active(t)) {
        l->h1.n_timers--;
        hr_dloop_timer_stop(l, t);
    }
}

/* ---- eligibility: the URL and headers ---- */

void hr__h1_note_header(hr_dloop_req_t *req, const char *name)
{
    /* Run for every added header (several per delivery): only names of the same length and
     * first letter are compared. Those that frame the message or manage the connection are
     * libcurl's business. */
    static const struct {
        const char *name;
        size_t len;
        uint8_t flag;
    } special[] = {
        {"host", 4, HR__H1_HDR_HOST},
        {"user-agent", 10, HR__H1_HDR_USER_AGENT},
        {"accept", 6, HR__H1_HDR_ACCEPT},
        {"te", 2, HR__H1_HDR_CURL},
        {"expect", 6, HR__H1_HDR_CURL},
        {"upgrade", 7, HR__H1_HDR_CURL},
        {"trailer", 7, HR__H1_HDR_CURL},
        {"connection", 10, HR__H1_HDR_CURL},
        {"keep-alive", 10, HR__H1_HDR_CURL},
        {"content-length", 14, HR__H1_HDR_CURL},
        {"proxy-connection", 16, HR__H1_HDR_CURL},
        {"transfer-encoding", 17, HR__H1_HDR_CURL},
    };
    size_t len = strlen(name);
    char first = (char)tolower((unsigned char)name[0]);
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) {
        if (special[i].len == len && special[i].name[0] == first &&
            strcasecmp(name, special[i].name) == 0) {
            req->priv.h1_hdr_flags |= special[i].flag;
            return;
        }
    }
}

static bool is_token(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 127 || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL) {
            return false;
        }
    }
    return true;
}

/* True when the request target is sent by libcurl byte for byte: printable ASCII without
 * spaces, and no "." or ".." segment (libcurl would remove those). */
static bool plain_target(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= ' ' || c >= 127) {
            return false;
        }
        if (c == '/' && i + 1 < n && t[i + 1] == '.') {
            size_t j = i + 2 < n && t[i + 2] == '.' ? i + 3 : i + 2;
            if (j >= n || t[j] == '/' || t[j] == '?') {
                return false;
            }
        }
        if (c == '?') {
            break; /* the query is sent as is */
        }
    }
    return true;
}

/* Decides whether `req` can take the fast path; if so fills `key` and the priv.h1_* URL
 * fields. The URL must be http://<IPv4 | [IPv6] | localhost>[:port][/path][?query][#frag]
 * with nothing libcurl would rewrite. */
static bool parse_target(const hr_dloop_t *l, hr_dloop_req_t *req, pool_key_t *key)
{
    if (l->curl_only || l->env_proxy || (l->proxy != NULL && l->proxy[0] != '\0') ||
        (req->priv.h1_hdr_flags & HR__H1_HDR_CURL)) {
        return false;
    }
    const char *m = req->method != NULL ? req->method : "POST";
    const char *url = req->url;
    size_t len = strlen(url);
    if (!is_token(m) || len < 8 || len >= UINT16_MAX || strncasecmp(url, "http://", 7) != 0) {
        return false;
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, len, 0, &u) != 0) {
        return false;
    }
    unsigned set = u.field_set;
    if (!(set & (1u << UF_HOST)) || (set & (1u << UF_USERINFO)) ||
        ((set & (1u << UF_QUERY)) && !(set & (1u << UF_PATH)))) {
        return false;
    }
    size_t h_off = u.field_data[UF_HOST].off, h_len = u.field_data[UF_HOST].len;
    char host[INET6_ADDRSTRLEN + 1];
    if (h_len == 0 || h_len >= sizeof host) {
        return false;
    }
    memcpy(host, url + h_off, h_len);
    host[h_len] = '\0';
    bool bracketed = url[h_off - 1] == '[';
    memset(key, 0, sizeof *key);
    if (!bracketed && strcasecmp(host, "localhost") == 0) {
        key->family = AF_INET;
        uint32_t lo = htonl(INADDR_LOOPBACK);
        memcpy(key->addr, &lo, 4);
    } else if (!bracketed && inet_pton(AF_INET, host, key->addr) == 1) {
        key->family = AF_INET;
    } else if (bracketed && inet_pton(AF_INET6, host, key->addr) == 1) {
        key->family = AF_INET6;
    } else {
        return false;
    }
    key->port = 80;
    if (set & (1u << UF_PORT)) {
        if (u.port == 0) {
            return false;
        }
        key->port = u.port;
    }
    size_t t_off = 0, t_len = 0;
    if (set & (1u << UF_PATH)) {
        t_off = u.field_data[UF_PATH].off;
        size_t end = t_off + u.field_data[UF_PATH].len;
        if (set & (1u << UF_QUERY)) {
            end = u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len;
        }
        t_len = end - t_off;
        if (!plain_target(url + t_off, t_len)) {
            return false;
        }
    }
    req->priv.h1_target_off = (uint16_t)t_off;
    req->priv.h1_target_len = (uint16_t)t_len;
    req->priv.h1_host_off = (uint16_t)h_off;
    req->priv.h1_host_len = (uint16_t)h_len;
    req->priv.h1_port = key->port;
    req->priv.h1_ipv6 = key->family == AF_INET6;
    return true;
}

/* ---- pools ---- */

static bool key_equal(const pool_key_t *a, const pool_key_t *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

static size_t key_hash(const pool_key_t *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    h = (h ^ k->family) * 1099511628211ull;
    h = (h ^ k->port) * 1099511628211ull;
    for (size_t i = 0; i < 16; i++) {
        h = (h ^ k->addr[i]) * 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 32));
}

static void buckets_grow(hr__h1_t *h)
{
    size_t n = h->n_buckets ? h->n_buckets * 2 : 16;
    pool_t **b = hr_xcalloc(n, sizeof *b);
    for (size_t i = 0; i < h->n_buckets; i++) {
        pool_t *p = h->buckets[i];
        while (p != NULL) {
            pool_t *next = p->hnext;
            size_t j = key_hash(&p->key) & (n - 1);
            p->hnext = b[j];
            b[j] = p;
            p = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->n_buckets = n;
}

static void on_sweep(hr_dloop_timer_t *t, void *arg);

/* Finds or creates the pool for `key`. Pools are small control structures: aborting alloc. */
static pool_t *pool_get(hr_dloop_t *l, const pool_key_t *key)
{
    hr__h1_t *h = &l->h1;
    if (h->n_buckets > 0) {
        for (pool_t *p = h->buckets[key_hash(key) & (h->n_buckets - 1)]; p != NULL; p = p->hnext) {
            if (key_equal(&p->key, key)) {
                return p;
            }
        }
    }
    if (h->n_pools >= h->n_buckets) {
        buckets_grow(h);
    }
    pool_t *p = hr_xcalloc(1, sizeof *p);
    p->key = *key;
    size_t i = key_hash(key) & (h->n_buckets - 1);
    p->hnext = h->buckets[i];
    h->buckets[i] = p;
    h->n_pools++;
    if (!hr_dloop_timer_is_active(&h->sweep)) {
        itimer_start(l, &h->sweep, hr_mono_ns() + SWEEP_EVERY_NS, on_sweep, l);
    }
    return p;
}

/* Queues `req` in p's FIFO right after `after` (NULL: first). */
static void wait_insert(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *after, hr_dloop_req_t *req)
{
    hr_dloop_req_t *next = after != NULL ? after->priv.h1_wnext : p->wait_head;
    req->priv.h1_waiting = true;
    req->priv.h1_wprev = after;
    req->priv.h1_wnext = next;
    if (after != NULL) {
        after->priv.h1_wnext = req;
    } else {
        p->wait_head = req;
    }
    if (next != NULL) {
        next->priv.h1_wprev = req;
    } else {
        p->wait_tail = req;
    }
    if (p->n_wait++ == 0) {
        /* The pool now has waiters: list it for kick_all(). */
        p->wprev = NULL;
        p->wnext = l->h1.wait_pools;
        if (l->h1.wait_pools != NULL) {
            l->h1.wait_pools->wprev = p;
        }
        l->h1.wait_pools = p;
    }
}

static void wait_push(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req)
{
    wait_insert(l, p, p->wait_tail, req);
}

static void wait_remove(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req)
{
    HR_ASSERT(req->priv.h1_waiting);
    hr_dloop_req_t *prev = req->priv.h1_wprev, *next = req->priv.h1_wnext;
    if (prev != NULL) {
        prev->priv.h1_wnext = next;
    } else {
        p->wait_head = next;
    }
    if (next != NULL) {
        next->priv.h1_wprev = prev;
    } else {
        p->wait_tail = prev;
    }
    req->priv.h1_waiting = false;
    req->priv.h1_wprev = req->priv.h1_wnext = NULL;
    p->n_wait--;
    if (p->wait_head == NULL) {
        if (p->wprev != NULL) {
            p->wprev->wnext = p->wnext;
        } else {
            l->h1.wait_pools = p->wnext;
        }
        if (p->wnext != NULL) {
            p->wnext->wprev = p->wprev;
        }
        p->wprev = p->wnext = NULL;
    }
}

/* ---- connection lists ---- */

static void list_push(conn_t **head, conn_t *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head != NULL) {
        (*head)->prev = c;
    }
    *head = c;
}

static void list_remove(conn_t **head, conn_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        *head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void idle_remove(hr_dloop_t *l, conn_t *c)
{
    pool_t *p = c->pool;
    if (p->idle_tail == c) {
        p->idle_tail = c->prev;
    }
    list_remove(&p->idle, c);
    p->n_idle--;
    l->h1.n_idle--;
}

/* Lists `c` for hr__h1_flush(): pipelined requests wait for the others started in the same
 * iteration, so that they all go out in one write. */
static void flush_add(hr_dloop_t *l, conn_t *c)
{
    if (c->in_flush) {
        return;
    }
    c->in_flush = true;
    c->fprev = NULL;
    c->fnext = l->h1.flush;
    if (l->h1.flush != NULL) {
        l->h1.flush->fprev = c;
    }
    l->h1.flush = c;
}

static void flush_remove(hr_dloop_t *l, conn_t *c)
{
    if (!c->in_flush) {
        return;
    }
    if (c->fprev != NULL) {
        c->fprev->fnext = c->fnext;
    } else {
        l->h1.flush = c->fnext;
    }
    if (c->fnext != NULL) {
        c->fnext->fprev = c->fprev;
    }
    c->fprev = c->fnext = NULL;
    c->in_flush = false;
}

/* Closes `c` (any state but CLOSED; it carries no request: conn_take() hands those back) and
 * queues the struct for hr__h1_reap(). Frees no waiter's slot by itself: callers run
 * kick_all() when appropriate. */
static void conn_close(hr_dloop_t *l, conn_t *c)
{
    HR_ASSERT(c->state != C_CLOSED && c->q_head == NULL && c->n_reqs == 0);
    pool_t *p = c->pool;
    if (c->state == C_IDLE) {
        idle_remove(l, c);
    } else {
        list_remove(&p->busy, c);
    }
    flush_remove(l, c);
    p->n_open--;
    l->h1.n_open--;
    if (p->n_open == 0 && p->n_reqs == 0) {
        p->unused_since_ns = hr_mono_ns();
    }
    close(c->fd);
    c->fd = -1;
    c->w_req = NULL;
    c->state = C_CLOSED;
    c->pool = NULL;
    c->next = l->h1.closed;
    l->h1.closed = c;
}

/* Closes `c` and hands back the requests it carried, FIFO through priv.h1_cnext, each off
 * it (priv.h1_conn NULL): the caller completes or restarts (restart_all) every one. */
static hr_dloop_req_t *conn_take(hr_dloop_t *l, conn_t *c)
{
    hr_dloop_req_t *list = c->q_head;
    for (hr_dloop_req_t *r = list; r != NULL; r = r->priv.h1_cnext) {
        r->priv.h1_conn = NULL;
    }
    c->q_head = c->q_tail = NULL;
    c->n_reqs = 0;
    conn_close(l, c);
    return list;
}

static void conn_free(conn_t *c)
{
    hr_buf_free(&c->head);
    hr__h1_resp_free(&c->resp);
    free(c);
}

/* Frees the closed connections, or keeps up to SPARE_MAX of them for reuse. */
static void reap(hr_dloop_t *l, bool keep_spares)
{
    while (l->h1.closed != NULL) {
        conn_t *c = l->h1.closed;
        l->h1.closed = c->next;
        if (keep_spares && l->h1.n_spare < SPARE_MAX) {
            c->next = l->h1.spare;
            l->h1.spare = c;
            l->h1.n_spare++;
        } else {
            conn_free(c);
        }
    }
}

void hr__h1_reap(hr_dloop_t *l)
{
    reap(l, true);
}

/* Closes one idle connection of a pool other than `p` to make room under max_connections:
 * the least recently used of the first pool found with one. Returns true if it did. */
static bool evict_idle(hr_dloop_t *l, const pool_t *p)
{
    hr__h1_t *h = &l->h1;
    if (h->n_idle == 0) {
        return false;
    }
    for (size_t i = 0; i < h->n_buckets; i++) {
        for (pool_t *q = h->buckets[i]; q != NULL; q = q->hnext) {
            if (q != p && q->idle_tail != NULL) {
                conn_close(l, q->idle_tail);
                return true;
            }
        }
    }
    return false;
}

/* True when `p` may open one more connection now (evicting another pool's idle one if the
 * total limit requires it). */
static bool has_room(hr_dloop_t *l, const pool_t *p)
{
    if (p->n_open >= l->h1.max_host_conns) {
        return false;
    }
    return l->h1.n_open < l->h1.max_conns || evict_idle(l, p);
}

/* ---- completing requests ---- */

static void kick_all(hr_dloop_t *l);

/* Completes `req` (no longer on a connection or queue): result, latency, then done(). Freed
 * capacity goes to waiting requests first, so queues stay FIFO. `text` may be NULL when
 * error_text was already written. */
static void finish(hr_dloop_t *l, hr_dloop_req_t *req, int err, int curl_code, const char *text)
{
    HR_ASSERT(req->priv.h1 && req->priv.h1_conn == NULL && !req->priv.h1_waiting);
    HR_ASSERT(req->priv.h1_cnext == NULL);
    pool_t *p = req->priv.h1_pool;
    itimer_stop(l, &req->priv.h1_timer);
    req->latency_us = (hr_mono_ns() - req->priv.start_ns) / 1000;
    req->error = err;
    req->curl_code = curl_code;
    if (err == 0) {
        req->error_text[0] = '\0';
    } else if (text != NULL) {
        snprintf(req->error_text, sizeof req->error_text, "%s", text);
    }
    if (req->priv.oom && err != 0) {
        req->error = HR_ENOMEM;
        req->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf(req->error_text, sizeof req->error_text, "out of memory receiving the response");
    }
    if (hr__dloop_publish_headers(req) != 0 && req->error == 0) {
        req->error = HR_ENOMEM;
        req->curl_code = CURLE_OUT_OF_MEMORY;
        snprintf(req->error_text, sizeof req->error_text,
                 "out of memory keeping the response headers");
    }
    if (--p->n_reqs == 0 && p->n_open == 0) {
        p->unused_since_ns = hr_mono_ns();
    }
    req->priv.h1 = false;
    req->priv.h1_pool = NULL;
    hr__dloop_active_remove(l, req);
    req->priv.state = HR__DLOOP_REQ_IDLE;
    kick_all(l);
    req->done(req);
}

/* Reports a failure found while starting or handing out connections, where done() must not
 * run yet (we may be inside hr_dloop_submit()): a due timer completes the request on the next
 * iteration. The request must be off its connection and queue. */
static void fail_soon(hr_dloop_t *l, hr_dloop_req_t *req, int err, int curl_code, const char *text)
{
    req->priv.h1_err = err;
    req->priv.h1_curl_code = curl_code;
    snprintf(req->error_text, sizeof req->error_text, "%s", text);
    itimer_start(l, &req->priv.h1_timer, 0, on_req_timer, req);
}

/*
 * Starts again each request of `list` (from conn_take()) but `except`, which the caller
 * completes itself. They lost their connection before their response was complete through no
 * failure of their own: a pipelined request ahead of them failed or timed out, or the sink
 * closed the connection after an earlier response. So done() is not called and they keep
 * their deadline (the timer runs on). Each runs alone from now on (depth 1): a sink that
 * keeps failing cannot bounce a request from connection to connection, the next failure is
 * its own and is reported. Those that must wait go first in the pool's FIFO, in their order:
 * they were handed out before anything that waits now. Never calls done().
 */
static void restart_all(hr_dloop_t *l, hr_dloop_req_t *list, const hr_dloop_req_t *except)
{
    hr_dloop_req_t *after = NULL; /* the last one queued */
    while (list != NULL) {
        hr_dloop_req_t *req = list;
        list = req->priv.h1_cnext;
        req->priv.h1_cnext = NULL;
        if (req == except) {
            continue;
        }
        pool_t *p = req->priv.h1_pool;
        hr__dloop_clear_result(req); /* the head may have received part of a response */
        req->priv.h1_depth = 1;
        conn_t *c = NULL;
        /* While shutting down nothing new opens: the waiters are cancelled next. */
        int how = l->shutting_down ? GO_WAIT : choose(l, p, 1, &c);
        if (how == GO_WAIT) {
            wait_insert(l, p, after, req);
            after = req;
        } else {
            go(l, p, req, how, c);
        }
    }
}

/* Closes `c` and completes its head request now with the failure; the others start again. */
static void conn_fail(hr_dloop_t *l, conn_t *c, int err, int curl_code, const char *text)
{
    hr_dloop_req_t *req = c->q_head;
    restart_all(l, conn_take(l, c), req);
    finish(l, req, err, curl_code, text);
}

static void on_req_timer(hr_dloop_timer_t *t, void *arg)
{
    hr_dloop_req_t *req = arg;
    hr_dloop_t *l = req->priv.loop;
    l->h1.n_timers--;
    if (req->priv.h1_err != 0) {
        finish(l, req, req->priv.h1_err, req->priv.h1_curl_code, NULL);
        return;
    }
    conn_t *c = req->priv.h1_conn;
    size_t got = c != NULL && c->q_head == req ? c->resp.n_fed : 0;
    if (c != NULL) {
        /* A request on the wire cannot be taken back, and responses come in order: the
         * connection is unusable. The others on it start again elsewhere. */
        restart_all(l, conn_take(l, c), req);
    } else if (req->priv.h1_waiting) {
        wait_remove(l, req->priv.h1_pool, req);
    }
    char text[128];
    snprintf(text, sizeof text,
             "Operation timed out after %llu milliseconds with %zu bytes received",
             (unsigned long long)((hr_mono_ns() - req->priv.start_ns) / 1000000), got);
    finish(l, req, HR_ETIMEOUT, CURLE_OPERATION_TIMEDOUT, text);
}

/* ---- the request head ---- */

static int put(hr_buf_t *b, const char *s, size_t n)
{
    return hr_buf_append(b, s, n);
}

static int puts_(hr_buf_t *b, const char *s)
{
    return hr_buf_append(b, s, strlen(s));
}

static int put_u64(hr_buf_t *b, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put(b, d + i, sizeof d - i);
}

static bool sends_body(const hr_dloop_req_t *req)
{
    const char *m = req->method != NULL ? req->method : "POST";
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

static bool is_head(const hr_dloop_req_t *req)
{
    return req->method != NULL && strcmp(req->method, "HEAD") == 0;
}

/* Bytes `req` puts on the wire: its head and, unless GET or HEAD, its body. */
static size_t wire_len(const hr_dloop_req_t *req)
{
    return req->priv.h1_head_len + (sends_body(req) ? req->body.len : 0);
}

/* Puts `req` last on `c`: its head is appended to the unwritten ones, and if `c` had no
 * request its response is the next to parse. Returns 0 or HR_ENOMEM (nothing changed). */
static int queue_req(const hr_dloop_t *l, conn_t *c, hr_dloop_req_t *req)
{
    if (c->w_req == NULL) {
        c->head.len = 0; /* everything before was written: reuse the buffer from the start */
    }
    size_t off = c->head.len;
    if (build_head(l, req, &c->head) != 0) {
        c->head.len = off;
        return HR_ENOMEM;
    }
    req->priv.h1_head_off = off;
    req->priv.h1_head_len = c->head.len - off;
    req->priv.h1_cnext = NULL;
    req->priv.h1_conn = c;
    if (c->q_tail != NULL) {
        c->q_tail->priv.h1_cnext = req;
    } else {
        c->q_head = req;
    }
    c->q_tail = req;
    if (c->n_reqs == 0 || req->priv.h1_depth < c->depth) {
        c->depth = req->priv.h1_depth;
    }
    c->n_reqs++;
    if (c->w_req == NULL) {
        c->w_req = req;
        c->w_off = 0;
    }
    if (c->q_head == req) {
        hr__h1_resp_begin(&c->resp, req, l->max_body_bytes, is_head(req));
    }
    return 0;
}

/* Takes the head request, whose response is complete and which was written whole, off `c`. */
static void pop_head(conn_t *c)
{
    hr_dloop_req_t *req = c->q_head;
    HR_ASSERT(c->w_req != req);
    c->q_head = req->priv.h1_cnext;
    if (c->q_head == NULL) {
        c->q_tail = NULL;
    }
    c->n_reqs--;
    req->priv.h1_cnext = NULL;
    req->priv.h1_conn = NULL;
    /* The departing request's limit no longer applies (it held at most depth requests). */
    c->depth = UINT16_MAX;
    for (const hr_dloop_req_t *r = c->q_head; r != NULL; r = r->priv.h1_cnext) {
        if (r->priv.h1_depth < c->depth) {
            c->depth = r->priv.h1_depth;
        }
    }
}

/* Appends the request line and headers to `b`: the same request libcurl sends (Host,
 * User-Agent, Accept, Content-Length unless GET/HEAD, the caller's headers). Returns 0 or
 * HR_ENOMEM. */
static int build_head(const hr_dloop_t *l, const hr_dloop_req_t *req, hr_buf_t *b)
{
    const char *url = req->url;
    const struct hr_dloop_req_priv *pv = &req->priv;
    int rc = puts_(b, req->method != NULL ? req->method : "POST");
    rc |= put(b, " ", 1);
    if (pv->h1_target_len > 0) {
        rc |= put(b, url + pv->h1_target_off, pv->h1_target_len);
    } else {
        rc |= put(b, "/", 1);
    }
    rc |= put(b, " HTTP/1.1\r\n", 11);
    if (!(pv->h1_hdr_flags & HR__H1_HDR_HOST)) {
        /* As libcurl: the URL's host, and the port unless it is the default. */
        rc |= put(b, "Host: ", 6);
        rc |= pv->h1_ipv6 ? put(b, "[", 1) : 0;
        rc |= put(b, url + pv->h1_host_off, pv->h1_host_len);
        rc |= pv->h1_ipv6 ? put(b, "]", 1) : 0;
        if (pv->h1_port != 80) {
            rc |= put(b, ":", 1);
            rc |= put_u64(b, pv->h1_port);
        }
        rc |= put(b, "\r\n", 2);
    }
    if (!(pv->h1_hdr_flags & HR__H1_HDR_USER_AGENT) && l->user_agent[0] != '\0') {
        rc |= put(b, "User-Agent: ", 12);
        rc |= puts_(b, l->user_agent);
        rc |= put(b, "\r\n", 2);
    }
    if (!(pv->h1_hdr_flags & HR__H1_HDR_ACCEPT)) {
        rc |= put(b, "Accept: */*\r\n", 13);
    }
    if (sends_body(req)) {
        rc |= put(b, "Content-Length: ", 16);
        rc |= put_u64(b, req->body.len);
        rc |= put(b, "\r\n", 2);
    }
    /* The caller's lines are libcurl's "Name: value" or "Name;" (empty value, sent "Name:"). */
    const char *line = (const char *)pv->hdrs.data;
    for (size_t i = 0; i < pv->n_hdrs; i++) {
        size_t n = strlen(line);
        if (strchr(line, ':') != NULL) {
            rc |= put(b, line, n);
        } else {
            rc |= put(b, line, n - 1);
            rc |= put(b, ":", 1);
        }
        rc |= put(b, "\r\n", 2);
        line += n + 1;
    }
    rc |= put(b, "\r\n", 2);
    return rc != 0 ? HR_ENOMEM : 0;
}

/* ---- connections: writing ---- */

/* Marks `n` more bytes of the unwritten requests on `c` as written. */
static void advance(conn_t *c, size_t n)
{
    while (n > 0) {
        HR_ASSERT(c->w_req != NULL);
        size_t left = wire_len(c->w_req) - c->w_off;
        if (n < left) {
            c->w_off += n;
            return;
        }
        n -= left;
        c->w_req = c->w_req->priv.h1_cnext;
        c->w_off = 0;
    }
}

/* Writes what the socket takes of the unwritten requests on `c`, from w_req at w_off: the
 * heads and bodies of all of them in one sendmsg (SEND_MAX_REQS at a time). Returns 0 (all
 * written, or the rest waits for EPOLLOUT) or -errno. */
static int conn_send(conn_t *c)
{
    while (c->w_req != NULL) {
        struct iovec iov[2 * SEND_MAX_REQS];
        size_t n_iov = 0, off = c->w_off;
        const hr_dloop_req_t *r = c->w_req;
        for (int i = 0; r != NULL && i < SEND_MAX_REQS; r = r->priv.h1_cnext, i++) {
            size_t head_len = r->priv.h1_head_len;
            size_t body_len = sends_body(r) ? r->body.len : 0;
            if (off < head_len) {
                iov[n_iov].iov_base = c->head.data + r->priv.h1_head_off + off;
                iov[n_iov++].iov_len = head_len - off;
                off = 0;
            } else {
                off -= head_len;
            }
            if (off < body_len) {
                iov[n_iov].iov_base = (void *)(r->body.base + off);
                iov[n_iov++].iov_len = body_len - off;
            }
            off = 0; /* only the first request was partly written */
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n_iov};
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (n > 0) {
            advance(c, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        return n < 0 ? -errno : -EPIPE;
    }
    return 0;
}

/* Retries the head request of `c` once on a fresh connection when `c` was a reused keep-alive
 * connection that failed before any byte of its response arrived: the sink most likely
 * closed it while it was idle (or after the previous response). The requests behind it start
 * again too. Returns true if it did (c is then closed). */
static bool try_retry(hr_dloop_t *l, conn_t *c)
{
    hr_dloop_req_t *req = c->q_head;
    if (!c->reused || c->resp.n_fed > 0 || req->priv.h1_retried) {
        return false;
    }
    pool_t *p = c->pool;
    req->priv.h1_retried = true;
    req->priv.h1_depth = 1; /* as restarted requests: alone from now on */
    hr_dloop_req_t *rest = req->priv.h1_cnext;
    (void)conn_take(l, c);
    req->priv.h1_cnext = NULL;
    /* Closing c freed a slot under both limits: the retry takes it (it never waits) before
     * the others restart. */
    connect_for(l, p, req);
    restart_all(l, rest, NULL);
    return true;
}

/* A write on `c` failed with -errno `rc`. `now`: done() may run (not inside a submit). */
static void send_failed(hr_dloop_t *l, conn_t *c, int rc, bool now)
{
    if (now && c->w_req != c->q_head) {
        /* The head request went out whole before: its response may be in the receive queue
         * already (a sink that answered, then closed). Reading takes what is there and ends
         * at EOF or an error, which closes the connection. */
        conn_read(l, c, EPOLLIN | EPOLLRDHUP);
        if (c->state != C_BUSY) {
            return;
        }
    }
    if ((rc == -EPIPE || rc == -ECONNRESET) && try_retry(l, c)) {
        return;
    }
    char text[160];
    snprintf(text, sizeof text, "Failed sending the request: %s", strerror(-rc));
    if (now) {
        conn_fail(l, c, HR_EIO, CURLE_SEND_ERROR, text);
    } else {
        hr_dloop_req_t *req = c->q_head;
        restart_all(l, conn_take(l, c), req);
        fail_soon(l, req, HR_EIO, CURLE_SEND_ERROR, text);
    }
}

/* Makes `c`, which carries no request any more, idle (most recently used first). */
static void conn_idle(hr_dloop_t *l, conn_t *c)
{
    HR_ASSERT(c->q_head == NULL && c->w_req == NULL);
    pool_t *p = c->pool;
    list_remove(&p->busy, c);
    flush_remove(l, c);
    c->state = C_IDLE;
    c->idle_since_ns = hr_mono_ns();
    list_push(&p->idle, c);
    if (p->idle_tail == NULL) {
        p->idle_tail = c;
    }
    p->n_idle++;
    l->h1.n_idle++;
}

/* Gives `req` the idle connection `c`. A request without pipelining is written at once, as
 * it always was; a pipelined one waits for hr__h1_flush(), so that the others started in this
 * iteration can join it and share its write. Never completes `req` here (it may run inside
 * hr_dloop_submit()). */
static void attach(hr_dloop_t *l, conn_t *c, hr_dloop_req_t *req)
{
    HR_ASSERT(c->state == C_IDLE && c->q_head == NULL);
    idle_remove(l, c);
    list_push(&c->pool->busy, c);
    c->state = C_BUSY;
    if (queue_req(l, c, req) != 0) {
        /* The connection is fine: give it back before failing the request. */
        conn_idle(l, c);
        fail_soon(l, req, HR_ENOMEM, CURLE_OUT_OF_MEMORY, "out of memory building the request");
        return;
    }
    if (req->priv.h1_depth > 1) {
        flush_add(l, c);
        return;
    }
    int rc = conn_send(c);
    if (rc != 0) {
        send_failed(l, c, rc, false);
    }
}

/* Queues the pipelined `req` behind the requests on the busy connection `c` (can_join()); it
 * is written by hr__h1_flush() with the others queued in this iteration. */
static void join(hr_dloop_t *l, conn_t *c, hr_dloop_req_t *req)
{
    if (queue_req(l, c, req) != 0) {
        fail_soon(l, req, HR_ENOMEM, CURLE_OUT_OF_MEMORY, "out of memory building the request");
        return;
    }
    flush_add(l, c);
}

/* ---- connections: opening ---- */

static void format_addr(const pool_t *p, char *out, size_t cap)
{
    if (inet_ntop(p->key.family, p->key.addr, out, (socklen_t)cap) == NULL) {
        snprintf(out, cap, "?");
    }
}

/* Fails `req` (off any connection) with connect error `err` (an errno value). */
static void connect_failed(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req, int err, bool now)
{
    char addr[INET6_ADDRSTRLEN], text[256];
    format_addr(p, addr, sizeof addr);
    snprintf(text, sizeof text, "Failed to connect to %s port %u after %llu ms: %s", addr,
             (unsigned)p->key.port,
             (unsigned long long)((hr_mono_ns() - req->priv.start_ns) / 1000000), strerror(err));
    int code = err > 0 && err < 4096 ? -err : HR_EIO;
    if (now) {
        finish(l, req, code, CURLE_COULDNT_CONNECT, text);
    } else {
        fail_soon(l, req, code, CURLE_COULDNT_CONNECT, text);
    }
}

/* Opens a new connection of `p` for `req` (the caller checked the limits); `req` is written
 * once it is connected. Nothing joins it before it has proven keep-alive. Failures to even
 * start connecting are reported with fail_soon(). */
static void connect_for(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    if (p->key.family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
        sa->sin_family = AF_INET;
        sa->sin_port = htons(p->key.port);
        memcpy(&sa->sin_addr, p->key.addr, 4);
        sslen = sizeof *sa;
    } else {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(p->key.port);
        memcpy(&sa->sin6_addr, p->key.addr, 16);
        sslen = sizeof *sa;
    }
    int fd = socket(p->key.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(l, p, req, errno, false);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&ss, sslen);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        connect_failed(l, p, req, err, false);
        return;
    }
    conn_t *c = l->h1.spare;
    if (c != NULL) {
        l->h1.spare = c->next;
        l->h1.n_spare--;
    } else {
        c = hr_xcalloc(1, sizeof *c);
    }
    c->fd = fd;
    c->pool = p;
    c->state = C_CONNECTING;
    c->q_head = c->q_tail = c->w_req = NULL;
    c->n_reqs = 0;
    c->w_off = 0;
    c->in_flush = c->reused = c->pipelinable = c->peer_closing = false;
    c->fprev = c->fnext = NULL;
    list_push(&p->busy, c);
    p->n_open++;
    l->h1.n_open++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
    ev.data.u64 = (uint64_t)(uintptr_t)c | HR__DLOOP_H1_TAG;
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = errno;
        conn_close(l, c);
        connect_failed(l, p, req, err, false);
        return;
    }
    if (queue_req(l, c, req) != 0) {
        conn_close(l, c);
        fail_soon(l, req, HR_ENOMEM, CURLE_OUT_OF_MEMORY, "out of memory building the request");
    }
}

/* ---- handing out connections ---- */

/*
 * True when a pipelined request of depth `depth` may join the busy connection `c`:
 *   - it completed a response on which it stayed open, in HTTP/1.1 (pipelinable): a new
 *     connection, or one to an HTTP/1.0 sink, may close after its first response and take
 *     every request queued behind it down;
 *   - neither the response being read (will_close) nor the peer (peer_closing) ends it;
 *   - fewer requests are on it than the joining request allows, and than every request on it
 *     allows (depth, the smallest of theirs; 1 for a request without pipelining, so nothing
 *     ever joins one of those).
 */
static bool can_join(const conn_t *c, uint16_t depth)
{
    return c->state == C_BUSY && c->pipelinable && !c->resp.will_close && !c->peer_closing &&
           c->n_reqs < depth && c->n_reqs < c->depth;
}

/*
 * Picks a connection of `p` for a request of pipeline depth `depth`, in this order:
 *   (a) GO_JOIN a connection already taking requests in this iteration, with room (so that a
 *       burst fills one connection's write before starting the next);
 *   (b) GO_IDLE the most recently used idle connection;
 *   (c) GO_NEW a new connection, if the limits allow (they may evict another pool's idle one);
 *   (d) GO_JOIN the busy joinable connection with the fewest requests;
 *   (e) GO_WAIT none: the request waits in the pool's FIFO.
 * Without pipelining (depth 1) only (b), (c) and (e) apply: today's behaviour. *out gets the
 * connection for GO_JOIN and GO_IDLE.
 */
static int choose(hr_dloop_t *l, pool_t *p, uint16_t depth, conn_t **out)
{
    conn_t *fewest = NULL;
    if (depth > 1) {
        for (conn_t *c = p->busy; c != NULL; c = c->next) {
            if (!can_join(c, depth)) {
                continue;
            }
            if (c->in_flush) {
                *out = c;
                return GO_JOIN;
            }
            if (fewest == NULL || c->n_reqs < fewest->n_reqs) {
                fewest = c;
            }
        }
    }
    if (p->idle != NULL) {
        *out = p->idle;
        return GO_IDLE;
    }
    if (has_room(l, p)) {
        return GO_NEW;
    }
    if (fewest != NULL) {
        *out = fewest;
        return GO_JOIN;
    }
    return GO_WAIT;
}

/* Carries out choose()'s decision `how` (not GO_WAIT) for `req`, which is on no queue. */
static void go(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req, int how, conn_t *c)
{
    if (how == GO_JOIN) {
        join(l, c, req);
    } else if (how == GO_IDLE) {
        attach(l, c, req);
    } else {
        connect_for(l, p, req);
    }
}

/* Gives waiting requests of `p` the connections they can have now, in FIFO order. */
static void kick_pool(hr_dloop_t *l, pool_t *p)
{
    while (p->wait_head != NULL && !l->shutting_down) {
        hr_dloop_req_t *req = p->wait_head;
        conn_t *c = NULL;
        int how = choose(l, p, req->priv.h1_depth, &c);
        if (how == GO_WAIT) {
            break;
        }
        wait_remove(l, p, req);
        go(l, p, req, how, c);
    }
}

/* Runs kick_pool on every pool with waiters (capacity freed somewhere may serve any). */
static void kick_all(hr_dloop_t *l)
{
    pool_t *p = l->h1.wait_pools;
    while (p != NULL) {
        pool_t *next = p->wnext;
        kick_pool(l, p);
        p = next;
    }
}

/* Hands `req` a connection (choose()) or queues it; nobody overtakes a waiting request. */
static void dispatch(hr_dloop_t *l, pool_t *p, hr_dloop_req_t *req)
{
    if (p->wait_head == NULL) {
        conn_t *c = NULL;
        int how = choose(l, p, req->priv.h1_depth, &c);
        if (how != GO_WAIT) {
            go(l, p, req, how, c);
            return;
        }
    }
    wait_push(l, p, req);
}

int hr__h1_start(hr_dloop_t *l, hr_dloop_req_t *req, bool *taken)
{
    pool_key_t key;
    *taken = false;
    if (!parse_target(l, req, &key)) {
        return 0;
    }
    *taken = true;
    if (l->h1.rbuf == NULL) {
        l->h1.rbuf = hr_xmalloc(RBUF_SIZE);
    }
    pool_t *p = pool_get(l, &key);
    p->n_reqs++;
    req->priv.h1 = true;
    req->priv.h1_pool = p;
    req->priv.h1_conn = NULL;
    req->priv.h1_cnext = NULL;
    req->priv.h1_depth = req->pipeline > 1 ? req->pipeline : 1;
    req->priv.h1_retried = false;
    req->priv.h1_waiting = false;
    req->priv.h1_err = 0;
    req->priv.h1_curl_code = 0;
    req->priv.start_ns = hr_mono_ns();
    req->priv.state = HR__DLOOP_REQ_ACTIVE;
    hr__dloop_active_add(l, req);
    if (req->timeout_ms > 0) {
        itimer_start(l, &req->priv.h1_timer,
                     req->priv.start_ns + (uint64_t)req->timeout_ms * 1000000u, on_req_timer, req);
    }
    dispatch(l, p, req);
    return 0;
}

void hr__h1_cancel(hr_dloop_t *l, hr_dloop_req_t *req)
{
    pool_t *p = req->priv.h1_pool;
    itimer_stop(l, &req->priv.h1_timer);
    if (req->priv.h1_conn != NULL) {
        /* The others on its connection wait in the FIFO (shutting down): cancelled next. */
        restart_all(l, conn_take(l, req->priv.h1_conn), req);
    } else if (req->priv.h1_waiting) {
        wait_remove(l, p, req);
    }
    if (--p->n_reqs == 0 && p->n_open == 0) {
        p->unused_since_ns = hr_mono_ns();
    }
    req->priv.h1 = false;
    req->priv.h1_pool = NULL;
    hr__dloop_active_remove(l, req);
    req->priv.state = HR__DLOOP_REQ_IDLE;
    kick_all(l);
}

void hr__h1_flush(hr_dloop_t *l)
{
    conn_t *c;
    /* A failed write may complete requests whose done() queues more: those are written in
     * this same loop, as they are listed. */
    while ((c = l->h1.flush) != NULL) {
        HR_ASSERT(c->state == C_BUSY);
        flush_remove(l, c);
        int rc = conn_send(c); /* nothing to do if EPOLLOUT wrote them already */
        if (rc != 0) {
            send_failed(l, c, rc, true);
        }
    }
}

/* ---- connections: events ---- */

/*
 * The response to c's head request is complete; completes that request. `reusable`: the
 * caller saw nothing that ends the connection. It stays open only if, besides, the response
 * allows keep-alive and the request had been written whole (a sink may answer early: the
 * unwritten rest would be read as another request). Then the next request's response is read
 * next, or the connection goes idle; else it closes and the requests behind start again
 * elsewhere. Returns true when `c` is still open and carries a request.
 */
static bool response_done(hr_dloop_t *l, conn_t *c, bool reusable)
{
    hr_dloop_req_t *req = c->q_head;
    if (!reusable || !c->resp.keep_alive || c->w_req == req) {
        restart_all(l, conn_take(l, c), req);
        finish(l, req, 0, 0, NULL);
        return false;
    }
    pop_head(c);
    c->reused = true;
    /* Pipelining needs HTTP/1.1 persistence: an HTTP/1.0 keep-alive sink gets one request at
     * a time. */
    c->pipelinable = c->resp.parser.http_major == 1 && c->resp.parser.http_minor >= 1;
    if (c->q_head != NULL) {
        hr__h1_resp_begin(&c->resp, c->q_head, l->max_body_bytes, is_head(c->q_head));
    } else {
        conn_idle(l, c);
    }
    finish(l, req, 0, 0, NULL);
    /* done() may have queued requests on c, but cannot have closed a connection that carries
     * some; a closed one is freed only after the epoll batch, so c is still readable here. */
    return c->state == C_BUSY;
}

/* The peer closed `c` (read returned 0): the head request gets the outcome, the requests
 * behind it start again. */
static void on_eof(hr_dloop_t *l, conn_t *c)
{
    int rc = hr__h1_resp_eof(&c->resp);
    if (rc == 1) {
        response_done(l, c, false);
        return;
    }
    if (c->resp.n_fed == 0) {
        if (try_retry(l, c)) {
            return;
        }
        conn_fail(l, c, HR_EIO, CURLE_GOT_NOTHING, "Empty reply from server");
        return;
    }
    char text[160];
    snprintf(text, sizeof text,
             "Connection closed after %zu bytes of the response, before it was complete",
             c->resp.n_fed);
    conn_fail(l, c, HR_EIO, CURLE_PARTIAL_FILE, text);
}

/* True when nothing more is waiting on `c` after a read of n bytes: a short read emptied the
 * receive queue; after a full one, look (bytes there would get no edge of their own). */
static bool drained(const conn_t *c, size_t n)
{
    if (n < RBUF_SIZE) {
        return true;
    }
    char b;
    ssize_t k;
    do {
        k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (k < 0 && errno == EINTR);
    return k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* True when bytes arriving on `c` cannot be a response: nothing of its head request has been
 * written yet. It happens on a kept-alive connection the sink gives up on (a 408, or a close)
 * just as pipelined requests were queued on it for hr__h1_flush(), within one epoll batch.
 * (A new connection writes its request before reading: it never gets here.) */
static bool head_unwritten(const conn_t *c)
{
    return c->reused && c->w_req == c->q_head && c->w_off == 0;
}

/* Closes `c`, on which nothing of its requests was written: all start again elsewhere, none
 * fails (none can have reached the sink), and the freed slot goes to waiters. */
static void restart_unwritten(hr_dloop_t *l, conn_t *c)
{
    restart_all(l, conn_take(l, c), NULL);
    kick_all(l);
}

/* Reads and parses what arrived on `c` (which carries requests): responses complete their
 * requests in order, the bytes after one feed the next. */
static void conn_read(hr_dloop_t *l, conn_t *c, uint32_t events)
{
    char *buf = l->h1.rbuf;
    bool closing = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (closing) {
        c->peer_closing = true; /* read what is left; nothing joins any more */
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, RBUF_SIZE, 0);
        if (n > 0) {
            size_t off = 0;
            while (off < (size_t)n) {
                if (head_unwritten(c)) {
                    restart_unwritten(l, c);
                    return;
                }
                size_t used = 0;
                int rc = hr__h1_resp_feed(&c->resp, buf + off, (size_t)n - off, &used);
                off += used;
                if (rc == 0) {
                    break; /* all consumed; the response goes on */
                }
                if (rc != 1) {
                    char text[256];
                    hr__h1_resp_error(&c->resp, text, sizeof text);
                    conn_fail(l, c, rc,
                              rc == HR_ENOMEM ? CURLE_OUT_OF_MEMORY : CURLE_WEIRD_SERVER_REPLY,
                              text);
                    return;
                }
                /* With more requests on c, what follows is their responses (or the EOF they
                 * learn from). After the last one, further bytes or a closing peer mean the
                 * connection cannot be reused. */
                bool last = c->q_head->priv.h1_cnext == NULL;
                bool reusable = !last || (!closing && off == (size_t)n && drained(c, (size_t)n));
                if (!response_done(l, c, reusable)) {
                    return;
                }
            }
            if ((size_t)n < RBUF_SIZE && !closing) {
                return; /* the receive queue is empty: wait for the next edge */
            }
            continue;
        }
        if (n == 0) {
            on_eof(l, c);
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        int err = errno;
        if ((err == ECONNRESET || err == EPIPE) && c->resp.n_fed == 0 && try_retry(l, c)) {
            return;
        }
        char text[160];
        snprintf(text, sizeof text, "Failure when receiving data from the peer: %s", strerror(err));
        conn_fail(l, c, HR_EIO, CURLE_RECV_ERROR, text);
        return;
    }
}

void hr__h1_on_event(hr_dloop_t *l, uint64_t key, uint32_t events)
{
    conn_t *c = (conn_t *)(uintptr_t)(key & ~HR__DLOOP_H1_TAG);
    switch (c->state) {
    case C_CLOSED:
        return; /* closed earlier in this epoll batch */
    case C_IDLE:
        /* Data, FIN or an error on an idle connection: the peer is done with it. */
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            conn_close(l, c);
            kick_all(l);
        }
        return;
    case C_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err != 0) {
            pool_t *p = c->pool;
            hr_dloop_req_t *req = conn_take(l, c); /* its only request */
            HR_ASSERT(req != NULL && req->priv.h1_cnext == NULL);
            connect_failed(l, p, req, err, true);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
            return; /* still connecting */
        }
        c->state = C_BUSY;
        events |= EPOLLOUT;
        break;
    }
    default:
        break;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && head_unwritten(c)) {
        /* Checked before writing (the event may carry EPOLLOUT too): the peer spoke or went
         * away before anything was written, so nothing it sent is an answer. */
        restart_unwritten(l, c);
        return;
    }
    if (c->w_req != NULL && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
        int rc = conn_send(c);
        if (rc != 0) {
            send_failed(l, c, rc, true);
            return;
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        conn_read(l, c, events);
    }
}

/* ---- sweeping ---- */

static void pool_unlink(hr__h1_t *h, pool_t *p)
{
    pool_t **pp = &h->buckets[key_hash(&p->key) & (h->n_buckets - 1)];
    while (*pp != p) {
        pp = &(*pp)->hnext;
    }
    *pp = p->hnext;
    h->n_pools--;
}

/* Every SWEEP_EVERY_NS: closes connections idle for more than IDLE_MAX_NS (oldest first) and
 * frees pools unused for as long. Rearms itself while any pool exists. */
static void on_sweep(hr_dloop_timer_t *t, void *arg)
{
    hr_dloop_t *l = arg;
    hr__h1_t *h = &l->h1;
    h->n_timers--;
    uint64_t now = hr_mono_ns();
    for (size_t i = 0; i < h->n_buckets; i++) {
        pool_t *p = h->buckets[i];
        while (p != NULL) {
            pool_t *next = p->hnext;
            while (p->idle_tail != NULL && now - p->idle_tail->idle_since_ns > IDLE_MAX_NS) {
                conn_close(l, p->idle_tail);
            }
            if (p->n_open == 0 && p->n_reqs == 0 && now - p->unused_since_ns > IDLE_MAX_NS) {
                pool_unlink(h, p);
                free(p);
            }
            p = next;
        }
    }
    while (h->spare != NULL && h->n_spare > SPARE_MAX / 4) {
        conn_t *c = h->spare; /* let a burst's spares go gradually */
        h->spare = c->next;
        h->n_spare--;
        conn_free(c);
    }
    if (h->n_pools > 0) {
        itimer_start(l, t, now + SWEEP_EVERY_NS, on_sweep, l);
    }
}

/* ---- shutdown and checks ---- */

void hr__h1_free(hr_dloop_t *l)
{
    hr__h1_t *h = &l->h1;
    HR_ASSERT(h->flush == NULL); /* only busy connections are listed, and none is left */
    for (size_t i = 0; i < h->n_buckets; i++) {
        pool_t *p = h->buckets[i];
        while (p != NULL) {
            pool_t *next = p->hnext;
            HR_ASSERT(p->busy == NULL && p->wait_head == NULL && p->n_reqs == 0);
            while (p->idle != NULL) {
                conn_close(l, p->idle);
            }
            free(p);
            p = next;
        }
    }
    free(h->buckets);
    h->buckets = NULL;
    h->n_buckets = h->n_pools = 0;
    h->wait_pools = NULL;
    reap(l, false);
    while (h->spare != NULL) {
        conn_t *c = h->spare;
        h->spare = c->next;
        conn_free(c);
    }
    h->n_spare = 0;
    free(h->rbuf);
    h->rbuf = NULL;
    h->n_timers = 0; /* shutdown cancelled the sweep timer with all others */
}

/* Checks the requests on `c` (FIFO, write position, depth); returns how many there are. */
static size_t check_reqs(const conn_t *c, const pool_t *p)
{
    size_t n = 0;
    uint16_t depth = UINT16_MAX;
    bool unwritten = false; /* at or after w_req */
    const hr_dloop_req_t *last = NULL;
    for (const hr_dloop_req_t *r = c->q_head; r != NULL; r = r->priv.h1_cnext) {
        HR_ASSERT(r->priv.h1 && r->priv.h1_conn == c && r->priv.h1_pool == p);
        HR_ASSERT(r->priv.state == HR__DLOOP_REQ_ACTIVE && !r->priv.h1_waiting);
        HR_ASSERT(r->priv.h1_err == 0 && r->priv.h1_depth >= 1);
        if (r == c->w_req) {
            unwritten = true;
            HR_ASSERT(c->w_off < wire_len(r));
        }
        if (unwritten) {
            HR_ASSERT(r->priv.h1_head_len > 0 &&
                      r->priv.h1_head_off + r->priv.h1_head_len <= c->head.len);
        }
        if (r->priv.h1_depth < depth) {
            depth = r->priv.h1_depth;
        }
        last = r;
        n++;
    }
    HR_ASSERT(c->q_tail == last && n == c->n_reqs);
    HR_ASSERT(c->w_req == NULL || unwritten);
    if (n > 0) {
        HR_ASSERT(c->depth == depth && n <= depth && c->resp.req == c->q_head);
    }
    return n;
}

/* Checks an idle or busy list of `p`; adds the requests on it to *n_reqs and the connections
 * listed for hr__h1_flush() to *n_flush. Returns the list's length. */
static size_t check_list(const conn_t *head, const pool_t *p, bool idle, size_t *n_reqs,
                         size_t *n_flush)
{
    size_t n = 0;
    const conn_t *prev = NULL;
    for (const conn_t *c = head; c != NULL; c = c->next) {
        HR_ASSERT(c->prev == prev && c->pool == p && c->fd >= 0);
        size_t k = check_reqs(c, p);
        if (idle) {
            HR_ASSERT(c->state == C_IDLE && k == 0 && c->reused && !c->in_flush);
        } else if (c->state == C_CONNECTING) {
            /* Nothing joins a connection before it has proven keep-alive. */
            HR_ASSERT(k == 1 && !c->reused && !c->in_flush);
        } else {
            HR_ASSERT(c->state == C_BUSY && k >= 1);
            HR_ASSERT(k == 1 || c->reused); /* more only once it kept a response alive */
        }
        *n_reqs += k;
        *n_flush += c->in_flush;
        prev = c;
        n++;
    }
    if (idle) {
        HR_ASSERT(p->idle_tail == prev);
    }
    return n;
}

void hr__h1_validate(const hr_dloop_t *l)
{
    const hr__h1_t *h = &l->h1;
    size_t n_pools = 0, n_open = 0, n_idle = 0, n_reqs = 0, n_waiting_pools = 0;
    size_t n_on_conns = 0, n_waiting = 0, n_flush = 0;
    for (size_t i = 0; i < h->n_buckets; i++) {
        for (const pool_t *p = h->buckets[i]; p != NULL; p = p->hnext) {
            HR_ASSERT((key_hash(&p->key) & (h->n_buckets - 1)) == i);
            size_t on_conns = 0;
            size_t idle = check_list(p->idle, p, true, &on_conns, &n_flush);
            size_t busy = check_list(p->busy, p, false, &on_conns, &n_flush);
            HR_ASSERT(idle == p->n_idle && idle + busy == p->n_open);
            HR_ASSERT(p->n_open <= h->max_host_conns);
            size_t n_wait = 0;
            const hr_dloop_req_t *prev = NULL;
            for (const hr_dloop_req_t *r = p->wait_head; r != NULL; r = r->priv.h1_wnext) {
                HR_ASSERT(r->priv.h1_wprev == prev && r->priv.h1_waiting);
                HR_ASSERT(r->priv.h1 && r->priv.h1_pool == p && r->priv.h1_conn == NULL);
                HR_ASSERT(r->priv.state == HR__DLOOP_REQ_ACTIVE && r->priv.h1_cnext == NULL);
                prev = r;
                n_wait++;
            }
            HR_ASSERT(p->wait_tail == prev && n_wait == p->n_wait);
            /* Nobody waits while an idle connection could serve them. */
            HR_ASSERT(n_wait == 0 || p->n_idle == 0);
            HR_ASSERT(on_conns + n_wait <= p->n_reqs);
            n_waiting_pools += n_wait > 0;
            n_pools++;
            n_open += p->n_open;
            n_idle += p->n_idle;
            n_reqs += p->n_reqs;
            n_on_conns += on_conns;
            n_waiting += n_wait;
        }
    }
    HR_ASSERT(n_pools == h->n_pools && n_open == h->n_open && n_idle == h->n_idle);
    HR_ASSERT(h->n_open <= h->max_conns);
    size_t n_listed = 0;
    for (const pool_t *p = h->wait_pools; p != NULL; p = p->wnext) {
        HR_ASSERT(p->wait_head != NULL && (p->wprev == NULL || p->wprev->wnext == p));
        n_listed++;
    }
    HR_ASSERT(n_listed == n_waiting_pools);
    size_t n_flush_listed = 0;
    const conn_t *fprev = NULL;
    for (const conn_t *c = h->flush; c != NULL; c = c->fnext) {
        HR_ASSERT(c->in_flush && c->state == C_BUSY && c->fprev == fprev);
        fprev = c;
        n_flush_listed++;
    }
    HR_ASSERT(n_flush_listed == n_flush);
    /* Every request of this client in flight is in exactly one place: on one connection's
     * FIFO, in one pool's wait FIFO, or failed and due to be reported by its timer. The FIFO
     * walks above checked that each member points back at its connection or pool; with the
     * counts equal, no request is in two places or lost. */
    size_t n_h1 = 0, n_conn_ptr = 0, n_wait_flag = 0;
    for (const hr_dloop_req_t *r = l->active; r != NULL; r = r->priv.next) {
        if (!r->priv.h1) {
            continue;
        }
        bool on_conn = r->priv.h1_conn != NULL, failed = r->priv.h1_err != 0;
        HR_ASSERT(on_conn + r->priv.h1_waiting + failed == 1);
        HR_ASSERT(!failed || hr_dloop_timer_is_active(&r->priv.h1_timer));
        n_h1++;
        n_conn_ptr += on_conn;
        n_wait_flag += r->priv.h1_waiting;
    }
    HR_ASSERT(n_h1 == n_reqs);
    HR_ASSERT(n_conn_ptr == n_on_conns && n_wait_flag == n_waiting);
    HR_ASSERT(h->n_timers <= l->n_heap);
}
