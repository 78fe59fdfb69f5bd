/* SPDX-License-Identifier: MIT */
/*
 * Bus log: appends and reads across segment rolls, read limits, seq and time index lookups
 * against a reference model, the admit hook, fsync policies, concurrent submitters, waiting,
 * and close draining the queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_test_util.h"
#include "util/fileio.h"

static hr_log_opts_t small_opts(uint64_t seg_bytes)
{
    hr_log_opts_t o;
    hr_log_opts_default(&o);
    o.segment_bytes = seg_bytes;
    return o;
}

static void test_defaults(void **state)
{
    hr_log_opts_t o;
    hr_log_opts_default(&o);
    assert_int_equal(o.fsync, HR_FSYNC_ALWAYS);
    assert_int_equal(o.segment_bytes, 128u << 20);
    assert_int_equal(o.max_batch_records, 4096);
    assert_int_equal(o.fsync_interval_ms, 100);
}

static void test_round_trip_rolls(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(2048);
    hr_log_t *log = tu_open(dir, &o);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 0);
    assert_int_equal(st.count, 0);
    tu_fill(log, 1, 300, 0);
    hr_log_stats(log, &st);
    assert_int_equal(st.last_seq, 300);
    assert_int_equal(st.count, 300);
    assert_true(st.segments > 10);
    assert_int_equal(hr_log_validate(log), 0);
    tu_check(log, 1, 300, 0);
    tu_check(log, 150, 300, 0);
    hr_log_close(log);
    /* Reopen: the same records, and appends continue without a gap. */
    log = tu_open(dir, &o);
    assert_int_equal(tu_last(log), 300);
    tu_check(log, 1, 300, 0);
    tu_fill(log, 301, 320, 0);
    tu_check(log, 1, 320, 0);
    assert_int_equal(hr_log_validate(log), 0);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_read_positions_and_limits(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(4096);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 200, 100);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    /* from 0 and 1: the first record */
    assert_int_equal(hr_log_read(log, 0, 1, 1 << 20, &b), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.ents[0].seq, 1);
    assert_int_equal(hr_log_read(log, 1, 5, 1 << 20, &b), 0);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.ents[4].seq, 5);
    /* middle, crossing segment boundaries */
    assert_int_equal(hr_log_read(log, 97, 60, 1 << 20, &b), 0);
    assert_int_equal(b.n, 60);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.ents[i].seq, 97 + i);
    }
    /* last, past the end */
    assert_int_equal(hr_log_read(log, 200, 10, 1 << 20, &b), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.ents[0].seq, 200);
    assert_int_equal(hr_log_read(log, 201, 10, 1 << 20, &b), 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(hr_log_read(log, 1000000, 10, 1 << 20, &b), 0);
    assert_int_equal(b.n, 0);
    /* max_bytes: payloads are 100 bytes; 350 bytes allow 3 records */
    assert_int_equal(hr_log_read(log, 10, 100, 350, &b), 0);
    assert_int_equal(b.n, 3);
    /* the first record is returned even when it alone exceeds max_bytes */
    assert_int_equal(hr_log_read(log, 10, 100, 1, &b), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.ents[0].seq, 10);
    /* max_n 0 reads nothing */
    assert_int_equal(hr_log_read(log, 10, 0, 1000, &b), 0);
    assert_int_equal(b.n, 0);
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* A reference model of reads: random (from, max_n, max_bytes) against the known payloads,
 * with several records per request so index points fall between records. */
static void test_read_model(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(64 << 10);
    hr_log_t *log = tu_open(dir, &o);
    uint8_t bufs[5][400];
    hr_iov_t v[5];
    uint64_t seq = 1;
    for (int r = 0; r < 300; r++) {
        size_t n = 1 + (size_t)r % 5;
        for (size_t i = 0; i < n; i++) {
            v[i].base = bufs[i];
            v[i].len = tu_payload(seq + i, 0, bufs[i]);
        }
        uint64_t first = 0;
        assert_int_equal(tu_append(log, v, n, &first), 0);
        assert_int_equal(first, seq);
        seq += n;
    }
    uint64_t last = seq - 1;
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    uint8_t p[400];
    uint32_t x = 7;
    for (int k = 0; k < 300; k++) {
        x = x * 1103515245u + 12345u;
        uint64_t from = (x >> 8) % (last + 3);
        size_t max_n = 1 + (x >> 4) % 50;
        size_t max_bytes = (x >> 12) % 5000;
        assert_int_equal(hr_log_read(log, from, max_n, max_bytes, &b), 0);
        uint64_t s = from ? from : 1;
        size_t bytes = 0, n = 0;
        while (s <= last && n < max_n) {
            size_t len = tu_payload(s, 0, p);
            if (n > 0 && bytes + len > max_bytes) {
                break;
            }
            assert_true(n < b.n);
            assert_int_equal(b.ents[n].seq, s);
            assert_int_equal(b.ents[n].len, len);
            assert_memory_equal(b.ents[n].payload, p, len);
            bytes += len;
            n++;
            s++;
        }
        assert_int_equal(b.n, n);
    }
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* The reference answer of seek_time over the records read back. */
static uint64_t ref_seek(const hr_log_batch_t *all, uint64_t t)
{
    for (size_t i = 0; i < all->n; i++) {
        if (all->ents[i].time_ns >= t) {
            return all->ents[i].seq;
        }
    }
    return all->n ? all->ents[all->n - 1].seq + 1 : 1;
}

static void check_seek(hr_log_t *log)
{
    hr_log_batch_t all = HR_LOG_BATCH_INIT;
    assert_int_equal(hr_log_read(log, 1, 100000, SIZE_MAX, &all), 0);
    assert_int_equal(hr_log_seek_time(log, 0), all.n ? 1 : 1);
    assert_int_equal(hr_log_seek_time(log, UINT64_MAX), tu_last(log) + 1);
    for (size_t i = 0; i < all.n; i++) {
        uint64_t t = all.ents[i].time_ns;
        assert_int_equal(hr_log_seek_time(log, t), ref_seek(&all, t));
        assert_int_equal(hr_log_seek_time(log, t - 1), ref_seek(&all, t - 1));
        assert_int_equal(hr_log_seek_time(log, t + 1), ref_seek(&all, t + 1));
    }
    hr_log_batch_free(&all);
}

static void test_seek_time(void **state)
{
    char *dir = tu_mkdtemp();
    /* Empty log: every time maps to seq 1. */
    hr_log_opts_t o = small_opts(4096);
    hr_log_t *log = tu_open(dir, &o);
    assert_int_equal(hr_log_seek_time(log, 0), 1);
    assert_int_equal(hr_log_seek_time(log, UINT64_MAX), 1);
    tu_fill(log, 1, 150, 0);
    check_seek(log);
    hr_log_close(log);
    /* Again after reopen, with sealed segments' indexes loaded from their files. */
    log = tu_open(dir, &o);
    check_seek(log);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
    /* A bigger segment: the time index is sparser than the records. */
    dir = tu_mkdtemp();
    o = small_opts(256 << 10);
    log = tu_open(dir, &o);
    tu_fill(log, 1, 400, 0);
    check_seek(log);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* Admit hook: rejects every third request, trims every fourth to its first record, and checks
 * that next_seq is the seq the request then gets. */
typedef struct admit_state {
    int calls;
    uint64_t expect_next;
} admit_state_t;

static int admit_hook(void *arg, hr_log_req_t *req, uint64_t next_seq)
{
    admit_state_t *a = arg;
    a->calls++;
    assert_int_equal(next_seq, a->expect_next);
    int k = (int)(intptr_t)req->user;
    if (k % 3 == 2) {
        return HR_ECONFLICT;
    }
    if (k % 4 == 3) {
        req->n_recs = 1; /* a subset the caller still owns */
    }
    a->expect_next += req->n_recs;
    return 0;
}

static void test_admit_hook(void **state)
{
    char *dir = tu_mkdtemp();
    admit_state_t a = {0, 1};
    hr_log_opts_t o = small_opts(4096);
    o.admit = admit_hook;
    o.admit_arg = &a;
    hr_log_t *log = tu_open(dir, &o);
    uint8_t p[3][8] = {"a", "b", "c"};
    hr_iov_t v[3] = {{p[0], 1}, {p[1], 1}, {p[2], 1}};
    uint64_t expect = 1;
    for (int k = 0; k < 24; k++) {
        tu_wait_t w;
        memset(&w, 0, sizeof(w));
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        w.req.recs = v;
        w.req.n_recs = 3;
        w.req.done = tu_done;
        w.req.user = (void *)(intptr_t)k;
        assert_int_equal(hr_log_submit(log, &w.req), 0);
        pthread_mutex_lock(&w.mu);
        while (!w.fired) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        if (k % 3 == 2) {
            assert_int_equal(w.req.status, HR_ECONFLICT);
        } else {
            assert_int_equal(w.req.status, 0);
            assert_int_equal(w.req.first_seq, expect);
            expect += k % 4 == 3 ? 1 : 3;
        }
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
    }
    assert_int_equal(a.calls, 24);
    assert_int_equal(tu_last(log), expect - 1);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    assert_int_equal(hr_log_read(log, 1, 1000, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, expect - 1);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.ents[i].seq, i + 1);
    }
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_too_big(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(1024);
    hr_log_t *log = tu_open(dir, &o);
    static uint8_t big[2000];
    hr_iov_t v = {big, sizeof(big)};
    assert_int_equal(tu_append(log, &v, 1, NULL), HR_ETOOBIG);
    /* a request whose records fit one by one but not together: also too big (atomic) */
    hr_iov_t v3[3] = {{big, 400}, {big, 400}, {big, 400}};
    assert_int_equal(tu_append(log, v3, 3, NULL), HR_ETOOBIG);
    uint64_t first = 0;
    assert_int_equal(tu_append(log, v3, 2, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(tu_append(log, v3, 2, &first), 0);
    assert_int_equal(first, 3); /* rolled: a request never spans segments */
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    assert_int_equal(st.segments, 2);
    hr_log_close(log);
    /* invalid options */
    hr_log_t *bad = NULL;
    o.segment_bytes = 10;
    assert_int_equal(hr_log_open(dir, &o, &bad), HR_EINVAL);
    assert_null(bad);
    tu_rmrf(dir);
    free(dir);
}

static void test_fsync_policies(void **state)
{
    atomic_store(&hr__log_test_no_prezero, 1);
    /* always: one fdatasync per group - the 4th sequential append meets the injected error */
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(1 << 20);
    hr_log_t *log = tu_open(dir, &o);
    hr__fileio_fail_syncs(EIO, 3);
    tu_fill(log, 1, 3, 10);
    uint8_t p[10] = {0};
    hr_iov_t v = {p, sizeof(p)};
    assert_int_equal(tu_append(log, &v, 1, NULL), -EIO);
    hr_log_close(log);
    log = tu_open(dir, &o);
    assert_int_equal(tu_last(log), 3); /* the unsynced record was cut away */
    tu_check(log, 1, 3, 10);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);

    /* never: no fdatasync on the append path - the armed failure is still pending after */
    dir = tu_mkdtemp();
    o.fsync = HR_FSYNC_NEVER;
    log = tu_open(dir, &o);
    hr__fileio_fail_syncs(EIO, 0);
    tu_fill(log, 1, 50, 10);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    assert_int_equal(st.failed, 0);
    assert_int_equal(hr_fdatasync(-1), -EIO); /* consumes the still-armed failure */
    hr_log_close(log);
    log = tu_open(dir, &o);
    tu_check(log, 1, 50, 10);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);

    /* interval: done() after the write; the commit thread syncs on its timer */
    dir = tu_mkdtemp();
    o.fsync = HR_FSYNC_INTERVAL;
    o.fsync_interval_ms = 5;
    log = tu_open(dir, &o);
    tu_fill(log, 1, 5, 10);
    hr__fileio_fail_syncs(EIO, 0);
    tu_fill(log, 6, 6, 10); /* dirty; the timed sync meets the error */
    uint64_t deadline = hr_mono_ns() + 10ull * 1000000000u;
    do {
        hr_log_stats(log, &st);
    } while (!st.failed && hr_mono_ns() < deadline);
    assert_int_equal(st.failed, 1);
    assert_int_equal(tu_append(log, &v, 1, NULL), HR_EFAILED);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
    hr__fileio_fail_syncs(0, 0);
    atomic_store(&hr__log_test_no_prezero, 0);
}

/* Concurrent submitters: seqs gap-free and each payload found at its reported seq. */
#define THREADS 8
#define PER_THREAD 2000

typedef struct sub_arg {
    hr_log_t *log;
    int id;
    uint64_t seqs[PER_THREAD];
} sub_arg_t;

static void *submitter(void *p)
{
    sub_arg_t *a = p;
    char buf[64];
    for (int i = 0; i < PER_THREAD; i++) {
        int n = snprintf(buf, sizeof(buf), "t%d-%d", a->id, i);
        hr_iov_t v = {(const uint8_t *)buf, (size_t)n};
        uint64_t first = 0;
        if (tu_append(a->log, &v, 1, &first) != 0) {
            return (void *)1;
        }
        a->seqs[i] = first;
    }
    return NULL;
}

static void test_concurrent_submitters(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(256 << 10);
    hr_log_t *log = tu_open(dir, &o);
    static sub_arg_t args[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t].log = log;
        args[t].id = t;
        assert_int_equal(pthread_create(&th[t], NULL, submitter, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        void *ret;
        pthread_join(th[t], &ret);
        assert_null(ret);
    }
    const uint64_t total = THREADS * PER_THREAD;
    assert_int_equal(tu_last(log), total);
    uint8_t *seen = calloc(total + 1, 1);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    assert_int_equal(hr_log_read(log, 1, total, SIZE_MAX, &b), 0);
    assert_int_equal(b.n, total);
    char buf[64];
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t s = args[t].seqs[i];
            assert_true(s >= 1 && s <= total && !seen[s]);
            seen[s] = 1;
            assert_true(i == 0 || s > args[t].seqs[i - 1]);
            int n = snprintf(buf, sizeof(buf), "t%d-%d", t, i);
            assert_int_equal(b.ents[s - 1].seq, s);
            assert_int_equal(b.ents[s - 1].len, n);
            assert_memory_equal(b.ents[s - 1].payload, buf, n);
        }
    }
    free(seen);
    hr_log_batch_free(&b);
    assert_int_equal(hr_log_validate(log), 0);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

typedef struct waiter_arg {
    hr_log_t *log;
    uint64_t got;
} waiter_arg_t;

static void *waiter(void *p)
{
    waiter_arg_t *a = p;
    a->got = hr_log_wait(a->log, 3, 30000);
    return NULL;
}

static int commits;
static uint64_t commit_last;
static void on_commit(void *arg, uint64_t last)
{
    (void)arg;
    commits++; /* commit thread only */
    commit_last = last;
}

static void test_wait_and_commit_listener(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(1 << 20);
    o.on_commit = on_commit;
    commits = 0;
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 3, 10);
    /* nothing new: the timeout answers the current last seq */
    assert_int_equal(hr_log_wait(log, 3, 0), 3);
    assert_int_equal(hr_log_wait(log, 3, 5), 3);
    assert_int_equal(hr_log_wait(log, 1, 1000), 3);
    waiter_arg_t a = {log, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter, &a), 0);
    tu_fill(log, 4, 4, 10);
    pthread_join(th, NULL);
    assert_int_equal(a.got, 4);
    hr_log_close(log);
    assert_int_equal(commits, 4); /* sequential appends: one group each */
    assert_int_equal(commit_last, 4);
    tu_rmrf(dir);
    free(dir);
}

/* Close drains the queue: every accepted request completes; later submits fail. */
static int drained;
static void count_done(hr_log_req_t *req)
{
    assert_int_equal(req->status, 0);
    drained++;
}

static void test_close_drains(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = small_opts(1 << 20);
    hr_log_t *log = tu_open(dir, &o);
    static hr_log_req_t reqs[200];
    static uint8_t p[16];
    hr_iov_t v = {p, sizeof(p)};
    drained = 0;
    for (int i = 0; i < 200; i++) {
        reqs[i] = (hr_log_req_t){.recs = &v, .n_recs = 1, .done = count_done};
        assert_int_equal(hr_log_submit(log, &reqs[i]), 0);
    }
    hr_log_close(log);
    assert_int_equal(drained, 200);
    log = tu_open(dir, &o);
    assert_int_equal(tu_last(log), 200);
    /* a second open of the same directory is refused while it is open */
    hr_log_t *other = NULL;
    assert_int_equal(hr_log_open(dir, &o, &other), HR_EBUSY);
    hr_log_close(log);
    hr_log_close(NULL);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_round_trip_rolls),
        cmocka_unit_test(test_read_positions_and_limits),
        cmocka_unit_test(test_read_model),
        cmocka_unit_test(test_seek_time),
        cmocka_unit_test(test_admit_hook),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_fsync_policies),
        cmocka_unit_test(test_concurrent_submitters),
        cmocka_unit_test(test_wait_and_commit_listener),
        cmocka_unit_test(test_close_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
