/* SPDX-License-Identifier: MIT */
/*
 * Delivery loop: HTTP/1.1 pipelining on the loop's own client (hr_dloop_req_t.pipeline),
 * against `pl`, an HTTP/1.1 server written here on raw sockets: one thread, poll() over the
 * listening socket on 127.0.0.1 (port 0) and every connection.
 *
 * The server answers POST /r/<id> with 202 and the id as the body (so each request can check
 * it got its own response), and checks the body (body_len bytes of the letter for the id).
 * It answers everything it read at once, after each read, so the number of complete requests
 * found in one read is how many the client had sent without waiting: it records the largest
 * (batch_max, the proof of coalescing and the bound of the pipeline depth), reads that found
 * a second request before the first was answered (early), and ids out of order per
 * connection (order_bad). Modes, for a request that is not the first on its connection (the
 * ones pipelined requests get: they only join connections that proved keep-alive):
 *   PL_OK          answer
 *   PL_FIRST_EOF   answer it, then close (FIN) and drop whatever else came
 *   PL_FIRST_CLOSE answer it with Connection: close, then close
 *   PL_HANG        never answer it or anything after it on that connection
 *   PL_MALFORMED   answer it with a broken status line, then close
 *   PL_RESET       reset the connection (RST) without answering it
 *   PL_PARK_RESET  (once) hold it until the test says go, then answer it and reset
 *   PL_HOLD        (once, any request) hold it until the test says go, then answer it
 *   PL_HTTP10      (every request) answer as HTTP/1.0 with Connection: keep-alive
 * And when the test says poke: an unsolicited 408 with Connection: close on every connection.
 * Except in the reset modes it closes gracefully (shutdown, then read until the client
 * closes), as a careful server does.
 *
 * Callbacks run on the loop thread, where cmocka's asserts must not fire: they record under
 * g_mu and count mistakes in g_bad. Waiting is always on a condition with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "delivery/loop.h"
#include "util/err.h"

#define TEST_NAME "pipeline_test"
#include "loop_test_util.h"

static int g_done; /* completed requests; under g_mu */

/* ---- pl: the server ---- */

enum {
    PL_OK,
    PL_FIRST_EOF,
    PL_FIRST_CLOSE,
    PL_HANG,
    PL_MALFORMED,
    PL_RESET,
    PL_PARK_RESET,
    PL_HOLD,
    PL_HTTP10
};
enum { PL_MAX_CONNS = 128, PL_READ = 64 * 1024, PL_OUT = 64 * 1024 };

typedef struct pl_conn {
    int fd; /* -1: a free slot */
    char *buf;
    size_t len, cap;
    int nth;        /* complete requests read on it */
    long last_id;   /* the id of the last one */
    bool lingering; /* our side is shut: drop what comes until the client closes */
    bool hung;      /* PL_HANG, held: answers nothing more (for now) */
    long park_id;   /* PL_PARK_RESET, PL_HOLD: the request held until `go`; -1 = none */
} pl_conn_t;

typedef struct pl {
    int lfd;
    uint16_t port;
    pthread_t th;
    atomic_bool stop;
    atomic_int mode;
    atomic_bool go;                /* PL_PARK_RESET, PL_HOLD: answer the held request */
    atomic_bool poke;              /* send the unsolicited 408s */
    bool park_used;                /* a request was held already (server thread) */
    bool poked;                    /* the 408s went out (server thread) */
    pl_conn_t conns[PL_MAX_CONNS]; /* the server thread's */
    /* Under g_mu. */
    int accepts;   /* connections accepted */
    int open_now;  /* connections open now */
    int requests;  /* complete requests read */
    int answered;  /* of which answered */
    int batch_max; /* most complete requests found by one read */
    int early;     /* reads that found a request behind an unanswered one */
    int order_bad; /* requests whose id was not above the previous one on their connection */
    int body_bad;  /* request bodies that were not what the client sends */
    int closes;    /* connections the server closed (FIRST_*, MALFORMED, RESET) */
    int hangs;     /* connections it stopped answering (PL_HANG, held) */
    int unparked;  /* held requests answered */
    int pokes;     /* unsolicited 408s sent */
} pl_t;

static char body_letter(long id)
{
    return (char)('a' + id % 26);
}

static void pl_close(pl_t *s, pl_conn_t *c)
{
    close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    pthread_mutex_lock(&g_mu);
    s->open_now--;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void pl_accept(pl_t *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        pl_conn_t *c = NULL;
        for (int i = 0; i < PL_MAX_CONNS && c == NULL; i++) {
            c = s->conns[i].fd < 0 ? &s->conns[i] : NULL;
        }
        if (c == NULL) {
            note_bad("pl: too many connections");
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval tv = {2, 0}; /* a client that stops reading cannot wedge the server */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->last_id = -1;
        c->park_id = -1;
        pthread_mutex_lock(&g_mu);
        s->accepts++;
        s->open_now++;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
}

static void pl_send(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return; /* the client went away */
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Parses and answers the complete requests buffered on `c`, as one batch. */
static void pl_serve(pl_t *s, pl_conn_t *c)
{
    char out[PL_OUT];
    size_t out_len = 0, off = 0;
    int mode = atomic_load(&s->mode);
    int k = 0, n_answered = 0, order_bad = 0, body_bad = 0, hangs = 0;
    bool close_after = false, reset = false;
    for (;;) {
        char *h = c->buf + off;
        size_t avail = c->len - off;
        char *end = memmem(h, avail, "\r\n\r\n", 4);
        if (end == NULL) {
            break;
        }
        size_t head_len = (size_t)(end - h) + 4, clen = 0;
        for (char *p = h; p < end; p = strchr(p, '\n') + 1) {
            if (strncasecmp(p, "content-length:", 15) == 0) {
                clen = strtoul(p + 15, NULL, 10);
            }
        }
        if (avail < head_len + clen) {
            break;
        }
        long id = -1;
        if (sscanf(h, "%*s /r/%ld", &id) != 1) {
            body_bad++;
        }
        for (size_t i = 0; i < clen; i++) {
            if (h[head_len + i] != body_letter(id)) {
                body_bad++;
                break;
            }
        }
        off += head_len + clen;
        k++;
        c->nth++;
        order_bad += id <= c->last_id;
        c->last_id = id;
        if (c->hung) {
            continue;
        }
        bool special = c->nth >= 2 && mode != PL_OK && mode != PL_HTTP10 &&
                       (mode != PL_PARK_RESET || !s->park_used);
        if (special && mode == PL_HANG) {
            c->hung = true;
            hangs++;
            continue;
        }
        if (((special && mode == PL_PARK_RESET) || mode == PL_HOLD) && !s->park_used) {
            s->park_used = true;
            c->hung = true;
            c->park_id = id;
            hangs++;
            continue;
        }
        if (special && mode == PL_RESET) {
            reset = true;
            break;
        }
        if (special && mode == PL_MALFORMED) {
            static const char bad[] = "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok";
            memcpy(out + out_len, bad, sizeof bad - 1);
            out_len += sizeof bad - 1;
            close_after = true;
            break;
        }
        int w =
            snprintf(out + out_len, sizeof out - out_len, "%s\r\n%sContent-Length: %d\r\n\r\n%ld",
                     mode == PL_HTTP10 ? "HTTP/1.0 202 Accepted\r\nConnection: keep-alive"
                                       : "HTTP/1.1 202 Accepted",
                     special && mode == PL_FIRST_CLOSE ? "Connection: close\r\n" : "",
                     snprintf(NULL, 0, "%ld", id), id);
        if (w < 0 || (size_t)w >= sizeof out - out_len) {
            note_bad("pl: output overflow");
            break;
        }
        out_len += (size_t)w;
        n_answered++;
        if (special) {
            close_after = true; /* FIRST_EOF, FIRST_CLOSE: the rest is dropped */
            break;
        }
    }
    size_t left = c->len - off;
    memmove(c->buf, c->buf + off, left);
    c->len = left;
    pthread_mutex_lock(&g_mu);
    s->requests += k;
    s->answered += n_answered;
    s->batch_max = k > s->batch_max ? k : s->batch_max;
    s->early += k > 1 || (k >= 1 && left > 0);
    s->order_bad += order_bad;
    s->body_bad += body_bad;
    s->hangs += hangs;
    s->closes += close_after || reset;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pl_send(c->fd, out, out_len);
    if (reset) {
        struct linger lg = {1, 0}; /* close() sends RST */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        pl_close(s, c);
        return;
    }
    if (close_after) {
        /* Graceful: FIN now, then read until the client closes (a close() with unread data
         * would send RST, which may destroy the answer before the client reads it). */
        shutdown(c->fd, SHUT_WR);
        c->lingering = true;
        c->len = 0;
    }
}

static void pl_read(pl_t *s, pl_conn_t *c)
{
    if (c->cap - c->len < PL_READ) {
        size_t cap = c->cap * 2 > c->len + PL_READ ? c->cap * 2 : c->len + PL_READ;
        char *b = realloc(c->buf, cap);
        if (b == NULL) {
            note_bad("pl: out of memory");
            pl_close(s, c);
            return;
        }
        c->buf = b;
        c->cap = cap;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n <= 0) {
        pl_close(s, c);
        return;
    }
    if (c->lingering) {
        return; /* dropped */
    }
    c->len += (size_t)n;
    pl_serve(s, c);
}

/* Acts on the test's signals: `go` answers the held request (PL_PARK_RESET then resets its
 * connection at once, with the requests behind it unanswered); `poke` sends every connection
 * an unsolicited 408 and closes it. */
static void pl_signals(pl_t *s)
{
    if (atomic_load(&s->poke) && !s->poked) {
        static const char r408[] =
            "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        s->poked = true;
        for (int i = 0; i < PL_MAX_CONNS; i++) {
            pl_conn_t *c = &s->conns[i];
            if (c->fd >= 0 && !c->lingering) {
                pl_send(c->fd, r408, sizeof r408 - 1);
                shutdown(c->fd, SHUT_WR);
                c->lingering = true;
                c->len = 0;
                bump(&s->pokes);
            }
        }
    }
    if (!atomic_load(&s->go)) {
        return;
    }
    for (int i = 0; i < PL_MAX_CONNS; i++) {
        pl_conn_t *c = &s->conns[i];
        if (c->fd < 0 || c->park_id < 0) {
            continue;
        }
        char out[128];
        int w = snprintf(out, sizeof out, "HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\n\r\n%ld",
                         snprintf(NULL, 0, "%ld", c->park_id), c->park_id);
        pl_send(c->fd, out, (size_t)w);
        c->park_id = -1;
        bool reset = atomic_load(&s->mode) == PL_PARK_RESET;
        if (reset) {
            struct linger lg = {1, 0}; /* close() sends RST */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            pl_close(s, c);
        } else {
            c->hung = false; /* serves on */
        }
        pthread_mutex_lock(&g_mu);
        s->answered++;
        s->unparked++;
        s->closes += reset;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
    }
}

static void *pl_main(void *arg)
{
    pl_t *s = arg;
    struct pollfd fds[PL_MAX_CONNS + 1];
    int slot[PL_MAX_CONNS + 1];
    while (!atomic_load(&s->stop)) {
        pl_signals(s);
        nfds_t n = 0;
        fds[n++] = (struct pollfd){s->lfd, POLLIN, 0};
        for (int i = 0; i < PL_MAX_CONNS; i++) {
            if (s->conns[i].fd >= 0) {
                slot[n] = i;
                fds[n++] = (struct pollfd){s->conns[i].fd, POLLIN, 0};
            }
        }
        if (poll(fds, n, 20) <= 0) {
            continue; /* look at the stop flag now and then */
        }
        if (fds[0].revents & POLLIN) {
            pl_accept(s);
        }
        for (nfds_t j = 1; j < n; j++) {
            if (fds[j].revents != 0 && s->conns[slot[j]].fd == fds[j].fd) {
                pl_read(s, &s->conns[slot[j]]);
            }
        }
    }
    for (int i = 0; i < PL_MAX_CONNS; i++) {
        if (s->conns[i].fd >= 0) {
            pl_close(s, &s->conns[i]);
        }
    }
    return NULL;
}

static pl_t *pl_start(int mode)
{
    pl_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < PL_MAX_CONNS; i++) {
        s->conns[i].fd = -1;
    }
    atomic_init(&s->mode, mode);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->lfd, 128), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, pl_main, s), 0);
    return s;
}

static void pl_stop(pl_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->lfd);
    free(s);
}

/* ---- the client side ---- */

enum { WAIT_MS = LOOP_TEST_WAIT_MS };

typedef struct preq {
    hr_dloop_req_t req;
    char url[64];
    char *body;
    long id;
    int n_done; /* under g_mu */
} preq_t;

static void preq_done(hr_dloop_req_t *req)
{
    preq_t *t = req->user;
    char want[24];
    snprintf(want, sizeof want, "%ld", t->id);
    bool ok = req->error != 0 ||
              (req->resp_body.len > 0 && strcmp((char *)req->resp_body.data, want) == 0);
    pthread_mutex_lock(&g_mu);
    t->n_done++;
    g_done++;
    g_bad += !ok;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    if (!ok) {
        fprintf(stderr, "pipeline_test: request %ld got another request's response\n", t->id);
    }
}

static void preq_init(preq_t *t, const pl_t *s, long id, uint16_t pipeline, size_t body_len)
{
    memset(t, 0, sizeof *t);
    hr_dloop_req_init(&t->req);
    t->id = id;
    snprintf(t->url, sizeof t->url, "http://127.0.0.1:%u/r/%ld", (unsigned)s->port, id);
    t->body = malloc(body_len + 1);
    assert_non_null(t->body);
    memset(t->body, body_letter(id), body_len);
    t->req.url = t->url;
    t->req.body.base = (const uint8_t *)t->body;
    t->req.body.len = body_len;
    t->req.pipeline = pipeline;
    t->req.done = preq_done;
    t->req.user = t;
    t->req.timeout_ms = 10000;
}

static void preq_free(preq_t *t)
{
    hr_dloop_req_free(&t->req);
    free(t->body);
}

static void reset_globals(void)
{
    pthread_mutex_lock(&g_mu);
    g_bad = 0;
    g_done = 0;
    pthread_mutex_unlock(&g_mu);
}

static hr_dloop_t *loop_new(size_t max_host_connections)
{
    hr_dloop_opts_t o;
    hr_dloop_opts_default(&o);
    o.user_agent = "herald/test";
    o.proxy = ""; /* hermetic: ignore any *_proxy in the environment */
    if (max_host_connections != 0) {
        o.max_host_connections = max_host_connections;
    }
    hr_dloop_t *l = NULL;
    assert_int_equal(hr_dloop_create(&o, &l), 0);
    return l;
}

/* Submits requests [0, n) from the loop thread, in one task (one loop iteration), then
 * checks the invariants while the pipelined ones wait for the end-of-iteration write. */
typedef struct batch {
    hr_dloop_t *l;
    preq_t *r;
    int n;
} batch_t;

static void submit_batch(void *arg)
{
    batch_t *b = arg;
    for (int i = 0; i < b->n; i++) {
        if (hr_dloop_submit(b->l, &b->r[i].req) != 0) {
            note_bad("submit failed");
        }
    }
    hr_dloop_validate(b->l);
}

/* One request alone, so that the sink's first connection proves keep-alive. */
static void warm_up(hr_dloop_t *l, const pl_t *s)
{
    preq_t w;
    preq_init(&w, s, 0, 0, 16);
    int before = read_int(&g_done);
    assert_int_equal(hr_dloop_submit(l, &w.req), 0);
    assert_true(wait_ge(&g_done, before + 1, WAIT_MS));
    assert_int_equal(w.req.error, 0);
    assert_int_equal(w.req.status, 202);
    preq_free(&w);
}

/* Waits for `target` completions, checking the loop's invariants all along. */
static void wait_done_validating(hr_dloop_t *l, int target)
{
    uint64_t end = (uint64_t)time(NULL) + WAIT_MS / 1000;
    while (!wait_ge(&g_done, target, 5)) {
        inspect(l);
        assert_true((uint64_t)time(NULL) <= end);
    }
}

/* After a scenario: nothing in flight, every connection idle and within `limit`, and the
 * server sees exactly the connections the client keeps (none leaked, none half-closed). */
static void check_settled(hr_dloop_t *l, pl_t *s, size_t limit)
{
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.h1_connections, st.h1_idle);
    assert_true(st.h1_connections <= limit);
    assert_true(wait_for(&s->open_now, (int)st.h1_connections, true, WAIT_MS));
}

/* Destroys the loop; the server then sees every connection closed. Each request completed
 * exactly once, also counting anything a late or second done() would have added. `in_order`:
 * each connection carried its requests in submit order (not after restarts: a restarted
 * request may follow a later one on its new connection). */
static void finish_scenario(hr_dloop_t *l, pl_t *s, preq_t *r, int n, bool in_order)
{
    hr_dloop_destroy(l);
    assert_true(wait_for(&s->open_now, 0, true, WAIT_MS));
    for (int i = 0; i < n; i++) {
        assert_int_equal(read_int(&r[i].n_done), 1);
        preq_free(&r[i]);
    }
    free(r);
    assert_int_equal(read_int(&g_bad), 0);
    if (in_order) {
        assert_int_equal(read_int(&s->order_bad), 0);
    }
    assert_int_equal(read_int(&s->body_bad), 0);
    pl_stop(s);
}

static preq_t *make_reqs(const pl_t *s, int n, uint16_t pipeline, size_t body_len)
{
    preq_t *r = calloc((size_t)n, sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < n; i++) {
        preq_init(&r[i], s, i + 1, pipeline, body_len);
    }
    return r;
}

static void assert_all_accepted(const preq_t *r, int n)
{
    for (int i = 0; i < n; i++) {
        if (r[i].req.error != 0) {
            print_message("    request %ld: %s\n", r[i].id, r[i].req.error_text);
        }
        assert_int_equal(r[i].req.error, 0);
        assert_int_equal(r[i].req.status, 202);
    }
}

/* ---- tests ---- */

/*
 * (a) 40 requests with pipeline 8, submitted in one loop iteration, to a keep-alive sink:
 * each completes once with its own 202; the sink sees each connection's requests in submit
 * order, up to 8 at a time, several in one read (one write carried them). The host limit is
 * 5 = 40 / 8: a new connection carries one request until it has proven keep-alive (choice
 * (c) before (d)), so without a limit a burst would open a connection per request beyond the
 * first batch; with it, the burst fills the proven connections instead.
 */
static void test_pipelined_burst(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 40, DEPTH = 8, LIMIT = (N + DEPTH - 1) / DEPTH };
    pl_t *s = pl_start(PL_OK);
    hr_dloop_t *l = loop_new(LIMIT);
    warm_up(l, s);
    int accepts_before = read_int(&s->accepts);
    preq_t *r = make_reqs(s, N, DEPTH, 100);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    int batch_max = read_int(&s->batch_max), accepts = read_int(&s->accepts);
    print_message("    %d requests: %d connections after the warm-up, up to %d in one read\n", N,
                  accepts - accepts_before, batch_max);
    assert_true(accepts - accepts_before <= LIMIT + 1);
    assert_true(batch_max >= 2 && batch_max <= DEPTH);
    assert_int_equal(read_int(&s->answered), N + 1);
    check_settled(l, s, LIMIT);
    finish_scenario(l, s, r, N, true);
}

/* (b) The same without pipelining: one request per connection at a time, as before. */
static void test_no_pipelining(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 40, LIMIT = 5 };
    pl_t *s = pl_start(PL_OK);
    hr_dloop_t *l = loop_new(LIMIT);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, 0, 100);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    assert_int_equal(read_int(&s->early), 0);
    assert_int_equal(read_int(&s->batch_max), 1);
    assert_true(read_int(&s->accepts) <= LIMIT);
    check_settled(l, s, LIMIT);
    finish_scenario(l, s, r, N, true);
}

/* Pipeline 2 and 3 mixed on one sink: no connection ever carries more requests than the
 * smallest pipeline of the requests on it allows. */
static void test_depth_is_a_bound(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 30, LIMIT = 2 };
    pl_t *s = pl_start(PL_OK);
    hr_dloop_t *l = loop_new(LIMIT);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, 2, 10);
    for (int i = 0; i < N; i += 2) {
        r[i].req.pipeline = 3;
    }
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    int batch_max = read_int(&s->batch_max);
    print_message("    up to %d in one read\n", batch_max);
    assert_true(batch_max == 2);
    check_settled(l, s, LIMIT);
    finish_scenario(l, s, r, N, true);
}

/* (c), (d): the sink answers the first request of a pipelined batch, then closes: without a
 * word (the next request sees EOF and is retried, the others restart), or saying
 * Connection: close (all behind it restart). Every request completes once, with its own 202,
 * and the sink answered each exactly once. Then the same under load: 40 requests, limit 5. */
static void run_closing_sink(int mode)
{
    reset_globals();
    enum { N = 8, DEPTH = 8 };
    pl_t *s = pl_start(mode);
    hr_dloop_t *l = loop_new(0);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, DEPTH, 100);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    assert_int_equal(read_int(&s->closes), 1);
    assert_int_equal(read_int(&s->answered), N + 1);
    assert_true(read_int(&s->requests) >= N + 1);
    check_settled(l, s, 64);
    finish_scenario(l, s, r, N, true);

    reset_globals();
    enum { N2 = 40, LIMIT = 5 };
    s = pl_start(mode);
    l = loop_new(LIMIT);
    warm_up(l, s);
    r = make_reqs(s, N2, DEPTH, 100);
    b = (batch_t){l, r, N2};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N2 + 1);
    assert_all_accepted(r, N2);
    print_message("    %d requests, %d closes by the sink, %d connections\n", N2,
                  read_int(&s->closes), read_int(&s->accepts));
    assert_true(read_int(&s->closes) >= 1);
    assert_int_equal(read_int(&s->answered), N2 + 1);
    check_settled(l, s, LIMIT);
    finish_scenario(l, s, r, N2, false);
}

static void test_sink_closes_after_first(void **state)
{
    (void)state;
    run_closing_sink(PL_FIRST_EOF);
}

static void test_sink_says_connection_close(void **state)
{
    (void)state;
    run_closing_sink(PL_FIRST_CLOSE);
}

/*
 * (e) The sink never answers the head of a pipelined connection: that request times out
 * (HR_ETIMEOUT, on time); the connection is closed, and the seven behind it restart on new
 * connections and complete within their own deadline.
 */
static void test_head_times_out(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 8, DEPTH = 8, HEAD_MS = 1000, OTHERS_MS = 10000 };
    pl_t *s = pl_start(PL_HANG);
    hr_dloop_t *l = loop_new(0);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, DEPTH, 100);
    r[0].req.timeout_ms = HEAD_MS;
    for (int i = 1; i < N; i++) {
        r[i].req.timeout_ms = OTHERS_MS;
    }
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    /* All eight went out together on the warm connection, which now hangs. */
    assert_true(wait_ge(&s->requests, 1 + N, WAIT_MS));
    assert_int_equal(read_int(&s->hangs), 1);
    hr_dloop_stats_t st = inspect(l);
    if (read_int(&g_done) == 1) { /* not yet timed out (a very slow machine may be later) */
        assert_int_equal(st.in_flight, N);
        assert_int_equal(st.h1_connections, 1);
        assert_int_equal(st.h1_idle, 0);
    }
    wait_done_validating(l, N + 1);
    print_message("    head: %s\n", r[0].req.error_text);
    assert_int_equal(r[0].req.error, HR_ETIMEOUT);
    assert_int_equal(r[0].req.curl_code, 28); /* CURLE_OPERATION_TIMEDOUT */
    assert_int_equal(r[0].req.status, 0);
    assert_non_null(strstr(r[0].req.error_text, "Operation timed out after"));
    assert_true(r[0].req.latency_us + 2000 >= HEAD_MS * 1000ull);
    for (int i = 1; i < N; i++) {
        assert_int_equal(r[i].req.error, 0);
        assert_int_equal(r[i].req.status, 202);
        /* Restarted when the head timed out, done well within their own deadline. */
        assert_true(r[i].req.latency_us + 2000 >= HEAD_MS * 1000ull);
        assert_true(r[i].req.latency_us < OTHERS_MS * 1000ull);
    }
    assert_int_equal(read_int(&s->accepts), 1 + (N - 1)); /* alone, each on a new one */
    assert_int_equal(read_int(&s->answered), 1 + (N - 1));
    check_settled(l, s, N);
    finish_scenario(l, s, r, N, true);
}

/* A malformed response to the head of a pipelined batch: the head fails as without
 * pipelining (HR_EIO naming the parser's error); the seven behind it restart and complete. A
 * reset instead of a response: the head is retried once (a reused connection that failed
 * before any byte of its response), the others restart; all complete. */
static void test_malformed_and_reset(void **state)
{
    (void)state;
    enum { N = 8, DEPTH = 8 };
    for (int pass = 0; pass < 2; pass++) {
        reset_globals();
        pl_t *s = pl_start(pass == 0 ? PL_MALFORMED : PL_RESET);
        hr_dloop_t *l = loop_new(0);
        warm_up(l, s);
        preq_t *r = make_reqs(s, N, DEPTH, 100);
        batch_t b = {l, r, N};
        run_on_loop(l, submit_batch, &b);
        wait_done_validating(l, N + 1);
        if (pass == 0) {
            print_message("    head: %s\n", r[0].req.error_text);
            assert_int_equal(r[0].req.error, HR_EIO);
            assert_int_equal(r[0].req.curl_code, 8); /* CURLE_WEIRD_SERVER_REPLY */
            assert_non_null(strstr(r[0].req.error_text, "Malformed HTTP response"));
            assert_all_accepted(r + 1, N - 1);
        } else {
            assert_all_accepted(r, N);
        }
        assert_int_equal(read_int(&s->closes), 1);
        assert_int_equal(read_int(&s->answered), 1 + (pass == 0 ? N - 1 : N));
        check_settled(l, s, N);
        finish_scenario(l, s, r, N, true);
    }
}

/* A task that blocks the loop thread until the test releases it, then submits a batch: so
 * that the batch is written before the loop looks at what its connections received. */
typedef struct blocker {
    batch_t batch;
    int blocked, released; /* under g_mu */
} blocker_t;

static void block_then_submit(void *arg)
{
    blocker_t *bl = arg;
    struct timespec ts;
    deadline_in(&ts, WAIT_MS);
    pthread_mutex_lock(&g_mu);
    bl->blocked = 1;
    pthread_cond_broadcast(&g_cv);
    int rc = 0;
    while (!bl->released && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    pthread_mutex_unlock(&g_mu);
    submit_batch(&bl->batch);
}

/*
 * A write fails after the head of the pipelined connection was written whole: the sink
 * answered the head and reset the connection just before more requests joined it (one host
 * connection, so they must join). The head's answer is in the receive queue: the head
 * completes with it (the sink answered it once), the others are retried or restarted. The
 * loop thread is held while the sink answers and resets, so that the joiners are written
 * before the loop reads the connection.
 */
static void test_write_fails_after_answer(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 8, A = 4, DEPTH = 8 };
    pl_t *s = pl_start(PL_PARK_RESET);
    hr_dloop_t *l = loop_new(1);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, DEPTH, 100);
    batch_t b = {l, r, A};
    run_on_loop(l, submit_batch, &b);
    assert_true(wait_ge(&s->requests, 1 + A, WAIT_MS)); /* the head is held */
    assert_int_equal(read_int(&s->hangs), 1);
    blocker_t bl = {{l, r + A, N - A}, 0, 0};
    assert_int_equal(hr_dloop_post(l, block_then_submit, &bl), 0);
    assert_true(wait_ge(&bl.blocked, 1, WAIT_MS));
    atomic_store(&s->go, true);
    assert_true(wait_ge(&s->closes, 1, WAIT_MS)); /* answered, then reset */
    pthread_mutex_lock(&g_mu);
    bl.released = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    assert_int_equal(read_int(&s->answered), N + 1); /* the head was not sent twice */
    check_settled(l, s, 1);
    finish_scenario(l, s, r, N, false);
}

/* The unsolicited-data case: X's done() (a request to another sink) submits a pipelined
 * request Y, which takes the idle connection W; in the same epoll batch W turns out to have
 * received a 408 the sink sent on its own. Y was not written yet: it must not get that 408,
 * it starts again on a new connection and gets its own answer. Both sinks act while the loop
 * thread is held, so that one epoll batch holds X's answer, then W's 408. */
static preq_t *g_follow; /* submitted by follow_done() */
static hr_dloop_t *g_loop;

static void follow_done(hr_dloop_req_t *req)
{
    preq_done(req);
    if (hr_dloop_submit(g_loop, &g_follow->req) != 0) {
        note_bad("follow-up submit failed");
    }
}

static void test_unsolicited_data_before_write(void **state)
{
    (void)state;
    reset_globals();
    pl_t *s1 = pl_start(PL_OK), *s2 = pl_start(PL_HOLD);
    hr_dloop_t *l = loop_new(0);
    g_loop = l;
    warm_up(l, s1); /* W: idle, proven */
    preq_t *x = make_reqs(s2, 1, 0, 10), *y = make_reqs(s1, 1, 8, 10);
    g_follow = y;
    x->req.done = follow_done;
    assert_int_equal(hr_dloop_submit(l, &x->req), 0);
    assert_true(wait_ge(&s2->hangs, 1, WAIT_MS)); /* X is held */
    blocker_t bl = {{l, NULL, 0}, 0, 0};
    assert_int_equal(hr_dloop_post(l, block_then_submit, &bl), 0);
    assert_true(wait_ge(&bl.blocked, 1, WAIT_MS));
    atomic_store(&s2->go, true); /* X's answer first ... */
    assert_true(wait_ge(&s2->unparked, 1, WAIT_MS));
    atomic_store(&s1->poke, true); /* ... then W's 408 */
    assert_true(wait_ge(&s1->pokes, 1, WAIT_MS));
    pthread_mutex_lock(&g_mu);
    bl.released = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    wait_done_validating(l, 3);
    assert_all_accepted(x, 1);
    assert_all_accepted(y, 1);                    /* not the 408 */
    assert_int_equal(read_int(&s1->requests), 2); /* the warm-up and Y, written once */
    assert_int_equal(read_int(&s1->accepts), 2);
    finish_scenario(l, s2, x, 1, true);
    assert_true(wait_for(&s1->open_now, 0, true, WAIT_MS));
    assert_int_equal(read_int(&y->n_done), 1);
    preq_free(y);
    free(y);
    pl_stop(s1);
}

/* Destroying the loop while a pipelined batch hangs on its connection: every request
 * completes exactly once, with HR_ECLOSED. */
static void test_destroy_with_pipelined_in_flight(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 8, DEPTH = 8 };
    pl_t *s = pl_start(PL_HANG);
    hr_dloop_t *l = loop_new(0);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, DEPTH, 100);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    assert_true(wait_ge(&s->requests, 1 + N, WAIT_MS));
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.in_flight, N);
    hr_dloop_destroy(l);
    assert_int_equal(read_int(&g_done), 1 + N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(read_int(&r[i].n_done), 1);
        assert_int_equal(r[i].req.error, HR_ECLOSED);
        assert_string_equal(r[i].req.error_text, "shutting down");
        preq_free(&r[i]);
    }
    free(r);
    assert_true(wait_for(&s->open_now, 0, true, WAIT_MS));
    assert_int_equal(read_int(&g_bad), 0);
    pl_stop(s);
}

/* Bodies far larger than the socket buffers: the batch's one sendmsg writes part, the rest
 * continues on EPOLLOUT across request boundaries, while the first responses already come
 * back. The sink checks every body; the invariants are checked all along. */
static void test_partial_writes(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 8, DEPTH = 8, BODY = 512 * 1024 };
    pl_t *s = pl_start(PL_OK);
    hr_dloop_t *l = loop_new(0);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, DEPTH, BODY);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    assert_int_equal(read_int(&s->accepts), 1); /* all on the warm connection */
    assert_int_equal(read_int(&s->answered), N + 1);
    check_settled(l, s, 1);
    finish_scenario(l, s, r, N, true);
}

/* An HTTP/1.0 sink that keeps connections alive gets no pipelining: a request at a time. */
static void test_http10_sink_not_pipelined(void **state)
{
    (void)state;
    reset_globals();
    enum { N = 16, LIMIT = 2 };
    pl_t *s = pl_start(PL_HTTP10);
    hr_dloop_t *l = loop_new(LIMIT);
    warm_up(l, s);
    preq_t *r = make_reqs(s, N, 8, 10);
    batch_t b = {l, r, N};
    run_on_loop(l, submit_batch, &b);
    wait_done_validating(l, N + 1);
    assert_all_accepted(r, N);
    assert_int_equal(read_int(&s->early), 0);
    assert_true(read_int(&s->accepts) <= LIMIT);
    check_settled(l, s, LIMIT);
    finish_scenario(l, s, r, N, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_burst),
        cmocka_unit_test(test_no_pipelining),
        cmocka_unit_test(test_depth_is_a_bound),
        cmocka_unit_test(test_sink_closes_after_first),
        cmocka_unit_test(test_sink_says_connection_close),
        cmocka_unit_test(test_head_times_out),
        cmocka_unit_test(test_malformed_and_reset),
        cmocka_unit_test(test_write_fails_after_answer),
        cmocka_unit_test(test_unsolicited_data_before_write),
        cmocka_unit_test(test_destroy_with_pipelined_in_flight),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_http10_sink_not_pipelined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
