/* SPDX-License-Identifier: MIT */
/*
 * Delivery loop: real HTTP transfers against a libmicrohttpd sink on 127.0.0.1 (thread per
 * connection, behaviour chosen by path), timers, cross-thread posting and shutdown.
 *
 * Every HTTP test runs twice, named "<test>/curl" (opts.curl_only: libcurl carries every
 * request) and "<test>/h1" (plain http:// to 127.0.0.1 goes through the loop's own HTTP/1.1
 * client): both transports must give the same results. The h1 runs also check, through
 * hr_dloop_stats, that the loop's own client really carried the requests. The wire-level
 * cases (chunked, Connection: close, read until close, 1xx, HEAD, a response dribbled byte by
 * byte, malformed status lines, a sink that drops reused connections, the host limit) use
 * `raw`, a hand-written HTTP server on a raw socket that counts its accepts and tracks how
 * many connections are open at once.
 *
 * Callbacks run on the loop thread, where cmocka's asserts must not fire (they longjmp):
 * they record what they saw under g_mu and count mistakes in g_bad, which the test thread
 * asserts on. Waiting is always on a condition with a deadline, never a fixed sleep.
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "delivery/loop.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"

#define TEST_NAME "loop_test"
#include "loop_test_util.h"

/* ---- checks on other threads ---- */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            note_bad(#cond);                                                                       \
        }                                                                                          \
    } while (0)

static bool g_curl_only; /* the transport under test: set by the setup functions */

/* ---- the sink: libmicrohttpd, one thread per connection ---- */

enum { BIG_LEN = 256 * 1024, HANG_MAX_MS = 10000 };

typedef struct sink {
    struct MHD_Daemon *d;
    uint16_t port;
    atomic_int connections; /* TCP connections accepted */
    atomic_int requests;
    int hanging;  /* requests parked in /hang; under g_mu */
    bool release; /* lets parked requests answer; under g_mu */
    char *big;
} sink_t;

typedef struct sink_req {
    hr_buf_t body;
} sink_req_t;

static void sink_on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                               enum MHD_ConnectionNotificationCode toe)
{
    sink_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
    }
}

static void sink_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    sink_req_t *r = *con_cls;
    if (r != NULL) {
        hr_buf_free(&r->body);
        free(r);
        *con_cls = NULL;
    }
}

static enum MHD_Result echo_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    hr_buf_printf(cls, "%s: %s\n", key, value != NULL ? value : "");
    return MHD_YES;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const void *body,
                             size_t len, const char *const *headers)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i += 2) {
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    }
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Parks the request until the test releases it (bounded, so a broken test cannot hang). */
static void hang(sink_t *s)
{
    struct timespec ts;
    deadline_in(&ts, HANG_MAX_MS);
    pthread_mutex_lock(&g_mu);
    s->hanging++;
    pthread_cond_broadcast(&g_cv);
    int rc = 0;
    while (!s->release && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    s->hanging--;
    pthread_mutex_unlock(&g_mu);
}

static enum MHD_Result sink_handler(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    sink_t *s = cls;
    sink_req_t *r = *con_cls;
    if (r == NULL) {
        *con_cls = calloc(1, sizeof *r);
        return *con_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        hr_buf_append(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&s->requests, 1);
    if (strcmp(url, "/ok") == 0) {
        return reply(c, 200, "ok", 2, NULL);
    }
    if (strcmp(url, "/accepted") == 0) {
        const char *h[] = {"Content-Type", "text/plain", NULL};
        return reply(c, 202, "queued", 6, h);
    }
    if (strcmp(url, "/unavailable") == 0) {
        return reply(c, 503, "", 0, NULL);
    }
    if (strcmp(url, "/throttle") == 0) {
        const char *h[] = {"Retry-After", "7", NULL};
        return reply(c, 429, "slow down", 9, h);
    }
    if (strcmp(url, "/ce") == 0) {
        const char *h[] = {"Ce-Id",
                           "r1",
                           "ce-type",
                           "com.example.reply",
                           "CE-Source",
                           "/sink",
                           "ce-specversion",
                           "1.0",
                           "Content-Type",
                           "application/json; charset=utf-8",
                           "X-Other",
                           "x",
                           NULL};
        return reply(c, 200, "{\"ok\":true}", 11, h);
    }
    if (strcmp(url, "/big") == 0) {
        return reply(c, 200, s->big, BIG_LEN, NULL);
    }
    if (strcmp(url, "/echo") == 0) {
        hr_buf_t out = HR_BUF_INIT;
        hr_buf_printf(&out, "%s %s\n", method, url);
        MHD_get_connection_values(c, MHD_HEADER_KIND, echo_header, &out);
        hr_buf_putc(&out, '\n');
        hr_buf_append(&out, r->body.data, r->body.len);
        enum MHD_Result rc = reply(c, 200, out.data, out.len, NULL);
        hr_buf_free(&out);
        return rc;
    }
    if (strcmp(url, "/hang") == 0) {
        hang(s);
        return reply(c, 200, "late", 4, NULL);
    }
    return reply(c, 404, "", 0, NULL);
}

static void sink_start(sink_t *s)
{
    memset(s, 0, sizeof *s);
    s->big = malloc(BIG_LEN);
    assert_non_null(s->big);
    for (size_t i = 0; i < BIG_LEN; i++) {
        s->big[i] = (char)('a' + i % 26);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, sink_handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_CONNECTION, sink_on_connection, s, MHD_OPTION_NOTIFY_COMPLETED,
        sink_on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port != 0);
}

static void sink_stop(sink_t *s)
{
    pthread_mutex_lock(&g_mu);
    s->release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    MHD_stop_daemon(s->d);
    free(s->big);
}

static int sink_setup(void **state)
{
    sink_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sink_start(s);
    *state = s;
    return 0;
}

static int sink_setup_curl(void **state)
{
    g_curl_only = true;
    return sink_setup(state);
}

static int sink_setup_h1(void **state)
{
    g_curl_only = false;
    return sink_setup(state);
}

/* Runs even when the test failed, so a parked handler never outlives its sink. */
static int sink_teardown(void **state)
{
    sink_stop(*state);
    free(*state);
    return 0;
}

static void sink_url(const sink_t *s, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%u%s", (unsigned)s->port, path);
}

/* ---- helpers ---- */

static hr_dloop_t *g_loop; /* the test's loop, for callbacks */

static hr_dloop_t *loop_new_limits(size_t max_connections, size_t max_host_connections,
                                   size_t max_posted)
{
    hr_dloop_opts_t o;
    hr_dloop_opts_default(&o);
    if (max_connections != 0) {
        o.max_connections = max_connections;
    }
    o.user_agent = "herald/test";
    o.proxy = ""; /* hermetic: ignore any *_proxy in the environment */
    o.curl_only = g_curl_only;
    if (max_host_connections != 0) {
        o.max_host_connections = max_host_connections;
    }
    if (max_posted != 0) {
        o.max_posted = max_posted;
    }
    hr_dloop_t *l = NULL;
    assert_int_equal(hr_dloop_create(&o, &l), 0);
    assert_non_null(l);
    g_loop = l;
    return l;
}

static hr_dloop_t *loop_new(size_t max_host_connections, size_t max_posted)
{
    return loop_new_limits(0, max_host_connections, max_posted);
}

typedef struct treq {
    hr_dloop_req_t req;
    char url[128];
    int n_done;
    bool on_loop; /* done() ran on the loop thread */
} treq_t;

static int g_done; /* completed treqs; under g_mu */

static void treq_done(hr_dloop_req_t *req)
{
    treq_t *t = req->user;
    pthread_mutex_lock(&g_mu);
    t->n_done++;
    t->on_loop = hr_dloop_on_loop_thread(g_loop);
    g_done++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void treq_init(treq_t *t, const sink_t *s, const char *path)
{
    memset(t, 0, sizeof *t);
    hr_dloop_req_init(&t->req);
    if (s != NULL) {
        sink_url(s, path, t->url, sizeof t->url);
    } else {
        snprintf(t->url, sizeof t->url, "%s", path);
    }
    t->req.url = t->url;
    t->req.done = treq_done;
    t->req.user = t;
    t->req.timeout_ms = 10000;
}

static void reset_globals(void)
{
    pthread_mutex_lock(&g_mu);
    g_bad = 0;
    g_done = 0;
    pthread_mutex_unlock(&g_mu);
}

/* A port on 127.0.0.1 that is bound but not listening: connecting is refused. */
static int refused_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* After requests to a plain-HTTP sink: the h1 runs kept connections of their own, the curl
 * runs none (so each run really exercised the transport it is named after). */
static void assert_transport(hr_dloop_t *l)
{
    hr_dloop_stats_t st = inspect(l);
    if (g_curl_only) {
        assert_int_equal(st.h1_connections, 0);
    } else {
        assert_true(st.h1_connections > 0);
    }
}

/* ---- raw: a hand-written HTTP/1.1 server for wire-level cases ---- */

/*
 * One thread accepts; each connection gets a detached thread that reads requests (head, then
 * Content-Length bytes of body) and answers by path:
 *   /ok         200 "ok", keep-alive          /slow       the same after 30 ms
 *   /chunked    chunked body "hello, world"   /close      "Connection: close", then closes
 *   /eof        HTTP/1.0, body until close    /continue   100 Continue, then 200 "done"
 *   /head       Content-Length: 100, no body for HEAD (a 100-byte body otherwise)
 *   /big        200 with RAW_BIG body bytes   /bytewise   a full response, one byte per send
 *   /malformed  a broken status line          /badheader  a header line without a colon
 *   /hang       parks until released          /drop2      answers the first request on a
 *   /idleclose  answers, then closes                      connection, drops the second
 */
enum { RAW_BIG = 200000 };

typedef struct raw {
    int lfd;
    uint16_t port;
    pthread_t accept_th;
    atomic_bool stop;
    atomic_int accepts;  /* connections accepted */
    atomic_int requests; /* requests read */
    atomic_int open_now, open_max;
    atomic_int live; /* connection threads running */
    int hanging;     /* under g_mu */
    bool release;    /* under g_mu */
} raw_t;

typedef struct raw_conn {
    raw_t *s;
    int fd;
} raw_conn_t;

static void raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return; /* the client went away */
        }
        c += k;
        n -= (size_t)k;
    }
}

static void raw_sends(int fd, const char *s)
{
    raw_send(fd, s, strlen(s));
}

static void raw_hang(raw_t *s)
{
    struct timespec ts;
    deadline_in(&ts, HANG_MAX_MS);
    pthread_mutex_lock(&g_mu);
    s->hanging++;
    pthread_cond_broadcast(&g_cv);
    int rc = 0;
    while (!s->release && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    s->hanging--;
    pthread_mutex_unlock(&g_mu);
}

static const char raw_ce_resp[] = "HTTP/1.1 200 OK\r\n"
                                  "Ce-Id: b1\r\n"
                                  "Content-Type: application/json\r\n"
                                  "X-Other: x\r\n"
                                  "ce-type:   com.example.bytes  \r\n"
                                  "Content-Length: 11\r\n"
                                  "\r\n"
                                  "{\"ok\":true}";

/* Answers one request; returns false when the connection is to be closed. `nth` counts the
 * requests on this connection from 1. */
static bool raw_answer(raw_t *s, int fd, const char *method, const char *path, int nth)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    if (strcmp(path, "/ok") == 0) {
        raw_sends(fd, ok);
    } else if (strcmp(path, "/slow") == 0) {
        struct timespec ts = {0, 30 * 1000000L};
        nanosleep(&ts, NULL);
        raw_sends(fd, ok);
    } else if (strcmp(path, "/chunked") == 0) {
        raw_sends(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: text/plain\r\nce-id: c1\r\n\r\n"
                      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n");
    } else if (strcmp(path, "/close") == 0) {
        raw_sends(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        return false;
    } else if (strcmp(path, "/eof") == 0) {
        raw_sends(fd, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close");
        return false;
    } else if (strcmp(path, "/continue") == 0) {
        raw_sends(fd, "HTTP/1.1 100 Continue\r\nce-id: interim\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nce-id: final\r\nContent-Length: 4\r\n\r\ndone");
    } else if (strcmp(path, "/head") == 0) {
        raw_sends(fd, "HTTP/1.1 200 OK\r\nContent-Type: x/y\r\nContent-Length: 100\r\n\r\n");
        if (strcmp(method, "HEAD") != 0) {
            char body[100];
            memset(body, 'h', sizeof body);
            raw_send(fd, body, sizeof body);
        }
    } else if (strcmp(path, "/big") == 0) {
        char head[96];
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", RAW_BIG);
        raw_sends(fd, head);
        char *body = malloc(RAW_BIG);
        for (int i = 0; i < RAW_BIG; i++) {
            body[i] = (char)('A' + i % 26);
        }
        raw_send(fd, body, RAW_BIG);
        free(body);
    } else if (strcmp(path, "/bytewise") == 0) {
        for (size_t i = 0; i < sizeof raw_ce_resp - 1; i++) {
            raw_send(fd, raw_ce_resp + i, 1);
            struct timespec ts = {0, 300 * 1000L};
            nanosleep(&ts, NULL);
        }
    } else if (strcmp(path, "/malformed") == 0) {
        raw_sends(fd, "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok");
        return false;
    } else if (strcmp(path, "/badheader") == 0) {
        raw_sends(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nno colon here\r\n\r\nok");
        return false;
    } else if (strcmp(path, "/hang") == 0) {
        raw_hang(s);
        raw_sends(fd, ok);
    } else if (strcmp(path, "/drop2") == 0) {
        if (nth > 1) {
            return false; /* as if it had closed the idle connection just as the request came */
        }
        raw_sends(fd, ok);
    } else if (strcmp(path, "/idleclose") == 0) {
        raw_sends(fd, ok);
        return false;
    } else {
        raw_sends(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return true;
}

/* Reads until buf holds `want` bytes or the head's end; false on EOF, error or stop. */
static bool raw_fill(raw_t *s, int fd, char *buf, size_t cap, size_t *len, size_t want)
{
    while (*len < want || (want == 0 && memmem(buf, *len, "\r\n\r\n", 4) == NULL)) {
        if (*len == cap) {
            return false;
        }
        ssize_t n = recv(fd, buf + *len, cap - *len, 0);
        if (n > 0) {
            *len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN) && !atomic_load(&s->stop)) {
            continue; /* SO_RCVTIMEO: look at the stop flag now and then */
        }
        return false;
    }
    return true;
}

static void *raw_conn_main(void *arg)
{
    raw_conn_t *rc = arg;
    raw_t *s = rc->s;
    int fd = rc->fd;
    free(rc);
    struct timeval tv = {0, 100 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[16384];
    size_t len = 0;
    for (int nth = 1;; nth++) {
        if (!raw_fill(s, fd, buf, sizeof buf, &len, 0)) {
            break;
        }
        size_t head_len = (size_t)((char *)memmem(buf, len, "\r\n\r\n", 4) - buf) + 4;
        char method[16] = "", path[256] = "";
        sscanf(buf, "%15s %255s", method, path);
        size_t clen = 0;
        for (const char *p = buf; p < buf + head_len; p = strchr(p, '\n') + 1) {
            if (strncasecmp(p, "content-length:", 15) == 0) {
                clen = strtoul(p + 15, NULL, 10);
            }
        }
        if (!raw_fill(s, fd, buf, sizeof buf, &len, head_len + clen)) {
            break;
        }
        memmove(buf, buf + head_len + clen, len - head_len - clen);
        len -= head_len + clen;
        atomic_fetch_add(&s->requests, 1);
        if (!raw_answer(s, fd, method, path, nth)) {
            break;
        }
    }
    atomic_fetch_sub(&s->open_now, 1);
    close(fd);
    atomic_fetch_sub(&s->live, 1);
    return NULL;
}

static void *raw_accept_main(void *arg)
{
    raw_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        atomic_fetch_add(&s->accepts, 1);
        int now = atomic_fetch_add(&s->open_now, 1) + 1;
        int max = atomic_load(&s->open_max);
        while (now > max && !atomic_compare_exchange_weak(&s->open_max, &max, now)) {
        }
        raw_conn_t *rc = malloc(sizeof *rc);
        rc->s = s;
        rc->fd = fd;
        atomic_fetch_add(&s->live, 1);
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, raw_conn_main, rc) != 0) {
            atomic_fetch_sub(&s->live, 1);
            atomic_fetch_sub(&s->open_now, 1);
            close(fd);
            free(rc);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

/* Listens on 127.0.0.1, or [::1] with `ipv6`. Returns false when [::1] is not available. */
static bool raw_start_on(raw_t *s, bool ipv6)
{
    memset(s, 0, sizeof *s);
    s->lfd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (ipv6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
        sa->sin6_family = AF_INET6;
        sa->sin6_addr = in6addr_loopback;
        len = sizeof *sa;
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
        sa->sin_family = AF_INET;
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *sa;
    }
    if (bind(s->lfd, (struct sockaddr *)&ss, len) != 0) {
        assert_true(ipv6);
        close(s->lfd);
        return false;
    }
    assert_int_equal(listen(s->lfd, 128), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&ss, &len), 0);
    s->port = ipv6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                   : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&s->accept_th, NULL, raw_accept_main, s), 0);
    return true;
}

static void raw_start(raw_t *s)
{
    raw_start_on(s, false);
}

static void raw_stop(raw_t *s)
{
    atomic_store(&s->stop, true);
    pthread_mutex_lock(&g_mu);
    s->release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(s->accept_th, NULL);
    /* Connection threads notice the stop flag within SO_RCVTIMEO. */
    for (int i = 0; i < 5000 && atomic_load(&s->live) > 0; i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&s->live), 0);
    close(s->lfd);
}

static void raw_release(raw_t *s)
{
    pthread_mutex_lock(&g_mu);
    s->release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int raw_setup(void **state)
{
    raw_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    raw_start(s);
    *state = s;
    return 0;
}

static int raw_setup_curl(void **state)
{
    g_curl_only = true;
    return raw_setup(state);
}

static int raw_setup_h1(void **state)
{
    g_curl_only = false;
    return raw_setup(state);
}

static int raw_teardown(void **state)
{
    raw_stop(*state);
    free(*state);
    return 0;
}

static void raw_url(const raw_t *s, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%u%s", (unsigned)s->port, path);
}

static void raw_treq(treq_t *t, const raw_t *s, const char *path)
{
    char url[128];
    raw_url(s, path, url, sizeof url);
    treq_init(t, NULL, url);
}

/* Submits `t` and waits for its done(); `n_before` requests had completed before it. */
static void run_one(hr_dloop_t *l, treq_t *t, int n_before)
{
    assert_int_equal(hr_dloop_submit(l, &t->req), 0);
    assert_true(wait_ge(&g_done, n_before + 1, 15000));
    assert_int_equal(t->n_done, 1);
}

/* ---- tests: requests ---- */

static void test_statuses_and_captures(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    uint16_t rport;
    int rfd = refused_port(&rport);

    enum { OK, ACCEPTED, UNAVAILABLE, THROTTLE, CE, REFUSED, FTP, TLS, N };
    treq_t r[N];
    treq_init(&r[OK], s, "/ok");
    treq_init(&r[ACCEPTED], s, "/accepted");
    treq_init(&r[UNAVAILABLE], s, "/unavailable");
    treq_init(&r[THROTTLE], s, "/throttle");
    treq_init(&r[CE], s, "/ce");
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", (unsigned)rport);
    treq_init(&r[REFUSED], NULL, url);
    treq_init(&r[FTP], NULL, "ftp://127.0.0.1/x");
    snprintf(url, sizeof url, "https://127.0.0.1:%u/ok", (unsigned)s->port);
    treq_init(&r[TLS], NULL, url); /* TLS to a plain-HTTP port */
    for (int i = 0; i < N; i++) {
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    assert_true(wait_ge(&g_done, N, 15000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].n_done, 1);
        assert_true(r[i].on_loop);
    }

    hr_dloop_req_t *q = &r[OK].req;
    assert_int_equal(q->error, 0);
    assert_string_equal(q->error_text, "");
    assert_int_equal(q->status, 200);
    assert_int_equal(q->resp_body.len, 2);
    assert_memory_equal(q->resp_body.data, "ok", 2);
    assert_false(q->resp_truncated);
    assert_null(q->resp_content_type);
    assert_null(q->resp_retry_after);
    assert_int_equal(q->resp_ce_count, 0);
    assert_true(q->latency_us > 0);

    q = &r[ACCEPTED].req;
    assert_int_equal(q->error, 0);
    assert_int_equal(q->status, 202);
    assert_string_equal((char *)q->resp_body.data, "queued");
    assert_string_equal(q->resp_content_type, "text/plain");

    assert_int_equal(r[UNAVAILABLE].req.error, 0);
    assert_int_equal(r[UNAVAILABLE].req.status, 503);
    assert_int_equal(r[UNAVAILABLE].req.resp_body.len, 0);

    q = &r[THROTTLE].req;
    assert_int_equal(q->status, 429);
    assert_string_equal(q->resp_retry_after, "7");
    assert_string_equal((char *)q->resp_body.data, "slow down");

    q = &r[CE].req;
    assert_int_equal(q->status, 200);
    assert_string_equal(q->resp_content_type, "application/json; charset=utf-8");
    assert_string_equal((char *)q->resp_body.data, "{\"ok\":true}");
    assert_int_equal(q->resp_ce_count, 4);
    const char *want[][2] = {{"ce-id", "r1"},
                             {"ce-type", "com.example.reply"},
                             {"ce-source", "/sink"},
                             {"ce-specversion", "1.0"}};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(q->resp_ce[i].name, want[i][0]);
        assert_string_equal(q->resp_ce[i].value, want[i][1]);
    }

    q = &r[REFUSED].req;
    assert_int_equal(q->error, -ECONNREFUSED);
    assert_int_equal(q->status, 0);
    assert_true(strlen(q->error_text) > 0);
    assert_non_null(strstr(q->error_text, "127.0.0.1"));

    q = &r[FTP].req;
    assert_int_equal(q->error, HR_EINVAL);
    assert_true(strlen(q->error_text) > 0);

    q = &r[TLS].req;
    assert_int_equal(q->error, HR_EREJECTED);
    assert_int_equal(q->status, 0);
    assert_true(strlen(q->error_text) > 0);

    hr_dloop_destroy(l);
    for (int i = 0; i < N; i++) {
        hr_dloop_req_free(&r[i].req);
    }
    close(rfd);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Splits an echo response into its request line + headers and its body. */
static void parse_echo(const hr_dloop_req_t *q, char *head, size_t head_cap, const uint8_t **body,
                       size_t *body_len)
{
    const char *d = (const char *)q->resp_body.data;
    const char *sep = strstr(d, "\n\n");
    assert_non_null(sep);
    size_t n = (size_t)(sep - d) + 1;
    assert_true(n < head_cap);
    memcpy(head, d, n);
    head[n] = '\0';
    *body = (const uint8_t *)sep + 2;
    *body_len = q->resp_body.len - n - 1;
}

/* Returns the value of header `name` in an echo head (case-insensitive name), or NULL. */
static const char *echo_value(char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (char *line = strchr(head, '\n') + 1; *line != '\0'; line = strchr(line, '\n') + 1) {
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vl = (size_t)(strchr(v, '\n') - v);
            assert_true(vl < cap);
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

static int echo_header_count(const char *head)
{
    int n = 0;
    for (const char *p = strchr(head, '\n') + 1; *p != '\0'; p = strchr(p, '\n') + 1) {
        n++;
    }
    return n;
}

static void test_request_exactly_as_sent(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);

    uint8_t body[300];
    for (size_t i = 0; i < sizeof body; i++) {
        body[i] = (uint8_t)(i * 7); /* binary, with NULs */
    }
    treq_t a, b;
    treq_init(&a, s, "/echo");
    a.req.body = (hr_iov_t){body, sizeof body};
    assert_int_equal(hr_dloop_req_add_header(&a.req, "Content-Type", "application/json"), 0);
    assert_int_equal(hr_dloop_req_add_header(&a.req, "ce-id", "42"), 0);
    assert_int_equal(hr_dloop_req_add_header(&a.req, "ce-source", "/orders"), 0);
    assert_int_equal(hr_dloop_req_add_header(&a.req, "traceparent",
                                             "00-0af7651916cd43dd8448eb211c80319c-"
                                             "b7ad6b7169203331-01"),
                     0);
    assert_int_equal(hr_dloop_req_add_header(&a.req, "X-Empty", ""), 0);
    /* No Content-Type, no body, another method. */
    treq_init(&b, s, "/echo");
    b.req.method = "PUT";
    /* The caller's User-Agent and Accept replace the defaults (any case). */
    assert_int_equal(hr_dloop_req_add_header(&b.req, "user-AGENT", "agent/2"), 0);
    assert_int_equal(hr_dloop_req_add_header(&b.req, "Accept", "text/plain"), 0);
    assert_int_equal(hr_dloop_submit(l, &a.req), 0);
    assert_int_equal(hr_dloop_submit(l, &b.req), 0);
    assert_true(wait_ge(&g_done, 2, 10000));

    char head[4096], v[256];
    const uint8_t *got;
    size_t got_len;
    assert_int_equal(a.req.error, 0);
    assert_int_equal(a.req.status, 200);
    parse_echo(&a.req, head, sizeof head, &got, &got_len);
    assert_int_equal(strncmp(head, "POST /echo\n", 11), 0);
    assert_int_equal(got_len, sizeof body);
    assert_memory_equal(got, body, sizeof body);
    assert_string_equal(echo_value(head, "content-type", v, sizeof v), "application/json");
    assert_string_equal(echo_value(head, "ce-id", v, sizeof v), "42");
    assert_string_equal(echo_value(head, "ce-source", v, sizeof v), "/orders");
    assert_string_equal(echo_value(head, "traceparent", v, sizeof v),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_string_equal(echo_value(head, "x-empty", v, sizeof v), "");
    assert_string_equal(echo_value(head, "content-length", v, sizeof v), "300");
    assert_string_equal(echo_value(head, "user-agent", v, sizeof v), "herald/test");
    assert_non_null(echo_value(head, "host", v, sizeof v));
    assert_non_null(echo_value(head, "accept", v, sizeof v)); /* libcurl's "*" "/" "*" */
    assert_null(echo_value(head, "expect", v, sizeof v));
    assert_null(echo_value(head, "transfer-encoding", v, sizeof v));
    /* Exactly: our 5, Content-Length, User-Agent, Host, Accept. */
    assert_int_equal(echo_header_count(head), 9);

    assert_int_equal(b.req.error, 0);
    parse_echo(&b.req, head, sizeof head, &got, &got_len);
    assert_int_equal(strncmp(head, "PUT /echo\n", 10), 0);
    assert_int_equal(got_len, 0);
    assert_null(echo_value(head, "content-type", v, sizeof v));
    assert_string_equal(echo_value(head, "content-length", v, sizeof v), "0");
    assert_null(echo_value(head, "expect", v, sizeof v));
    assert_string_equal(echo_value(head, "user-agent", v, sizeof v), "agent/2");
    assert_string_equal(echo_value(head, "accept", v, sizeof v), "text/plain");
    /* Exactly: our 2, Content-Length, Host. */
    assert_int_equal(echo_header_count(head), 4);

    hr_dloop_destroy(l);
    hr_dloop_req_free(&a.req);
    hr_dloop_req_free(&b.req);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Rejected headers leave the request unchanged; cleared ones are not sent. */
static void test_header_validation(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    treq_t t;
    treq_init(&t, s, "/echo");
    assert_true(t.req.verify_tls);
    hr_dloop_req_t *r = &t.req;
    assert_int_equal(hr_dloop_req_add_header(r, "old", "1"), 0);
    hr_dloop_req_clear_headers(r);
    assert_int_equal(hr_dloop_req_add_header(r, "", "v"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "a:b", "v"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "a b", "v"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "a\r\nb", "v"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "x", "v\r\nInjected: 1"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "x", "v\n"), HR_EINVAL);
    assert_int_equal(hr_dloop_req_add_header(r, "x", "v"), 0);
    assert_int_equal(hr_dloop_submit(l, r), 0);
    assert_true(wait_ge(&g_done, 1, 10000));
    assert_int_equal(r->error, 0);
    char head[4096], v[256];
    const uint8_t *got;
    size_t got_len;
    parse_echo(r, head, sizeof head, &got, &got_len);
    assert_string_equal(echo_value(head, "x", v, sizeof v), "v");
    assert_null(echo_value(head, "old", v, sizeof v));
    assert_null(echo_value(head, "injected", v, sizeof v));
    /* x, Content-Length, User-Agent, Host, Accept */
    assert_int_equal(echo_header_count(head), 5);

    hr_dloop_destroy(l);
    hr_dloop_req_reset(r);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->resp_body.len, 0);
    hr_dloop_req_free(r);
    hr_dloop_req_free(r); /* freeing a freed (zeroed) request is harmless */
    assert_int_equal(read_int(&g_bad), 0);
}

/* 2,000 concurrent requests over at most 64 connections. */
enum { MANY = 2000 };

static void test_many_concurrent(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(64, 0);
    static const char *paths[] = {"/ok", "/accepted", "/unavailable"};
    static const long statuses[] = {200, 202, 503};
    treq_t *r = calloc(MANY, sizeof *r);
    assert_non_null(r);
    uint64_t t0 = hr_mono_ns();
    for (int i = 0; i < MANY; i++) {
        treq_init(&r[i], s, paths[i % 3]);
        r[i].req.timeout_ms = 30000; /* includes waiting for a free connection */
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    assert_true(wait_ge(&g_done, MANY, 60000));
    uint64_t ms = (hr_mono_ns() - t0) / 1000000;
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(r[i].n_done, 1);
        assert_int_equal(r[i].req.error, 0);
        assert_int_equal(r[i].req.status, statuses[i % 3]);
    }
    int conns = atomic_load(&s->connections);
    print_message("    %d requests in %llu ms over %d connections\n", MANY, (unsigned long long)ms,
                  conns);
    assert_int_equal(atomic_load(&s->requests), MANY);
    assert_true(conns >= 1 && conns <= 64);

    hr_dloop_destroy(l);
    for (int i = 0; i < MANY; i++) {
        hr_dloop_req_free(&r[i].req);
    }
    free(r);
    assert_int_equal(read_int(&g_bad), 0);
}

/* One request resubmitted from its own done() 100 times: one keep-alive connection. */
typedef struct chain {
    treq_t t;
    int left;
    int finished;
} chain_t;

static void chain_done(hr_dloop_req_t *req)
{
    chain_t *c = req->user;
    CHECK(req->error == 0 && req->status == 200);
    CHECK(hr_dloop_on_loop_thread(g_loop));
    if (--c->left > 0) {
        CHECK(hr_dloop_submit(g_loop, req) == 0);
        return;
    }
    bump(&c->finished);
}

static void test_keepalive_reuse(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    chain_t c;
    treq_init(&c.t, s, "/ok");
    c.t.req.done = chain_done;
    c.t.req.user = &c;
    c.left = 100;
    c.finished = 0;
    assert_int_equal(hr_dloop_submit(l, &c.t.req), 0);
    assert_true(wait_ge(&c.finished, 1, 20000));
    assert_int_equal(atomic_load(&s->requests), 100);
    assert_int_equal(atomic_load(&s->connections), 1);

    /* A truncated body is drained, so the connection is still reused afterwards. */
    treq_t big, after;
    treq_init(&big, s, "/big");
    treq_init(&after, s, "/ok");
    assert_int_equal(hr_dloop_submit(l, &big.req), 0);
    assert_true(wait_ge(&g_done, 1, 10000));
    assert_int_equal(big.req.error, 0);
    assert_int_equal(big.req.status, 200);
    assert_true(big.req.resp_truncated);
    assert_int_equal(big.req.resp_body.len, 64 * 1024);
    assert_true(big.req.resp_body.cap <= 64 * 1024 + 1);
    assert_memory_equal(big.req.resp_body.data, s->big, 64 * 1024);
    assert_int_equal(hr_dloop_submit(l, &after.req), 0);
    assert_true(wait_ge(&g_done, 2, 10000));
    assert_int_equal(after.req.status, 200);
    assert_false(after.req.resp_truncated);
    assert_int_equal(atomic_load(&s->connections), 1);

    hr_dloop_destroy(l);
    hr_dloop_req_free(&c.t.req);
    hr_dloop_req_free(&big.req);
    hr_dloop_req_free(&after.req);
    assert_int_equal(read_int(&g_bad), 0);
}

/* A 429 attempt, a timer for the back-off, then the same request again to another URL. */
typedef struct retry {
    treq_t t;
    hr_dloop_timer_t backoff;
    char next_url[128];
    int attempts;
    long first_status;
    bool first_retry_after;
    int finished;
    uint64_t timer_deadline, timer_fired;
} retry_t;

static void retry_fire(hr_dloop_timer_t *t, void *arg)
{
    retry_t *r = arg;
    r->timer_fired = hr_mono_ns();
    CHECK(t == &r->backoff && !hr_dloop_timer_is_active(t));
    CHECK(hr_dloop_submit(g_loop, &r->t.req) == 0);
}

static void retry_done(hr_dloop_req_t *req)
{
    retry_t *r = req->user;
    if (++r->attempts == 1) {
        r->first_status = req->status;
        r->first_retry_after =
            req->resp_retry_after != NULL && strcmp(req->resp_retry_after, "7") == 0;
        req->url = r->next_url;
        r->timer_deadline = hr_mono_ns() + 20 * 1000000ull;
        hr_dloop_timer_start(g_loop, &r->backoff, r->timer_deadline, retry_fire, r);
        return;
    }
    bump(&r->finished);
}

static void test_retry_reuses_request(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    retry_t r;
    memset(&r, 0, sizeof r);
    treq_init(&r.t, s, "/throttle");
    sink_url(s, "/ce", r.next_url, sizeof r.next_url);
    r.t.req.done = retry_done;
    r.t.req.user = &r;
    assert_int_equal(hr_dloop_submit(l, &r.t.req), 0);
    assert_true(wait_ge(&r.finished, 1, 10000));
    assert_int_equal(r.attempts, 2);
    assert_int_equal(r.first_status, 429);
    assert_true(r.first_retry_after);
    assert_true(r.timer_fired >= r.timer_deadline);
    /* The second result replaced the first entirely. */
    assert_int_equal(r.t.req.status, 200);
    assert_null(r.t.req.resp_retry_after);
    assert_int_equal(r.t.req.resp_ce_count, 4);
    assert_string_equal((char *)r.t.req.resp_body.data, "{\"ok\":true}");
    hr_dloop_destroy(l);
    hr_dloop_req_free(&r.t.req);
    assert_int_equal(read_int(&g_bad), 0);
}

/* ---- tests: timeouts and timers during transfers ---- */

enum { N_TICKS = 3 };

typedef struct tick_ctx {
    hr_dloop_timer_t timers[N_TICKS];
    uint64_t deadline[N_TICKS], fired[N_TICKS];
    int n_fired;
    int req_done_when_fired; /* g_done seen by the last tick */
} tick_ctx_t;

static void tick_fire(hr_dloop_timer_t *t, void *arg)
{
    tick_ctx_t *c = arg;
    size_t i = (size_t)(t - c->timers);
    c->fired[i] = hr_mono_ns();
    c->req_done_when_fired = g_done;
    bump(&c->n_fired);
}

typedef struct tick_arg {
    hr_dloop_t *l;
    tick_ctx_t *c;
} tick_arg_t;

static void tick_arm(void *arg)
{
    tick_arg_t *a = arg;
    uint64_t now = hr_mono_ns();
    for (int i = 0; i < N_TICKS; i++) {
        a->c->deadline[i] = now + (uint64_t)(i + 1) * 50 * 1000000ull;
        hr_dloop_timer_start(a->l, &a->c->timers[i], a->c->deadline[i], tick_fire, a->c);
    }
}

static void test_timeout_with_timers_running(void **state)
{
    reset_globals();
    sink_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    enum { N_HANG = 8, TIMEOUT_MS = 400 };
    treq_t r[N_HANG];
    for (int i = 0; i < N_HANG; i++) {
        treq_init(&r[i], s, "/hang");
        r[i].req.timeout_ms = TIMEOUT_MS;
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    tick_ctx_t c;
    memset(&c, 0, sizeof c);
    tick_arg_t a = {l, &c};
    run_on_loop(l, tick_arm, &a);
    assert_true(wait_ge(&g_done, N_HANG, 10000));
    assert_true(wait_ge(&c.n_fired, N_TICKS, 10000));
    for (int i = 0; i < N_HANG; i++) {
        hr_dloop_req_t *q = &r[i].req;
        assert_int_equal(q->error, HR_ETIMEOUT);
        assert_int_equal(q->curl_code, 28); /* CURLE_OPERATION_TIMEDOUT */
        assert_int_equal(q->status, 0);
        assert_true(strlen(q->error_text) > 0);
        /* libcurl times the attempt on CLOCK_MONOTONIC_RAW, hr_mono_ns() on CLOCK_MONOTONIC,
         * which NTP may slew by up to 500 ppm: allow 2 ms. */
        assert_true(q->latency_us + 2000 >= TIMEOUT_MS * 1000ull);
        assert_true(q->latency_us < 5 * 1000000ull);
    }
    /* The timers fired on time while every transfer was still waiting. */
    for (int i = 0; i < N_TICKS; i++) {
        assert_true(c.fired[i] >= c.deadline[i]);
        assert_true(c.fired[i] < c.deadline[i] + 1000 * 1000000ull);
        if (i > 0) {
            assert_true(c.fired[i] >= c.fired[i - 1]);
        }
    }
    assert_int_equal(c.req_done_when_fired, 0);

    hr_dloop_destroy(l);
    for (int i = 0; i < N_HANG; i++) {
        hr_dloop_req_free(&r[i].req);
    }
    assert_int_equal(read_int(&g_bad), 0);
}

/* ---- tests: timers ---- */

/* Model-based: random start/stop/restart against a reference; all deadlines are in the past,
 * so everything fires as soon as the task returns, in (deadline, start order). Every seventh
 * parent starts a child timer from its callback, already due: it must fire once, later. */
enum { MT_N = 4000, MT_OPS = 40000 };

typedef struct mtimer {
    hr_dloop_timer_t t;
    bool active;       /* model */
    uint64_t deadline; /* model */
    uint64_t order;    /* model start order */
    int fired;
    int fired_at; /* position in the firing sequence */
    hr_dloop_timer_t child;
    int child_fired;
    int child_fired_at;
} mtimer_t;

typedef struct model {
    hr_dloop_t *l;
    mtimer_t *m;
    int *fire_log; /* index of each fired parent, in firing order */
    int n_log;
    int n_fired_all; /* parents and children */
    int n_children;
    int expected;
    int total_fired; /* under g_mu via bump */
} model_t;

static model_t g_model;

static void child_fire(hr_dloop_timer_t *t, void *arg)
{
    model_t *md = &g_model;
    mtimer_t *m = arg;
    m->child_fired++;
    m->child_fired_at = md->n_fired_all++;
    CHECK(!hr_dloop_timer_is_active(t));
    bump(&md->total_fired);
}

static void parent_fire(hr_dloop_timer_t *t, void *arg)
{
    model_t *md = &g_model;
    mtimer_t *m = arg;
    int i = (int)(m - md->m);
    m->fired++;
    m->fired_at = md->n_fired_all++;
    md->fire_log[md->n_log++] = i;
    CHECK(!hr_dloop_timer_is_active(t));
    if (i % 7 == 0) {
        hr_dloop_timer_start(md->l, &m->child, 0, child_fire, m); /* due, but next round */
    }
    bump(&md->total_fired);
}

static void model_ops(void *arg)
{
    model_t *md = arg;
    uint64_t order = 0;
    srand(7);
    for (int op = 0; op < MT_OPS; op++) {
        mtimer_t *m = &md->m[rand() % MT_N];
        if (rand() % 4 == 0) {
            hr_dloop_timer_stop(md->l, &m->t);
            m->active = false;
        } else {
            m->deadline = 1 + (uint64_t)(rand() % 500); /* many ties */
            m->order = order++;
            m->active = true;
            hr_dloop_timer_start(md->l, &m->t, m->deadline, parent_fire, m);
        }
        CHECK(hr_dloop_timer_is_active(&m->t) == m->active);
        if (op % 4000 == 0) {
            hr_dloop_validate(md->l);
        }
    }
    hr_dloop_validate(md->l);
    hr_dloop_stats_t st;
    hr_dloop_stats(md->l, &st);
    int n_active = 0;
    for (int i = 0; i < MT_N; i++) {
        n_active += md->m[i].active;
        md->n_children += md->m[i].active && i % 7 == 0;
    }
    CHECK(st.timers == (size_t)n_active);
    pthread_mutex_lock(&g_mu);
    md->expected = n_active + md->n_children;
    pthread_mutex_unlock(&g_mu);
}

static const mtimer_t *g_sort_base;

static int by_deadline_then_order(const void *a, const void *b)
{
    const mtimer_t *x = &g_sort_base[*(const int *)a], *y = &g_sort_base[*(const int *)b];
    if (x->deadline != y->deadline) {
        return x->deadline < y->deadline ? -1 : 1;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

static void test_timers_model(void **state)
{
    (void)state;
    reset_globals();
    model_t *md = &g_model;
    memset(md, 0, sizeof *md);
    md->l = loop_new(0, 0);
    md->m = calloc(MT_N, sizeof *md->m);
    md->fire_log = calloc(MT_N, sizeof *md->fire_log);
    run_on_loop(md->l, model_ops, md);
    int expected = read_int(&md->expected);
    assert_true(expected > MT_N / 2);
    assert_true(wait_ge(&md->total_fired, expected, 10000));

    int want[MT_N], n_want = 0;
    for (int i = 0; i < MT_N; i++) {
        if (md->m[i].active) {
            want[n_want++] = i;
        }
        assert_int_equal(md->m[i].fired, md->m[i].active ? 1 : 0);
        assert_int_equal(md->m[i].child_fired, md->m[i].active && i % 7 == 0 ? 1 : 0);
        if (md->m[i].child_fired) {
            assert_true(md->m[i].child_fired_at > md->m[i].fired_at);
        }
        assert_false(hr_dloop_timer_is_active(&md->m[i].t));
    }
    g_sort_base = md->m;
    qsort(want, (size_t)n_want, sizeof *want, by_deadline_then_order);
    assert_int_equal(md->n_log, n_want);
    assert_memory_equal(md->fire_log, want, (size_t)n_want * sizeof *want);

    hr_dloop_destroy(md->l);
    free(md->m);
    free(md->fire_log);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Real-time timers over ~100 ms, some stopped, some spawning more from their callback. */
enum { RT_N = 2000 };

typedef struct rtimer {
    hr_dloop_timer_t t;
    bool stopped;
    bool spawned; /* started from a callback */
} rtimer_t;

typedef struct rt {
    hr_dloop_t *l;
    rtimer_t timers[2 * RT_N];
    int n_timers;
    uint64_t last_deadline;
    int out_of_order, early, fired_stopped;
    int expected; /* under g_mu */
    int fired;    /* under g_mu */
} rt_t;

static void rt_fire(hr_dloop_timer_t *t, void *arg)
{
    rt_t *c = arg;
    rtimer_t *r = (rtimer_t *)t;
    uint64_t now = hr_mono_ns();
    c->out_of_order += t->deadline_ns < c->last_deadline;
    c->early += now < t->deadline_ns;
    c->fired_stopped += r->stopped;
    c->last_deadline = t->deadline_ns;
    if (!r->spawned && rand() % 4 == 0) {
        rtimer_t *n = &c->timers[c->n_timers++];
        n->spawned = true;
        pthread_mutex_lock(&g_mu);
        c->expected++;
        pthread_mutex_unlock(&g_mu);
        hr_dloop_timer_start(c->l, &n->t, now + (uint64_t)(rand() % 20) * 1000000ull, rt_fire, c);
    }
    bump(&c->fired);
}

static void rt_arm(void *arg)
{
    rt_t *c = arg;
    uint64_t now = hr_mono_ns();
    srand(11);
    int expected = 0;
    for (int i = 0; i < RT_N; i++) {
        rtimer_t *r = &c->timers[c->n_timers++];
        hr_dloop_timer_start(c->l, &r->t, now + (uint64_t)(rand() % 100000) * 1000ull, rt_fire, c);
        expected++;
    }
    /* Stop every fourth; restart every fifth (from the stopped ones too) at another time. */
    for (int i = 0; i < RT_N; i += 4) {
        hr_dloop_timer_stop(c->l, &c->timers[i].t);
        c->timers[i].stopped = true;
        expected--;
    }
    for (int i = 0; i < RT_N; i += 5) {
        if (c->timers[i].stopped) {
            c->timers[i].stopped = false;
            expected++;
        }
        hr_dloop_timer_start(c->l, &c->timers[i].t, now + (uint64_t)(rand() % 50000) * 1000ull,
                             rt_fire, c);
    }
    pthread_mutex_lock(&g_mu);
    c->expected += expected;
    pthread_mutex_unlock(&g_mu);
}

static void test_timers_realtime(void **state)
{
    (void)state;
    reset_globals();
    rt_t *c = calloc(1, sizeof *c);
    c->l = loop_new(0, 0);
    run_on_loop(c->l, rt_arm, c);
    /* A callback raises `expected` before it spawns, so fired == expected means none is
     * pending; `expected` may still grow while we wait, hence the loop. */
    for (;;) {
        int want = read_int(&c->expected);
        assert_true(wait_ge(&c->fired, want, 10000));
        if (read_int(&c->expected) == want) {
            break;
        }
    }
    hr_dloop_destroy(c->l);
    assert_int_equal(c->fired, c->expected);
    assert_true(c->n_timers > RT_N);
    assert_int_equal(c->out_of_order, 0);
    assert_int_equal(c->early, 0);
    assert_int_equal(c->fired_stopped, 0);
    free(c);
    assert_int_equal(read_int(&g_bad), 0);
}

/* ---- tests: posting ---- */

enum { POSTERS = 4, POSTS = 10000 };

typedef struct post_item {
    hr_dloop_task_t task; /* for hr_dloop_post_task */
    int poster, seq;
    int runs;
} post_item_t;

typedef struct post_ctx {
    hr_dloop_t *l;
    post_item_t items[POSTERS][POSTS];
    int next_seq[POSTERS]; /* loop thread only */
    int out_of_order, off_loop, busy;
    int total; /* under g_mu */
} post_ctx_t;

static post_ctx_t *g_post;

static void post_run(void *arg)
{
    post_item_t *it = arg;
    post_ctx_t *c = g_post;
    it->runs++;
    c->off_loop += !hr_dloop_on_loop_thread(c->l);
    c->out_of_order += it->seq != c->next_seq[it->poster];
    c->next_seq[it->poster] = it->seq + 1;
    bump(&c->total);
}

typedef struct poster_arg {
    post_ctx_t *c;
    int poster;
    int busy, errors;
} poster_arg_t;

static void *poster_main(void *arg)
{
    poster_arg_t *a = arg;
    post_ctx_t *c = a->c;
    if (hr_dloop_on_loop_thread(c->l)) {
        a->errors++;
    }
    for (int i = 0; i < POSTS; i++) {
        post_item_t *it = &c->items[a->poster][i];
        it->poster = a->poster;
        it->seq = i;
        if (i % 3 == 0) {
            it->task.fn = post_run;
            it->task.arg = it;
            a->errors += hr_dloop_post_task(c->l, &it->task) != 0;
            continue;
        }
        int rc;
        while ((rc = hr_dloop_post(c->l, post_run, it)) == HR_EBUSY) {
            a->busy++;
            sched_yield();
        }
        a->errors += rc != 0;
    }
    return NULL;
}

static void test_post_from_threads(void **state)
{
    (void)state;
    reset_globals();
    post_ctx_t *c = calloc(1, sizeof *c);
    g_post = c;
    c->l = loop_new(0, 0);
    assert_false(hr_dloop_on_loop_thread(c->l));
    pthread_t th[POSTERS];
    poster_arg_t args[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        args[i] = (poster_arg_t){c, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &args[i]), 0);
    }
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].errors, 0);
    }
    assert_true(wait_ge(&c->total, POSTERS * POSTS, 20000));
    hr_dloop_destroy(c->l);
    assert_int_equal(c->total, POSTERS * POSTS);
    assert_int_equal(c->out_of_order, 0);
    assert_int_equal(c->off_loop, 0);
    for (int p = 0; p < POSTERS; p++) {
        assert_int_equal(c->next_seq[p], POSTS);
        for (int i = 0; i < POSTS; i++) {
            assert_int_equal(c->items[p][i].runs, 1);
        }
    }
    free(c);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Back-pressure: with max_posted 4 and the loop busy, the fifth post is refused. */
typedef struct blocker {
    int running;  /* under g_mu */
    bool release; /* under g_mu */
    int ran;      /* under g_mu */
} blocker_t;

static void block_loop(void *arg)
{
    blocker_t *b = arg;
    struct timespec ts;
    deadline_in(&ts, 10000);
    pthread_mutex_lock(&g_mu);
    b->running = 1;
    pthread_cond_broadcast(&g_cv);
    int rc = 0;
    while (!b->release && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    pthread_mutex_unlock(&g_mu);
}

static void count_run(void *arg)
{
    blocker_t *b = arg;
    bump(&b->ran);
}

static void test_post_backpressure(void **state)
{
    (void)state;
    reset_globals();
    hr_dloop_t *l = loop_new(0, 4);
    blocker_t b = {0, false, 0};
    assert_int_equal(hr_dloop_post(l, block_loop, &b), 0);
    assert_true(wait_ge(&b.running, 1, 10000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(hr_dloop_post(l, count_run, &b), 0);
    }
    assert_int_equal(hr_dloop_post(l, count_run, &b), HR_EBUSY);
    hr_dloop_task_t extra = {.fn = count_run, .arg = &b};
    assert_int_equal(hr_dloop_post_task(l, &extra), 0); /* intrusive: never refused */
    pthread_mutex_lock(&g_mu);
    b.release = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    assert_true(wait_ge(&b.ran, 5, 10000));
    assert_int_equal(hr_dloop_post(l, count_run, &b), 0);
    assert_true(wait_ge(&b.ran, 6, 10000));
    hr_dloop_destroy(l);
    assert_int_equal(b.ran, 6);
}

/* ---- tests: shutdown ---- */

enum { SD_HANG = 40, SD_TIMERS = 1000 };

typedef struct sd {
    hr_dloop_t *l;
    treq_t r[SD_HANG + 1];
    hr_dloop_timer_t timers[SD_TIMERS];
    hr_dloop_timer_t late; /* started from a done() during shutdown */
    int timer_fired;
    int resubmit_closed, wrong_error;
    int task_ran;
} sd_t;

static void sd_timer(hr_dloop_timer_t *t, void *arg)
{
    sd_t *c = arg;
    c->timer_fired++;
}

static sd_t *g_sd;

static void sd_req_done(hr_dloop_req_t *req)
{
    sd_t *c = g_sd;
    c->wrong_error += req->error != HR_ECLOSED || strcmp(req->error_text, "shutting down") != 0;
    /* The runtime reacts as it would to a failure: retry now, or later with a timer. */
    c->resubmit_closed += hr_dloop_submit(c->l, req) == HR_ECLOSED;
    hr_dloop_timer_start(c->l, &c->late, hr_mono_ns(), sd_timer, c);
    treq_done(req);
}

static void sd_arm(void *arg)
{
    sd_t *c = arg;
    uint64_t now = hr_mono_ns();
    for (int i = 0; i < SD_TIMERS; i++) {
        hr_dloop_timer_start(c->l, &c->timers[i], now + 60 * 1000000000ull + (uint64_t)i, sd_timer,
                             c);
    }
}

static void sd_task(void *arg)
{
    sd_t *c = arg;
    c->task_ran++;
}

static void test_destroy_in_flight(void **state)
{
    reset_globals();
    sink_t *s = *state;
    sd_t *c = calloc(1, sizeof *c);
    g_sd = c;
    c->l = loop_new(64, 0);
    for (int i = 0; i <= SD_HANG; i++) {
        treq_init(&c->r[i], s, "/hang");
        c->r[i].req.timeout_ms = 60000;
        c->r[i].req.done = sd_req_done;
    }
    for (int i = 0; i < SD_HANG; i++) {
        assert_int_equal(hr_dloop_submit(c->l, &c->r[i].req), 0);
    }
    assert_true(wait_ge(&s->hanging, SD_HANG, 10000));
    run_on_loop(c->l, sd_arm, c);
    /* Queued right before destroy: the task still runs, the request fails "shutting down". */
    assert_int_equal(hr_dloop_post(c->l, sd_task, c), 0);
    assert_int_equal(hr_dloop_submit(c->l, &c->r[SD_HANG].req), 0);
    hr_dloop_destroy(c->l);

    assert_int_equal(g_done, SD_HANG + 1);
    for (int i = 0; i <= SD_HANG; i++) {
        assert_int_equal(c->r[i].n_done, 1);
        assert_int_equal(c->r[i].req.error, HR_ECLOSED);
        assert_string_equal(c->r[i].req.error_text, "shutting down");
        assert_int_equal(c->r[i].req.status, 0);
        hr_dloop_req_free(&c->r[i].req);
    }
    assert_int_equal(c->wrong_error, 0);
    assert_int_equal(c->resubmit_closed, SD_HANG + 1);
    assert_int_equal(c->task_ran, 1);
    assert_int_equal(c->timer_fired, 0);
    for (int i = 0; i < SD_TIMERS; i++) {
        assert_false(hr_dloop_timer_is_active(&c->timers[i]));
        hr_dloop_timer_stop(NULL, &c->timers[i]); /* owners' cleanup after destroy */
    }
    assert_false(hr_dloop_timer_is_active(&c->late));
    free(c);
    hr_dloop_destroy(NULL);
    assert_int_equal(read_int(&g_bad), 0);
}

/* ---- tests: wire-level cases against `raw` (both transports) ---- */

/* Many sequential requests, one connection; chunked, 1xx, HEAD and truncated bodies keep it. */
static void test_raw_keepalive_and_framing(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    int n = 0;
    for (int i = 0; i < 50; i++) {
        treq_t t;
        raw_treq(&t, s, "/ok");
        run_one(l, &t, n++);
        assert_int_equal(t.req.error, 0);
        assert_int_equal(t.req.status, 200);
        assert_string_equal((char *)t.req.resp_body.data, "ok");
        hr_dloop_req_free(&t.req);
    }
    assert_int_equal(atomic_load(&s->accepts), 1);

    treq_t t;
    raw_treq(&t, s, "/chunked");
    run_one(l, &t, n++);
    assert_int_equal(t.req.error, 0);
    assert_int_equal(t.req.status, 200);
    assert_int_equal(t.req.resp_body.len, 12);
    assert_string_equal((char *)t.req.resp_body.data, "hello, world");
    assert_string_equal(t.req.resp_content_type, "text/plain");
    assert_int_equal(t.req.resp_ce_count, 1);
    assert_string_equal(t.req.resp_ce[0].name, "ce-id");
    assert_string_equal(t.req.resp_ce[0].value, "c1");
    hr_dloop_req_free(&t.req);

    /* 1xx: skipped, its headers forgotten. */
    raw_treq(&t, s, "/continue");
    run_one(l, &t, n++);
    assert_int_equal(t.req.error, 0);
    assert_int_equal(t.req.status, 200);
    assert_string_equal((char *)t.req.resp_body.data, "done");
    assert_int_equal(t.req.resp_ce_count, 1);
    assert_string_equal(t.req.resp_ce[0].value, "final");
    hr_dloop_req_free(&t.req);

    /* HEAD: Content-Length announces a body that never comes. */
    raw_treq(&t, s, "/head");
    t.req.method = "HEAD";
    run_one(l, &t, n++);
    assert_int_equal(t.req.error, 0);
    assert_int_equal(t.req.status, 200);
    assert_int_equal(t.req.resp_body.len, 0);
    assert_string_equal(t.req.resp_content_type, "x/y");
    hr_dloop_req_free(&t.req);

    /* The same path with GET gets the 100 bytes. */
    raw_treq(&t, s, "/head");
    t.req.method = "GET";
    run_one(l, &t, n++);
    assert_int_equal(t.req.error, 0);
    assert_int_equal(t.req.resp_body.len, 100);
    hr_dloop_req_free(&t.req);

    /* A body over max_body_bytes: the first 64 KiB kept, the rest read and dropped. */
    raw_treq(&t, s, "/big");
    run_one(l, &t, n++);
    assert_int_equal(t.req.error, 0);
    assert_int_equal(t.req.status, 200);
    assert_true(t.req.resp_truncated);
    assert_int_equal(t.req.resp_body.len, 64 * 1024);
    assert_true(t.req.resp_body.cap <= 64 * 1024 + 1);
    for (size_t i = 0; i < t.req.resp_body.len; i++) {
        if (t.req.resp_body.data[i] != (uint8_t)('A' + i % 26)) {
            fail_msg("body byte %zu differs", i);
        }
    }
    assert_int_equal(t.req.resp_body.data[t.req.resp_body.len], '\0');
    hr_dloop_req_free(&t.req);

    raw_treq(&t, s, "/ok");
    run_one(l, &t, n++);
    assert_int_equal(t.req.status, 200);
    assert_false(t.req.resp_truncated);
    hr_dloop_req_free(&t.req);
    assert_int_equal(atomic_load(&s->accepts), 1);
    assert_int_equal(atomic_load(&s->requests), 56);
    assert_transport(l);
    hr_dloop_destroy(l);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Responses that end the connection: Connection: close, HTTP/1.0 read until close. */
static void test_raw_connection_close(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    int n = 0;
    for (int i = 0; i < 3; i++) {
        treq_t t;
        raw_treq(&t, s, "/close");
        run_one(l, &t, n++);
        assert_int_equal(t.req.error, 0);
        assert_int_equal(t.req.status, 200);
        assert_string_equal((char *)t.req.resp_body.data, "ok");
        hr_dloop_req_free(&t.req);
    }
    assert_int_equal(atomic_load(&s->accepts), 3);
    for (int i = 0; i < 2; i++) {
        treq_t t;
        raw_treq(&t, s, "/eof");
        run_one(l, &t, n++);
        assert_int_equal(t.req.error, 0);
        assert_int_equal(t.req.status, 200);
        assert_string_equal((char *)t.req.resp_body.data, "until close");
        assert_string_equal(t.req.resp_content_type, "text/plain");
        hr_dloop_req_free(&t.req);
    }
    assert_int_equal(atomic_load(&s->accepts), 5);
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.h1_connections, 0); /* none kept */
    hr_dloop_destroy(l);
    assert_int_equal(read_int(&g_bad), 0);
}

/* A response dribbled one byte per send: every capture intact. */
static void test_raw_bytewise(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    treq_t t;
    raw_treq(&t, s, "/bytewise");
    run_one(l, &t, 0);
    hr_dloop_req_t *q = &t.req;
    assert_int_equal(q->error, 0);
    assert_int_equal(q->status, 200);
    assert_string_equal((char *)q->resp_body.data, "{\"ok\":true}");
    assert_string_equal(q->resp_content_type, "application/json");
    assert_int_equal(q->resp_ce_count, 2);
    assert_string_equal(q->resp_ce[0].name, "ce-id");
    assert_string_equal(q->resp_ce[0].value, "b1");
    assert_string_equal(q->resp_ce[1].name, "ce-type");
    assert_string_equal(q->resp_ce[1].value, "com.example.bytes");
    assert_transport(l);
    hr_dloop_destroy(l);
    hr_dloop_req_free(q);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Malformed responses fail with HR_EIO; the next request still works. */
static void test_raw_malformed(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    static const char *const paths[] = {"/malformed", "/badheader"};
    int n = 0;
    for (size_t i = 0; i < 2; i++) {
        treq_t t;
        raw_treq(&t, s, paths[i]);
        run_one(l, &t, n++);
        print_message("    %s: %d %s (curl_code %d)\n", paths[i], t.req.error, t.req.error_text,
                      t.req.curl_code);
        if (g_curl_only) {
            /* libcurl reads "2x0" as an unsupported protocol (HR_EINVAL). */
            assert_true(t.req.error == HR_EIO || t.req.error == HR_EINVAL);
        } else {
            assert_int_equal(t.req.error, HR_EIO);
        }
        assert_true(t.req.curl_code != 0);
        assert_true(strlen(t.req.error_text) > 0);
        if (!g_curl_only) {
            assert_int_equal(t.req.curl_code, 8); /* CURLE_WEIRD_SERVER_REPLY */
            assert_non_null(strstr(t.req.error_text, "Malformed HTTP response at byte"));
        }
        hr_dloop_req_free(&t.req);
    }
    treq_t t;
    raw_treq(&t, s, "/ok");
    run_one(l, &t, n++);
    assert_int_equal(t.req.status, 200);
    hr_dloop_req_free(&t.req);
    hr_dloop_destroy(l);
    assert_int_equal(read_int(&g_bad), 0);
}

/* A sink that closes a reused keep-alive connection instead of answering: retried once on a
 * fresh connection, invisibly. One that closes idle connections: noticed, not reused. */
static void test_raw_reused_connection_dropped(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    treq_t a, b;
    raw_treq(&a, s, "/drop2");
    run_one(l, &a, 0);
    assert_int_equal(a.req.status, 200);
    raw_treq(&b, s, "/drop2");
    run_one(l, &b, 1);
    assert_int_equal(b.req.error, 0);
    assert_int_equal(b.req.status, 200);
    assert_string_equal((char *)b.req.resp_body.data, "ok");
    assert_int_equal(atomic_load(&s->accepts), 2);
    assert_int_equal(atomic_load(&s->requests), 3);

    /* The sink closes each connection right after its answer. */
    int n = 2;
    for (int i = 0; i < 3; i++) {
        treq_t t;
        raw_treq(&t, s, "/idleclose");
        run_one(l, &t, n++);
        assert_int_equal(t.req.error, 0);
        assert_int_equal(t.req.status, 200);
        hr_dloop_req_free(&t.req);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* The first went on the second /drop2 connection, the others each on a new one. */
    assert_int_equal(atomic_load(&s->accepts), 4);
    assert_int_equal(atomic_load(&s->requests), 6);
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.h1_connections, 0); /* the sink's closes were noticed */
    hr_dloop_destroy(l);
    hr_dloop_req_free(&a.req);
    hr_dloop_req_free(&b.req);
    assert_int_equal(read_int(&g_bad), 0);
}

/* 24 requests, max_host_connections 3: never more than 3 open, all complete. While the sink
 * holds them, 3 are on connections and 21 wait (checked by hr_dloop_validate). */
static void test_raw_host_limit(void **state)
{
    reset_globals();
    raw_t *s = *state;
    enum { N = 24, LIMIT = 3 };
    hr_dloop_t *l = loop_new(LIMIT, 0);
    treq_t *r = calloc(N, sizeof *r);
    for (int i = 0; i < N; i++) {
        raw_treq(&r[i], s, "/hang");
        r[i].req.timeout_ms = 20000;
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    assert_true(wait_ge(&s->hanging, LIMIT, 10000));
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.in_flight, N);
    assert_int_equal(st.h1_connections, g_curl_only ? 0 : LIMIT);
    assert_int_equal(read_int(&s->hanging), LIMIT);
    raw_release(s);
    assert_true(wait_ge(&g_done, N, 20000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].req.error, 0);
        assert_int_equal(r[i].req.status, 200);
    }
    print_message("    %d requests over %d connections (at most %d open)\n", N,
                  atomic_load(&s->accepts), atomic_load(&s->open_max));
    assert_true(atomic_load(&s->open_max) <= LIMIT);
    assert_true(atomic_load(&s->accepts) <= LIMIT);

    /* Again without parking, many times over: the limit holds under churn too. */
    reset_globals();
    for (int i = 0; i < N; i++) {
        hr_dloop_req_reset(&r[i].req);
        r[i].n_done = 0;
        raw_url(s, "/slow", r[i].url, sizeof r[i].url);
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    assert_true(wait_ge(&g_done, N, 20000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].req.status, 200);
    }
    assert_true(atomic_load(&s->open_max) <= LIMIT);
    st = inspect(l);
    assert_int_equal(st.in_flight, 0);
    hr_dloop_destroy(l);
    for (int i = 0; i < N; i++) {
        hr_dloop_req_free(&r[i].req);
    }
    free(r);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Timeouts: a hanging sink, and a request that waits for a free connection all along. */
static void test_raw_timeouts(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(1, 0);
    enum { HANG_MS = 1000, QUEUED_MS = 300 };
    treq_t hang, queued;
    raw_treq(&hang, s, "/hang");
    hang.req.timeout_ms = HANG_MS;
    raw_treq(&queued, s, "/ok");
    queued.req.timeout_ms = QUEUED_MS; /* expires while the only connection is busy */
    assert_int_equal(hr_dloop_submit(l, &hang.req), 0);
    assert_true(wait_ge(&s->hanging, 1, 10000));
    assert_int_equal(hr_dloop_submit(l, &queued.req), 0);
    assert_true(wait_ge(&g_done, 2, 10000));
    treq_t *both[] = {&hang, &queued};
    const uint32_t ms[] = {HANG_MS, QUEUED_MS};
    for (int i = 0; i < 2; i++) {
        hr_dloop_req_t *q = &both[i]->req;
        print_message("    %s: %s\n", i == 0 ? "on a connection" : "waiting", q->error_text);
        assert_int_equal(q->error, HR_ETIMEOUT);
        assert_int_equal(q->curl_code, 28); /* CURLE_OPERATION_TIMEDOUT */
        assert_int_equal(q->status, 0);
        /* libcurl words a timeout while waiting for a connection as a resolve failure. */
        assert_true(strlen(q->error_text) > 0);
        if (!g_curl_only) {
            assert_non_null(strstr(q->error_text, "Operation timed out after"));
        }
        assert_true(q->latency_us + 2000 >= ms[i] * 1000ull);
        assert_true(q->latency_us < 5 * 1000000ull);
    }
    if (!g_curl_only) {
        /* On time while waiting. libcurl notices a waiting transfer's deadline only when a
         * connection frees up (here when the other one times out). */
        assert_true(queued.req.latency_us < HANG_MS * 1000ull);
    }
    assert_int_equal(atomic_load(&s->requests), 1); /* the queued one never went out */
    /* The timed-out connection was closed; the next request gets a new one. */
    raw_release(s);
    treq_t after;
    raw_treq(&after, s, "/ok");
    run_one(l, &after, 2);
    assert_int_equal(after.req.status, 200);
    hr_dloop_destroy(l);
    hr_dloop_req_free(&hang.req);
    hr_dloop_req_free(&queued.req);
    hr_dloop_req_free(&after.req);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Connection refused, to 127.0.0.1 and to localhost. */
static void test_raw_refused(void **state)
{
    reset_globals();
    (void)state;
    hr_dloop_t *l = loop_new(0, 0);
    uint16_t port;
    int fd = refused_port(&port);
    char url[128];
    treq_t a, b;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", (unsigned)port);
    treq_init(&a, NULL, url);
    snprintf(url, sizeof url, "http://localhost:%u/x", (unsigned)port);
    treq_init(&b, NULL, url);
    run_one(l, &a, 0);
    run_one(l, &b, 1);
    assert_int_equal(a.req.error, -ECONNREFUSED);
    assert_int_equal(a.req.curl_code, 7); /* CURLE_COULDNT_CONNECT */
    assert_int_equal(a.req.status, 0);
    char want[64];
    snprintf(want, sizeof want, "Failed to connect to 127.0.0.1 port %u", (unsigned)port);
    assert_non_null(strstr(a.req.error_text, want));
    /* libcurl may try ::1 first for localhost; either way the connection is refused. */
    assert_int_equal(b.req.error, -ECONNREFUSED);
    assert_int_equal(b.req.curl_code, 7);
    hr_dloop_destroy(l);
    hr_dloop_req_free(&a.req);
    hr_dloop_req_free(&b.req);
    close(fd);
    assert_int_equal(read_int(&g_bad), 0);
}

/* Shutdown with requests on connections and requests waiting for one: all "shutting down". */
static void test_raw_destroy_in_flight_and_waiting(void **state)
{
    reset_globals();
    raw_t *s = *state;
    enum { N = 6, LIMIT = 2 };
    hr_dloop_t *l = loop_new(LIMIT, 0);
    treq_t r[N];
    for (int i = 0; i < N; i++) {
        raw_treq(&r[i], s, "/hang");
        r[i].req.timeout_ms = 60000;
        assert_int_equal(hr_dloop_submit(l, &r[i].req), 0);
    }
    assert_true(wait_ge(&s->hanging, LIMIT, 10000));
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.in_flight, N);
    assert_int_equal(st.timers, 0); /* request timeouts are the loop's own timers */
    hr_dloop_destroy(l);
    assert_int_equal(g_done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].n_done, 1);
        assert_int_equal(r[i].req.error, HR_ECLOSED);
        assert_string_equal(r[i].req.error_text, "shutting down");
        assert_int_equal(r[i].req.status, 0);
        hr_dloop_req_free(&r[i].req);
    }
    assert_int_equal(read_int(&g_bad), 0);
}

/* Requests that always go through libcurl, even on the h1 runs: unusual URLs and headers. */
static void test_raw_curl_fallbacks(void **state)
{
    reset_globals();
    raw_t *s = *state;
    hr_dloop_t *l = loop_new(0, 0);
    treq_t t;
    int n = 0;
    /* A Connection header is left to libcurl. */
    raw_treq(&t, s, "/close");
    assert_int_equal(hr_dloop_req_add_header(&t.req, "Connection", "close"), 0);
    run_one(l, &t, n++);
    assert_int_equal(t.req.status, 200);
    hr_dloop_req_free(&t.req);
    /* A dot segment is normalised by libcurl. */
    raw_treq(&t, s, "/x/../ok");
    run_one(l, &t, n++);
    assert_int_equal(t.req.status, 200);
    assert_string_equal((char *)t.req.resp_body.data, "ok");
    hr_dloop_req_free(&t.req);
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.h1_connections, 0);
    /* A query string and a fragment go the fast way (the fragment is not sent). */
    raw_treq(&t, s, "/ok?a=1&b=%20#frag");
    run_one(l, &t, n++);
    assert_int_equal(t.req.status, 404); /* raw matches the path with its query */
    hr_dloop_req_free(&t.req);
    assert_transport(l);
    hr_dloop_destroy(l);
    assert_int_equal(read_int(&g_bad), 0);
}

/* IPv6 literals ("Host: [::1]:port") and localhost go the fast way too. */
static void test_raw_ipv6_and_localhost(void **state)
{
    reset_globals();
    raw_t *s = *state;
    raw_t *s6 = calloc(1, sizeof *s6);
    if (!raw_start_on(s6, true)) {
        free(s6);
        skip(); /* no IPv6 loopback here */
    }
    hr_dloop_t *l = loop_new(0, 0);
    char url[128];
    treq_t a, b;
    snprintf(url, sizeof url, "http://[::1]:%u/ok", (unsigned)s6->port);
    treq_init(&a, NULL, url);
    snprintf(url, sizeof url, "http://localhost:%u/ok", (unsigned)s->port);
    treq_init(&b, NULL, url);
    run_one(l, &a, 0);
    run_one(l, &b, 1);
    assert_int_equal(a.req.error, 0);
    assert_int_equal(a.req.status, 200);
    assert_int_equal(b.req.error, 0);
    assert_int_equal(b.req.status, 200);
    assert_int_equal(atomic_load(&s6->requests), 1);
    assert_int_equal(atomic_load(&s->requests), 1);
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.h1_connections, g_curl_only ? 0 : 2);
    hr_dloop_destroy(l);
    hr_dloop_req_free(&a.req);
    hr_dloop_req_free(&b.req);
    raw_stop(s6);
    free(s6);
    assert_int_equal(read_int(&g_bad), 0);
}

/* max_connections across sinks: an idle connection of one sink is closed to make room for
 * another; a request waiting on the total limit starts when a connection of another sink
 * closes. */
static void test_raw_total_limit(void **state)
{
    reset_globals();
    raw_t *a = *state;
    raw_t *b = calloc(1, sizeof *b);
    raw_start(b);
    hr_dloop_t *l = loop_new_limits(2, 2, 0);
    enum { N = 5 };
    treq_t r[N];
    /* Two parked requests fill the total on sink a. */
    raw_treq(&r[0], a, "/hang");
    raw_treq(&r[1], a, "/hang");
    assert_int_equal(hr_dloop_submit(l, &r[0].req), 0);
    assert_int_equal(hr_dloop_submit(l, &r[1].req), 0);
    assert_true(wait_ge(&a->hanging, 2, 10000));
    /* Sink b must wait: nothing idle to close. */
    raw_treq(&r[2], b, "/ok");
    assert_int_equal(hr_dloop_submit(l, &r[2].req), 0);
    hr_dloop_stats_t st = inspect(l);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(read_int(&g_done), 0);
    raw_release(a);
    assert_true(wait_ge(&g_done, 3, 10000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].req.error, 0);
        assert_int_equal(r[i].req.status, 200);
    }
    assert_int_equal(atomic_load(&b->accepts), 1);
    /* a's connections are idle (or closed to make room for b); one more to a, then one to b:
     * each finds its own idle connection or makes room. */
    raw_treq(&r[3], a, "/ok");
    run_one(l, &r[3], 3);
    raw_treq(&r[4], b, "/ok");
    run_one(l, &r[4], 4);
    assert_int_equal(r[3].req.status, 200);
    assert_int_equal(r[4].req.status, 200);
    st = inspect(l);
    assert_true(st.h1_connections <= 2);
    assert_true(atomic_load(&a->open_max) + atomic_load(&b->open_max) <= 2 + 1);
    hr_dloop_destroy(l);
    for (int i = 0; i < N; i++) {
        hr_dloop_req_free(&r[i].req);
    }
    raw_stop(b);
    free(b);
    assert_int_equal(read_int(&g_bad), 0);
}

#define BOTH(fn, setup, teardown)                                                                  \
    {#fn "/curl", fn, setup##_curl, teardown, NULL},                                               \
    {                                                                                              \
#fn "/h1", fn, setup##_h1, teardown, NULL                                                  \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_header_validation, sink_setup, sink_teardown),
        BOTH(test_statuses_and_captures, sink_setup, sink_teardown),
        BOTH(test_request_exactly_as_sent, sink_setup, sink_teardown),
        BOTH(test_many_concurrent, sink_setup, sink_teardown),
        BOTH(test_keepalive_reuse, sink_setup, sink_teardown),
        BOTH(test_retry_reuses_request, sink_setup, sink_teardown),
        BOTH(test_timeout_with_timers_running, sink_setup, sink_teardown),
        BOTH(test_destroy_in_flight, sink_setup, sink_teardown),
        BOTH(test_raw_keepalive_and_framing, raw_setup, raw_teardown),
        BOTH(test_raw_connection_close, raw_setup, raw_teardown),
        BOTH(test_raw_bytewise, raw_setup, raw_teardown),
        BOTH(test_raw_malformed, raw_setup, raw_teardown),
        BOTH(test_raw_reused_connection_dropped, raw_setup, raw_teardown),
        BOTH(test_raw_host_limit, raw_setup, raw_teardown),
        BOTH(test_raw_timeouts, raw_setup, raw_teardown),
        BOTH(test_raw_refused, raw_setup, raw_teardown),
        BOTH(test_raw_destroy_in_flight_and_waiting, raw_setup, raw_teardown),
        BOTH(test_raw_curl_fallbacks, raw_setup, raw_teardown),
        BOTH(test_raw_ipv6_and_localhost, raw_setup, raw_teardown),
        BOTH(test_raw_total_limit, raw_setup, raw_teardown),
        cmocka_unit_test(test_timers_model),
        cmocka_unit_test(test_timers_realtime),
        cmocka_unit_test(test_post_from_threads),
        cmocka_unit_test(test_post_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
