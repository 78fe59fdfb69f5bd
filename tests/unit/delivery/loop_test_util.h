/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the delivery loop's tests (included by each *_test.c after <cmocka.h>; not
 * a test itself): counters that other threads bump under g_mu while the test thread waits on
 * them with a deadline, mistakes seen on other threads (g_bad), and running a function on the
 * loop thread. Define TEST_NAME before including it to prefix note_bad()'s messages.
 */
#ifndef HR_TESTS_DELIVERY_LOOP_TEST_UTIL_H
#define HR_TESTS_DELIVERY_LOOP_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "delivery/loop.h"

#ifndef TEST_NAME
#define TEST_NAME "delivery test"
#endif

/* The longest any helper here waits for the loop thread. */
#define LOOP_TEST_WAIT_MS 15000

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_bad; /* mistakes seen on other threads; under g_mu */

static inline void note_bad(const char *what)
{
    pthread_mutex_lock(&g_mu);
    g_bad++;
    pthread_mutex_unlock(&g_mu);
    fprintf(stderr, TEST_NAME ": %s\n", what);
}

static inline void deadline_in(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until *v >= target (eq: == target), read under g_mu. True when reached in time. */
static inline bool wait_for(const int *v, int target, bool eq, int timeout_ms)
{
    struct timespec ts;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&g_mu);
    int rc = 0;
    while ((eq ? *v != target : *v < target) && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&g_cv, &g_mu, &ts);
    }
    bool ok = eq ? *v == target : *v >= target;
    pthread_mutex_unlock(&g_mu);
    return ok;
}

static inline bool wait_ge(const int *v, int target, int timeout_ms)
{
    return wait_for(v, target, false, timeout_ms);
}

static inline int read_int(const int *v)
{
    pthread_mutex_lock(&g_mu);
    int x = *v;
    pthread_mutex_unlock(&g_mu);
    return x;
}

static inline void bump(int *v)
{
    pthread_mutex_lock(&g_mu);
    (*v)++;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* Runs fn(arg) on the loop thread and waits for it to finish. */
typedef struct on_loop_call {
    void (*fn)(void *arg);
    void *arg;
    int finished;
} on_loop_call_t;

static inline void on_loop_trampoline(void *arg)
{
    on_loop_call_t *c = arg;
    c->fn(c->arg);
    bump(&c->finished);
}

static inline void run_on_loop(hr_dloop_t *l, void (*fn)(void *arg), void *arg)
{
    on_loop_call_t c = {fn, arg, 0};
    assert_int_equal(hr_dloop_post(l, on_loop_trampoline, &c), 0);
    assert_true(wait_ge(&c.finished, 1, LOOP_TEST_WAIT_MS));
}

/* Checks the loop's invariants (hr_dloop_validate) and reads its stats, on the loop thread. */
typedef struct inspect {
    hr_dloop_t *l;
    hr_dloop_stats_t st;
} inspect_t;

static inline void inspect_on_loop(void *arg)
{
    inspect_t *in = arg;
    hr_dloop_validate(in->l);
    hr_dloop_stats(in->l, &in->st);
}

static inline hr_dloop_stats_t inspect(hr_dloop_t *l)
{
    inspect_t in = {l, {0}};
    run_on_loop(l, inspect_on_loop, &in);
    return in.st;
}

#endif
