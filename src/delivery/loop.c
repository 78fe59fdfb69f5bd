/* SPDX-License-Identifier: MIT */
/*
 * The delivery loop's thread: task queue, timer heap, the event loop and shutdown. Requests
 * themselves live in loop_http.c (libcurl easy handles, capture, errors) and loop_h1.c (the
 * loop's own HTTP/1.1 client for plain http:// to IP literals).
 *
 * One iteration of the loop thread:
 *   1. Take the whole task queue under the mutex and run it, FIFO (posted tasks and requests
 *      submitted from other threads, which are started here).
 *   2. Fire the timers that are due. Timers started during this step (even already due ones)
 *      wait for the next iteration, so a callback that rearms itself cannot starve the loop.
 *   3. If libcurl's own timer is due, curl_multi_socket_action(CURL_SOCKET_TIMEOUT).
 *   4. Write the pipelined requests started since the last flush (loop_h1.c, hr__h1_flush):
 *      everything steps 1-3 and the previous batch's done() callbacks started, one sendmsg
 *      per connection.
 *   5. epoll_wait() until a socket is ready, libcurl's timer, the nearest timer (rounded up to
 *      whole ms) or the wake-up eventfd; hand every ready libcurl socket to
 *      curl_multi_socket_action() and every ready connection of our own to loop_h1.c (which
 *      completes its requests itself), complete every finished libcurl transfer (done()
 *      callbacks), then free the connections loop_h1.c closed during the batch.
 * libcurl's socket API (not curl_multi_perform + curl_multi_poll) keeps an iteration's cost
 * proportional to the sockets that are ready, not to the transfers in flight: with 64 or more
 * requests in flight the old loop walked every one of them on every wake-up.
 *
 * Waking: a poster writes the eventfd only when its task made the queue non-empty. The loop
 * empties the queue under the mutex, so any task queued after that finds it empty again and
 * wakes the loop; a wakeup is never lost (the eventfd's counter keeps it pending).
 */
#include "delivery/loop_int.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#ifndef HR_VERSION
#define HR_VERSION "0.1.0"
#endif

/* Which loop, if any, the current thread runs. */
static _Thread_local const hr_dloop_t *tls_loop;

/* Longest single epoll_wait() when no timer is due sooner; wakeups cut it short. */
#define POLL_MAX_MS 10000

void hr_dloop_opts_default(hr_dloop_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_connections = 512;
    o->max_host_connections = 64;
    o->max_body_bytes = 64 * 1024;
    o->max_posted = 65536;
    o->max_idle_handles = 256;
}

bool hr_dloop_on_loop_thread(const hr_dloop_t *l)
{
    return l != NULL && tls_loop == l;
}

/* ---- timer heap ---- */

static bool timer_less(const hr_dloop_timer_t *a, const hr_dloop_timer_t *b)
{
    if (a->deadline_ns != b->deadline_ns) {
        return a->deadline_ns < b->deadline_ns;
    }
    return a->seq < b->seq;
}

static void heap_set(hr_dloop_t *l, size_t i, hr_dloop_timer_t *t)
{
    l->heap[i] = t;
    t->heap_pos = i + 1;
}

static void heap_up(hr_dloop_t *l, size_t i)
{
    hr_dloop_timer_t *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, l->heap[parent])) {
            break;
        }
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void heap_down(hr_dloop_t *l, size_t i)
{
    hr_dloop_timer_t *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n_heap) {
            break;
        }
        if (c + 1 < l->n_heap && timer_less(l->heap[c + 1], l->heap[c])) {
            c++;
        }
        if (!timer_less(l->heap[c], t)) {
            break;
        }
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static void heap_remove(hr_dloop_t *l, hr_dloop_timer_t *t)
{
    size_t i = t->heap_pos - 1;
    HR_ASSERT(i < l->n_heap && l->heap[i] == t);
    t->heap_pos = 0;
    hr_dloop_timer_t *last = l->heap[--l->n_heap];
    if (i == l->n_heap) {
        return;
    }
    heap_set(l, i, last);
    if (i > 0 && timer_less(last, l->heap[(i - 1) / 2])) {
        heap_up(l, i);
    } else {
        heap_down(l, i);
    }
}

void hr_dloop_timer_start(hr_dloop_t *l, hr_dloop_timer_t *t, uint64_t deadline_ns,
                          hr_dloop_timer_fn cb, void *arg)
{
    HR_ASSERT(hr_dloop_on_loop_thread(l) && cb != NULL);
    if (t->heap_pos != 0) {
        heap_remove(l, t);
    }
    t->deadline_ns = deadline_ns;
    t->seq = l->timer_seq++;
    t->cb = cb;
    t->arg = arg;
    if (l->n_heap == l->heap_cap) {
        l->heap_cap = l->heap_cap ? l->heap_cap * 2 : 64;
        l->heap = hr_xrealloc(l->heap, l->heap_cap * sizeof *l->heap);
    }
    l->heap[l->n_heap++] = t;
    heap_up(l, l->n_heap - 1);
}

void hr_dloop_timer_stop(hr_dloop_t *l, hr_dloop_timer_t *t)
{
    if (t->heap_pos == 0) {
        return; /* before the thread check: owners may clean up after hr_dloop_destroy() */
    }
    HR_ASSERT(hr_dloop_on_loop_thread(l));
    heap_remove(l, t);
}

/* Fires the timers due at `now_ns` that were started before this call. */
static void run_timers(hr_dloop_t *l, uint64_t now_ns)
{
    uint64_t limit_seq = l->timer_seq;
    while (l->n_heap > 0) {
        hr_dloop_timer_t *t = l->heap[0];
        if (t->deadline_ns > now_ns || t->seq >= limit_seq) {
            break;
        }
        heap_remove(l, t);
        t->cb(t, t->arg);
    }
}

/* Milliseconds until the nearest timer or libcurl's own, rounded up, capped at POLL_MAX_MS. */
static int poll_timeout_ms(const hr_dloop_t *l, uint64_t now_ns)
{
    uint64_t deadline = l->curl_deadline_ns;
    if (l->n_heap > 0 && l->heap[0]->deadline_ns < deadline) {
        deadline = l->heap[0]->deadline_ns;
    }
    if (deadline == UINT64_MAX) {
        return POLL_MAX_MS;
    }
    if (deadline <= now_ns) {
        return 0;
    }
    uint64_t ms = (deadline - now_ns + 999999) / 1000000;
    return ms > POLL_MAX_MS ? POLL_MAX_MS : (int)ms;
}

/* ---- task queue ---- */

/* Wakes the loop thread. The eventfd's counter keeps the wakeup pending until the loop reads
 * it; a write can only fail when the counter would overflow, which is a pending wakeup too. */
static void wake(hr_dloop_t *l)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(l->wake_fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
}

/* Appends `task`; wakes the loop when the queue was empty. Returns 0 or HR_ECLOSED. */
static int enqueue(hr_dloop_t *l, hr_dloop_task_t *task)
{
    task->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->q_closed) {
        pthread_mutex_unlock(&l->mu);
        return HR_ECLOSED;
    }
    bool was_empty = l->q_head == NULL;
    if (was_empty) {
        l->q_head = task;
    } else {
        l->q_tail->next = task;
    }
    l->q_tail = task;
    pthread_mutex_unlock(&l->mu);
    if (was_empty) {
        wake(l);
    }
    return 0;
}

int hr_dloop_post_task(hr_dloop_t *l, hr_dloop_task_t *task)
{
    task->owned = false;
    return enqueue(l, task);
}

int hr_dloop_post(hr_dloop_t *l, void (*fn)(void *arg), void *arg)
{
    /* Reserve a slot first so that concurrent posters cannot overshoot max_posted. */
    size_t n = atomic_fetch_add(&l->n_posted, 1);
    if (n >= l->max_posted) {
        atomic_fetch_sub(&l->n_posted, 1);
        return HR_EBUSY;
    }
    hr_dloop_task_t *task = malloc(sizeof *task);
    if (task == NULL) {
        atomic_fetch_sub(&l->n_posted, 1);
        return HR_ENOMEM;
    }
    task->fn = fn;
    task->arg = arg;
    task->owned = true;
    int rc = enqueue(l, task);
    if (rc != 0) {
        free(task);
        atomic_fetch_sub(&l->n_posted, 1);
    }
    return rc;
}

/* Takes the whole queue and runs it in order. Returns the number of tasks run. Sets
 * *stopping when destroy has asked the loop to stop (tasks taken are still run). */
static size_t run_tasks(hr_dloop_t *l, bool *stopping)
{
    pthread_mutex_lock(&l->mu);
    hr_dloop_task_t *task = l->q_head;
    l->q_head = l->q_tail = NULL;
    if (stopping != NULL) {
        *stopping = l->q_stopping;
    }
    pthread_mutex_unlock(&l->mu);
    size_t n = 0;
    while (task != NULL) {
        hr_dloop_task_t *next = task->next;
        void (*fn)(void *) = task->fn;
        void *arg = task->arg;
        if (task->owned) {
            free(task);
            atomic_fetch_sub(&l->n_posted, 1);
        }
        /* The task may be reposted or freed by fn: nothing touches it after this point. */
        fn(arg);
        task = next;
        n++;
    }
    return n;
}

/* ---- the multi loop ---- */

/* Completes every transfer libcurl reports as done. */
static void reap_transfers(hr_dloop_t *l)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        hr_dloop_req_t *req = (hr_dloop_req_t *)(void *)priv;
        HR_ASSERT(req != NULL && req->priv.state == HR__DLOOP_REQ_ACTIVE);
        /* msg is invalid once the handle leaves the multi handle: copy the code first. */
        CURLcode rc = msg->data.result;
        hr__dloop_req_finish(l, req, rc);
    }
}

/* libcurl's CURLMOPT_SOCKETFUNCTION: mirror what it wants to wait for into the epoll set. The
 * socket's fd is the epoll key; curl_multi_assign() marks sockets already in the set. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    hr_dloop_t *l = userp;
    if (what == CURL_POLL_REMOVE) {
        /* libcurl calls this before closing the socket; EBADF/ENOENT are harmless. */
        epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(l->multi, s, NULL);
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    int op = socketp != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(l->epoll_fd, op, s, &ev) != 0) {
        /* A reused fd number may already (or no longer) be in the set: try the other op. */
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(l->epoll_fd, op, s, &ev) != 0) {
            return -1; /* libcurl fails the transfer */
        }
    }
    if (socketp == NULL) {
        curl_multi_assign(l->multi, s, l);
    }
    return 0;
}

/* libcurl's CURLMOPT_TIMERFUNCTION: remember when libcurl wants CURL_SOCKET_TIMEOUT. It must
 * not call back into libcurl from here; the loop acts on the deadline. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    hr_dloop_t *l = userp;
    l->curl_deadline_ns =
        timeout_ms < 0 ? UINT64_MAX : hr_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    return 0;
}

#define MAX_EVENTS 128

static void run_loop(hr_dloop_t *l)
{
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        bool stopping = false;
        run_tasks(l, &stopping);
        if (stopping) {
            return;
        }
        run_timers(l, hr_mono_ns());
        int running = 0;
        if (l->curl_deadline_ns <= hr_mono_ns()) {
            l->curl_deadline_ns = UINT64_MAX;
            curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
            reap_transfers(l);
        }
        /* Pipelined requests started above or during the last batch go out now, together:
         * one sendmsg per connection instead of one per request. */
        hr__h1_flush(l);
        int timeout_ms = poll_timeout_ms(l, hr_mono_ns());
        int n = epoll_wait(l->epoll_fd, evs, MAX_EVENTS, timeout_ms);
        if (n < 0 && errno != EINTR) {
            /* Cannot happen with a valid epoll fd; never spin on the CPU if it does. */
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 & HR__DLOOP_H1_TAG) {
                hr__h1_on_event(l, evs[i].data.u64, evs[i].events);
                continue;
            }
            int fd = evs[i].data.fd;
            if (fd == l->wake_fd) {
                uint64_t v;
                (void)!read(l->wake_fd, &v, sizeof v);
                continue;
            }
            uint32_t e = evs[i].events;
            int mask = ((e & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                       ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                       ((e & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(l->multi, fd, mask, &running);
        }
        if (n > 0) {
            reap_transfers(l);
        }
        hr__h1_reap(l);
    }
}

/* Runs the shutdown described in loop.h. */
static void shut_down(hr_dloop_t *l)
{
    l->shutting_down = true;
    for (;;) {
        size_t n = run_tasks(l, NULL);
        while (l->active != NULL) {
            hr__dloop_req_fail(l, l->active, HR_ECLOSED, "shutting down");
            n++;
        }
        if (n > 0) {
            continue;
        }
        /* Close the queue atomically with finding it empty, so nothing is left behind. */
        pthread_mutex_lock(&l->mu);
        bool empty = l->q_head == NULL;
        if (empty) {
            l->q_closed = true;
        }
        pthread_mutex_unlock(&l->mu);
        if (empty) {
            break;
        }
    }
    /* Timers are cancelled without running their callbacks. */
    for (size_t i = 0; i < l->n_heap; i++) {
        l->heap[i]->heap_pos = 0;
    }
    l->n_heap = 0;
    hr__h1_free(l); /* idle connections, pools, buffers */
    hr__dloop_pool_free(l);
}

static void *loop_main(void *arg)
{
    hr_dloop_t *l = arg;
    pthread_setname_np(pthread_self(), "hr-dloop"); /* for top -H and profiles */
    tls_loop = l;
    run_loop(l);
    shut_down(l);
    tls_loop = NULL;
    return NULL;
}

/* ---- create / destroy ---- */

static char *dup_opt(const char *s)
{
    return s != NULL ? hr_xstrdup(s) : NULL;
}

static void free_loop(hr_dloop_t *l)
{
    hr__h1_free(l);
    if (l->multi != NULL) {
        curl_multi_cleanup(l->multi);
    }
    if (l->epoll_fd >= 0) {
        close(l->epoll_fd);
    }
    if (l->wake_fd >= 0) {
        close(l->wake_fd);
    }
    pthread_mutex_destroy(&l->mu);
    free(l->heap);
    free(l->pool);
    free(l->ca_file);
    free(l->user_agent);
    free(l->proxy);
    free(l);
    curl_global_cleanup();
}

/* True when an environment variable would give a plain-HTTP request a proxy in libcurl: such
 * requests then all go through libcurl (which also honours no_proxy). Read once, at create. */
static bool env_proxy_set(void)
{
    static const char *const vars[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0') {
            return true;
        }
    }
    return false;
}

int hr_dloop_create(const hr_dloop_opts_t *opts, hr_dloop_t **out)
{
    hr_dloop_opts_t o;
    hr_dloop_opts_default(&o);
    if (opts != NULL) {
        o.max_connections = opts->max_connections ? opts->max_connections : o.max_connections;
        o.max_host_connections =
            opts->max_host_connections ? opts->max_host_connections : o.max_host_connections;
        o.max_body_bytes = opts->max_body_bytes ? opts->max_body_bytes : o.max_body_bytes;
        o.max_posted = opts->max_posted ? opts->max_posted : o.max_posted;
        o.max_idle_handles = opts->max_idle_handles ? opts->max_idle_handles : o.max_idle_handles;
        o.ca_file = opts->ca_file;
        o.user_agent = opts->user_agent;
        o.proxy = opts->proxy;
        o.curl_only = opts->curl_only;
    }
    *out = NULL;
    /* Thread-safe in libcurl >= 7.84 and reference-counted; paired in free_loop(). */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return HR_ENOMEM;
    }
    hr_dloop_t *l = hr_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    atomic_init(&l->n_posted, 0);
    l->max_body_bytes = o.max_body_bytes;
    l->max_posted = o.max_posted;
    l->max_idle_handles = o.max_idle_handles;
    l->ca_file = dup_opt(o.ca_file);
    l->user_agent = o.user_agent ? hr_xstrdup(o.user_agent) : hr_xstrdup("herald/" HR_VERSION);
    l->proxy = dup_opt(o.proxy);
    l->curl_only = o.curl_only;
    l->env_proxy = o.proxy == NULL && env_proxy_set();
    l->h1.max_conns = o.max_connections;
    l->h1.max_host_conns = o.max_host_connections;
    l->pool = hr_xcalloc(l->max_idle_handles, sizeof *l->pool);
    l->curl_deadline_ns = UINT64_MAX;
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    int rc = HR_ENOMEM;
    if (l->epoll_fd < 0 || l->wake_fd < 0) {
        rc = -errno;
        goto err;
    }
    struct epoll_event wev = {.events = EPOLLIN, .data.fd = l->wake_fd};
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &wev) != 0) {
        rc = -errno;
        goto err;
    }
    l->multi = curl_multi_init();
    if (l->multi == NULL) {
        goto err;
    }
    long max_total = o.max_connections > LONG_MAX ? LONG_MAX : (long)o.max_connections;
    long max_host = o.max_host_connections > LONG_MAX ? LONG_MAX : (long)o.max_host_connections;
    /* HTTP/1.1 only: one request per connection at a time, no multiplexing. The connection
     * cache holds as many idle connections as may be open, so keep-alive survives bursts. */
    if (curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, max_total) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb) != CURLM_OK ||
        curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l) != CURLM_OK) {
        rc = HR_EINVAL;
        goto err;
    }

    /* The loop thread takes no signals: they belong to the process's main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&l->thread, NULL, loop_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        rc = -prc;
        goto err;
    }
    *out = l;
    return 0;

err:
    free_loop(l);
    return rc;
}

void hr_dloop_destroy(hr_dloop_t *l)
{
    if (l == NULL) {
        return;
    }
    HR_ASSERT(!hr_dloop_on_loop_thread(l));
    pthread_mutex_lock(&l->mu);
    l->q_stopping = true;
    pthread_mutex_unlock(&l->mu);
    wake(l);
    pthread_join(l->thread, NULL);
    HR_ASSERT(l->active == NULL && l->n_heap == 0);
    free_loop(l);
}

/* ---- inspection ---- */

void hr_dloop_stats(const hr_dloop_t *l, hr_dloop_stats_t *out)
{
    HR_ASSERT(hr_dloop_on_loop_thread(l));
    out->in_flight = l->n_active;
    out->timers = l->n_heap - l->h1.n_timers;
    out->idle_handles = l->n_pool;
    out->h1_connections = l->h1.n_open;
    out->h1_idle = l->h1.n_idle;
}

void hr_dloop_validate(const hr_dloop_t *l)
{
    HR_ASSERT(hr_dloop_on_loop_thread(l));
    for (size_t i = 0; i < l->n_heap; i++) {
        const hr_dloop_timer_t *t = l->heap[i];
        HR_ASSERT(t->heap_pos == i + 1);
        HR_ASSERT(t->seq < l->timer_seq);
        if (i > 0) {
            HR_ASSERT(!timer_less(t, l->heap[(i - 1) / 2]));
        }
    }
    size_t n = 0;
    const hr_dloop_req_t *prev = NULL;
    for (const hr_dloop_req_t *r = l->active; r != NULL; r = r->priv.next) {
        HR_ASSERT(r->priv.state == HR__DLOOP_REQ_ACTIVE && r->priv.loop == l);
        HR_ASSERT(r->priv.prev == prev && (r->priv.easy != NULL) != r->priv.h1);
        prev = r;
        n++;
    }
    HR_ASSERT(n == l->n_active);
    HR_ASSERT(l->n_pool <= l->max_idle_handles);
    hr__h1_validate(l);
}
