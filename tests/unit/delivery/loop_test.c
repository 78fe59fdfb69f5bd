/* SPDX-License-Identifier: MIT */
/*
 * Delivery loop: real HTTP transfers against a libmicrohttpd sink on 127.0.0.1 (thread per
 * connection, behaviour chosen by path), timers, cross-thread posting and shutdown.
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
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "delivery/loop.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/err.h"

/* ---- waiting ---- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_bad; /* mistakes seen on other threads; under g_mu */

static void note_bad(const char *what)
{
    pthread_mutex_lock(&g_mu);
    g_bad++;
    pthread_mutex_unlock(&g_mu);
    fprintf(stderr, "loop_test: %s\n", what);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            note_bad(#cond);                                                                       \
        }                                                                                          \
    } while (0)

static void deadline_in(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until *v >= target (read under g_mu). Returns true when reached in time. */
static bool wait_ge(const int *v, int target, int timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&g_mu);
    int rc = 0;
    while (*v < target && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    bool ok = *v >= target;
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static void bump(int *v)
{
    pthread_mutex_lock(&g_mu);
    (*v)++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static int read_int(const int *v)
{
    pthread_mutex_lock(&g_mu);
    int x = *v;
    pthread_mutex_unlock(&g_mu);
    return x;
}

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

static hr_dloop_t *loop_new(size_t max_host_connections, size_t max_posted)
{
    hr_dloop_opts_t o;
    hr_dloop_opts_default(&o);
    o.user_agent = "herald/test";
    o.proxy = ""; /* hermetic: ignore any *_proxy in the environment */
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

/* Runs fn(arg) on the loop thread and waits for it to finish. */
typedef struct on_loop_call {
    void (*fn)(void *arg);
    void *arg;
    int finished;
} on_loop_call_t;

static void on_loop_trampoline(void *arg)
{
    on_loop_call_t *c = arg;
    c->fn(c->arg);
    bump(&c->finished);
}

static void run_on_loop(hr_dloop_t *l, void (*fn)(void *arg), void *arg)
{
    on_loop_call_t c = {fn, arg, 0};
    assert_int_equal(hr_dloop_post(l, on_loop_trampoline, &c), 0);
    assert_true(wait_ge(&c.finished, 1, 10000));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_header_validation, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_statuses_and_captures, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_request_exactly_as_sent, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_retry_reuses_request, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_timeout_with_timers_running, sink_setup,
                                        sink_teardown),
        cmocka_unit_test(test_timers_model),
        cmocka_unit_test(test_timers_realtime),
        cmocka_unit_test(test_post_from_threads),
        cmocka_unit_test(test_post_backpressure),
        cmocka_unit_test_setup_teardown(test_destroy_in_flight, sink_setup, sink_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
