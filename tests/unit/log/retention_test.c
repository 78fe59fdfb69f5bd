/* SPDX-License-Identifier: MIT */
/*
 * Bus log retention (by size and by age, whole segments, never the active one, seqs never
 * reused) and the sticky failed state after write errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_test_util.h"
#include "util/clock.h"
#include "util/fileio.h"

#define PLEN 100

static hr_log_opts_t opts(uint64_t seg_bytes)
{
    hr_log_opts_t o;
    hr_log_opts_default(&o);
    o.segment_bytes = seg_bytes;
    return o;
}

static void test_retention_by_size(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(4096);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 300, PLEN);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    uint32_t before = st.segments;
    assert_true(before > 8);
    assert_int_equal(hr_log_enforce_retention(log), 0); /* no limits configured */
    o.retention_bytes = 3 * 4096;
    hr_log_configure(log, &o);
    int deleted = hr_log_enforce_retention(log);
    hr_log_stats(log, &st);
    /* the commit thread may have run the same pass first */
    assert_true(deleted >= 0 && st.segments <= 3 && st.segments >= 2);
    assert_true(st.bytes <= 3 * 4096);
    assert_true(st.first_seq > 1);
    assert_int_equal(st.last_seq, 300);
    assert_int_equal(st.count, 300 - st.first_seq + 1);
    /* reads from before the first retained seq start at the first retained one */
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    assert_int_equal(hr_log_read(log, 1, 5, 1 << 20, &b), 0);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.ents[0].seq, st.first_seq);
    tu_check(log, st.first_seq, 300, PLEN);
    assert_int_equal(hr_log_seek_time(log, 0), st.first_seq);
    /* the oldest file is gone */
    char name[64];
    tu_seg_name(name, 1, "log");
    assert_int_equal(tu_fsize(dir, name), -1);
    /* a limit below one segment keeps only the active segment; seqs are not reused */
    o.retention_bytes = 1;
    hr_log_configure(log, &o);
    hr_log_enforce_retention(log);
    hr_log_stats(log, &st);
    assert_int_equal(st.segments, 1);
    hr_log_close(log);
    log = tu_open(dir, &o);
    hr_log_stats(log, &st);
    assert_int_equal(st.last_seq, 300);
    uint8_t p[PLEN];
    hr_iov_t v = {p, tu_payload(301, PLEN, p)};
    uint64_t first = 0;
    assert_int_equal(tu_append(log, &v, 1, &first), 0);
    assert_int_equal(first, 301);
    assert_int_equal(hr_log_validate(log), 0);
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* The commit thread applies retention by itself after a roll. */
static void test_retention_on_commit_thread(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(4096);
    o.retention_bytes = 2 * 4096;
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 300, PLEN);
    hr_log_stats_t st;
    uint64_t deadline = hr_mono_ns() + 10ull * 1000000000u;
    /* Retention runs after each roll, so the total may exceed the limit by at most the
     * active segment's growth since. */
    do {
        hr_log_stats(log, &st);
    } while (st.bytes > 3 * 4096 && hr_mono_ns() < deadline);
    assert_true(st.bytes <= 3 * 4096);
    assert_true(st.first_seq > 1);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void wait_until_wall(uint64_t t_ns)
{
    while (hr_wall_ns() <= t_ns) {
        /* a condition on the clock, a few ms at most */
    }
}

static void test_retention_by_age(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(4096);
    o.retention_age_ms = 3600 * 1000; /* an hour: nothing is that old */
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 200, PLEN);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    uint32_t segs = st.segments;
    assert_int_equal(hr_log_enforce_retention(log), 0);
    hr_log_close(log);
    /* Reopen with a 1 ms age once the newest record is 2 ms old: every sealed segment goes,
     * judged by the last-record times in their index trailers. */
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    o.retention_age_ms = 0;
    log = tu_open(dir, &o);
    assert_int_equal(hr_log_read(log, 200, 1, 1 << 20, &b), 0);
    uint64_t newest = b.ents[0].time_ns;
    hr_log_close(log);
    wait_until_wall(newest + 2000000);
    o.retention_age_ms = 1;
    log = tu_open(dir, &o);
    int deleted = hr_log_enforce_retention(log);
    hr_log_stats(log, &st);
    assert_int_equal(st.segments, 1);
    assert_true(deleted >= 0 && deleted <= (int)segs - 1);
    assert_int_equal(st.last_seq, 200);
    tu_check(log, st.first_seq, 200, PLEN);
    /* age keeps the segments whose newest record is recent */
    o.retention_age_ms = 3600 * 1000;
    hr_log_configure(log, &o);
    tu_fill(log, 201, 400, PLEN);
    assert_int_equal(hr_log_enforce_retention(log), 0);
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

/* A reader keeps reading a segment that retention deletes under it. */
static void test_read_during_retention(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(4096);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 300, PLEN);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    o.retention_bytes = 1;
    for (int i = 0; i < 3; i++) {
        /* interleave: read, delete, read again from the old start */
        assert_int_equal(hr_log_read(log, 1, 50, 1 << 20, &b), 0);
        assert_true(b.n > 0);
        hr_log_configure(log, &o);
        hr_log_enforce_retention(log);
        assert_int_equal(hr_log_read(log, 1, 50, 1 << 20, &b), 0);
        assert_true(b.n > 0);
        hr_log_stats_t st;
        hr_log_stats(log, &st);
        assert_int_equal(b.ents[0].seq, st.first_seq);
    }
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

static void test_sticky_failed_write(void **state)
{
    atomic_store(&hr__log_test_no_prezero, 1);
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(1 << 20);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 10, PLEN);
    hr__fileio_fail_writes(ENOSPC, 0); /* the next write puts half down, then ENOSPC */
    uint8_t p[PLEN];
    hr_iov_t v = {p, tu_payload(11, PLEN, p)};
    assert_int_equal(tu_append(log, &v, 1, NULL), -ENOSPC);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.last_seq, 10);
    /* all later submits fail at once; reads still work */
    assert_int_equal(tu_append(log, &v, 1, NULL), HR_EFAILED);
    tu_check(log, 1, 10, PLEN);
    hr_log_close(log);
    /* the partial write was truncated away: 10 records, no torn tail to repair */
    char name[64];
    tu_seg_name(name, 1, "log");
    assert_int_equal(tu_fsize(dir, name), HR_SEG_HDR_SIZE + 10 * (HR_REC_HDR_SIZE + PLEN));
    log = tu_open(dir, &o);
    hr_log_stats(log, &st);
    assert_int_equal(st.failed, 0);
    tu_fill(log, 11, 12, PLEN);
    tu_check(log, 1, 12, PLEN);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
    atomic_store(&hr__log_test_no_prezero, 0);
}

/* Requests queued behind a failed group complete with an error, never with a seq. */
static int n_ok, n_fail;
static uint64_t max_ok;
static pthread_mutex_t cnt_mu = PTHREAD_MUTEX_INITIALIZER;
static void cnt_done(hr_log_req_t *req)
{
    pthread_mutex_lock(&cnt_mu);
    if (req->status == 0) {
        n_ok++;
        max_ok = req->first_seq > max_ok ? req->first_seq : max_ok;
    } else {
        assert_true(req->status == -ENOSPC || req->status == HR_EFAILED);
        n_fail++;
    }
    pthread_mutex_unlock(&cnt_mu);
}

static void test_failed_with_queue(void **state)
{
    atomic_store(&hr__log_test_no_prezero, 1);
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(1 << 20);
    o.max_batch_records = 16;
    hr_log_t *log = tu_open(dir, &o);
    static hr_log_req_t reqs[400];
    static uint8_t p[PLEN];
    hr_iov_t v = {p, sizeof(p)};
    n_ok = n_fail = 0;
    max_ok = 0;
    hr__fileio_fail_writes(ENOSPC, 3);
    int accepted = 0;
    for (int i = 0; i < 400; i++) {
        reqs[i] = (hr_log_req_t){.recs = &v, .n_recs = 1, .done = cnt_done};
        int rc = hr_log_submit(log, &reqs[i]);
        assert_true(rc == 0 || rc == HR_EFAILED);
        accepted += rc == 0;
    }
    hr_log_close(log); /* drains: every accepted request completes */
    assert_int_equal(n_ok + n_fail, accepted);
    assert_true(n_fail > 0);
    assert_int_equal(max_ok, (uint64_t)n_ok); /* the successes are exactly seqs 1..n_ok */
    log = tu_open(dir, &o);
    assert_int_equal(tu_last(log), (uint64_t)n_ok);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
    hr__fileio_fail_writes(0, 0);
    atomic_store(&hr__log_test_no_prezero, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention_by_size),
        cmocka_unit_test(test_retention_on_commit_thread),
        cmocka_unit_test(test_retention_by_age),
        cmocka_unit_test(test_read_during_retention),
        cmocka_unit_test(test_sticky_failed_write),
        cmocka_unit_test(test_failed_with_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
