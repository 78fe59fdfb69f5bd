/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher against a real bus (log + SQLite in a temp dir): consumers receive exactly the
 * matching events in seq order, a consumer whose ring fills up detaches and catches up without
 * losing or repeating anything, cursors follow settled entries, and a replay stops at its end.
 * The test thread plays the delivery loop: it settles entries and pops them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker/bus.h"
#include "broker/dispatch.h"
#include "broker/trigger.h"
#include "ce/event.h"
#include "util/clock.h"

typedef struct pub_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} pub_wait_t;

static void pub_done(hr_bus_pub_t *pub)
{
    pub_wait_t *w = pub->user;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Publishes one event of `type` with id `id` and waits until it is durable. */
static void publish(hr_bus_t *bus, const char *type, int id)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"specversion\":\"1.0\",\"id\":\"%d\",\"source\":\"/t\",\"type\":\"%s\"}", id, type);
    hr_ce_event_t *ev;
    assert_int_equal(hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, NULL), 0);
    hr_buf_t enc = HR_BUF_INIT;
    assert_int_equal(hr_ce_encode(ev, &enc), 0);
    hr_iov_t rec = {enc.data, enc.len}, scratch;
    hr_dedup_key_t key = hr_dedup_key(ev->source, ev->id);
    uint64_t seq;
    uint8_t dup;
    pub_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    hr_bus_pub_t pub = {0};
    pub.recs = &rec;
    pub.keys = &key;
    pub.n = 1;
    pub.seqs = &seq;
    pub.dup = &dup;
    pub.scratch = &scratch;
    pub.done = pub_done;
    pub.user = &w;
    assert_int_equal(hr_bus_publish(bus, &pub), 0);
    pthread_mutex_lock(&w.mu);
    while (!w.done) {
        pthread_cond_wait(&w.cv, &w.mu);
    }
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(pub.status, 0);
    hr_buf_free(&enc);
    hr_ce_event_free(ev);
}

static void kick(void *arg, hr_consumer_t *c)
{
    (void)c;
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

static hr_trigger_spec_t *spec(const char *doc)
{
    char err[256], path[128];
    hr_trigger_spec_t *s;
    assert_int_equal(
        hr_trigger_parse("t", doc, strlen(doc), &s, err, sizeof err, path, sizeof path), 0);
    return s;
}

/* Settles every queued entry (checking seq order and type), pops them, and collects seqs. */
static size_t drain(hr_consumer_t *c, uint64_t *seen, size_t n_seen, const char *type)
{
    pthread_mutex_lock(&c->mu);
    uint32_t n = c->count;
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
        hr_ce_event_t *ev;
        assert_int_equal(hr_ce_decode(e->rec, e->rec_len, &ev), 0);
        assert_string_equal(ev->type, type);
        hr_ce_event_free(ev);
        if (n_seen) {
            assert_true(e->seq > seen[n_seen - 1]);
        }
        seen[n_seen++] = e->seq;
        e->state = HR_DE_DONE;
    }
    hr_consumer_pop_settled(c);
    return n_seen;
}

static char tmpdir[64];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hr-dispatch-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char path[128];
    snprintf(path, sizeof path, "%s/herald.db", tmpdir);
    hr_meta_t *meta;
    assert_int_equal(hr_meta_open(path, &meta), 0);
    hr_buses_t *buses;
    assert_int_equal(hr_buses_open(tmpdir, meta, &buses), 0);
    void **ctx = calloc(2, sizeof *ctx);
    ctx[0] = meta;
    ctx[1] = buses;
    *state = ctx;
    return 0;
}

static int teardown(void **state)
{
    void **ctx = *state;
    hr_buses_close(ctx[1]);
    hr_meta_close(ctx[0]);
    free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_detach_and_catch_up(void **state)
{
    void **ctx = *state;
    hr_bus_t *bus = hr_buses_get(ctx[1], "default");
    int kicks = 0;
    hr_dispatch_t *d;
    assert_int_equal(hr_dispatch_create(bus, kick, &kicks, &d), 0);
    /* ring of 128 entries (max_in_flight 1): 400 matching events must detach it */
    hr_trigger_spec_t *sa = spec("{\"sink\":\"http://h/\",\"max_in_flight\":1,"
                                 "\"filters\":[{\"exact\":{\"type\":\"a\"}}]}");
    hr_trigger_spec_t *sb =
        spec("{\"sink\":\"http://h/\",\"filters\":[{\"exact\":{\"type\":\"b\"}}]}");
    hr_consumer_t *ca = hr_consumer_create(HR_CONSUMER_LIVE, NULL, sa, 1, UINT64_MAX);
    hr_consumer_t *cb = hr_consumer_create(HR_CONSUMER_LIVE, NULL, sb, 1, UINT64_MAX);
    hr_dispatch_add(d, ca);
    hr_dispatch_add(d, cb);
    for (int i = 1; i <= 600; i++) {
        publish(bus, i % 3 == 0 ? "b" : "a", i);
    }
    uint64_t *seen_a = calloc(1000, sizeof *seen_a), *seen_b = calloc(1000, sizeof *seen_b);
    size_t na = 0, nb = 0;
    uint64_t deadline = hr_mono_ns() + 30000000000ull;
    /* b drains eagerly; a only after b is done, so a must have detached meanwhile */
    while (hr_consumer_cursor(cb) < 600) {
        assert_true(hr_mono_ns() < deadline);
        nb = drain(cb, seen_b, nb, "b");
        usleep(1000);
    }
    nb = drain(cb, seen_b, nb, "b");
    assert_int_equal(nb, 200);
    assert_true(hr_consumer_cursor(ca) < 600); /* a is held back by its full ring */
    while (hr_consumer_cursor(ca) < 600) {
        assert_true(hr_mono_ns() < deadline);
        na = drain(ca, seen_a, na, "a");
        usleep(1000);
    }
    assert_int_equal(na, 400);
    for (size_t i = 0; i < na; i++) {
        assert_true(seen_a[i] % 3 != 0);
    }
    /* after catching up, a is attached again and gets new events */
    publish(bus, "a", 601);
    while (hr_consumer_cursor(ca) < 601) {
        assert_true(hr_mono_ns() < deadline);
        na = drain(ca, seen_a, na, "a");
        usleep(1000);
    }
    assert_int_equal(na, 401);
    assert_true(__atomic_load_n(&kicks, __ATOMIC_SEQ_CST) > 0);
    hr_dispatch_destroy(d);
    hr_consumer_unref(ca);
    hr_consumer_unref(cb);
    hr_trigger_spec_unref(sa);
    hr_trigger_spec_unref(sb);
    free(seen_a);
    free(seen_b);
    hr_bus_release(bus);
}

static void test_cursor_and_replay_range(void **state)
{
    void **ctx = *state;
    hr_bus_t *bus = hr_buses_get(ctx[1], "default");
    int kicks = 0;
    hr_dispatch_t *d;
    assert_int_equal(hr_dispatch_create(bus, kick, &kicks, &d), 0);
    for (int i = 1; i <= 20; i++) {
        publish(bus, "a", i);
    }
    hr_trigger_spec_t *s = spec("{\"sink\":\"http://h/\"}");
    hr_consumer_t *r = hr_consumer_create(HR_CONSUMER_REPLAY, NULL, s, 5, 9);
    hr_dispatch_add(d, r);
    uint64_t deadline = hr_mono_ns() + 10000000000ull;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int full = r->count == 5;
        pthread_mutex_unlock(&r->mu);
        if (full) {
            break;
        }
        assert_true(hr_mono_ns() < deadline);
        usleep(1000);
    }
    /* the cursor stays before the oldest unsettled entry */
    assert_int_equal(hr_consumer_cursor(r), 4);
    r->ring[(r->head + 1) % r->cap]->state = HR_DE_DONE; /* seq 6 settled, 5 not */
    hr_consumer_pop_settled(r);
    assert_int_equal(hr_consumer_cursor(r), 4);
    r->ring[r->head]->state = HR_DE_DONE;
    hr_consumer_pop_settled(r);
    assert_int_equal(hr_consumer_cursor(r), 6);
    for (uint32_t i = 0; i < 3; i++) {
        r->ring[(r->head + i) % r->cap]->state = HR_DE_DONE;
    }
    hr_consumer_pop_settled(r);
    assert_true(hr_consumer_finished(r));
    assert_int_equal(hr_consumer_cursor(r), 9);
    hr_dispatch_destroy(d);
    hr_consumer_unref(r);
    hr_trigger_spec_unref(s);
    hr_bus_release(bus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detach_and_catch_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_and_replay_range, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
