/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the log tests (included by each *_test.c; not a test itself): temporary
 * directories, synchronous appends through the real submit path, deterministic payloads and
 * a reference check of the whole log.
 */
#ifndef HR_TESTS_LOG_TEST_UTIL_H
#define HR_TESTS_LOG_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "log/log_int.h"
#include "util/clock.h"
#include "util/err.h"

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void tu_rmrf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline char *tu_mkdtemp(void)
{
    char *d = strdup("/tmp/hrlog-test-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

/* A synchronous submitter: one request, wait for its done(). */
typedef struct tu_wait {
    hr_log_req_t req;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fired;
} tu_wait_t;

static void tu_done(hr_log_req_t *req)
{
    tu_wait_t *w = (tu_wait_t *)req;
    pthread_mutex_lock(&w->mu);
    w->fired++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Appends `n` payloads as one request. Returns the request status (or the submit error) and
 * sets *first. */
static inline int tu_append(hr_log_t *log, const hr_iov_t *recs, size_t n, uint64_t *first)
{
    tu_wait_t w;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.req.recs = recs;
    w.req.n_recs = n;
    w.req.done = tu_done;
    int rc = hr_log_submit(log, &w.req);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.fired) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        assert_int_equal(w.fired, 1);
        rc = w.req.status;
        if (first) {
            *first = w.req.first_seq;
        }
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rc;
}

/* The deterministic payload of record `seq`: its length varies with the seq. */
static inline size_t tu_payload(uint64_t seq, size_t base_len, uint8_t *out)
{
    size_t len = base_len ? base_len : 1 + (seq * 37) % 300;
    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)(seq * 131 + i * 7);
    }
    return len;
}

/* Appends records [from, to] one request each (payload by seq), checking the seqs. */
static inline void tu_fill(hr_log_t *log, uint64_t from, uint64_t to, size_t base_len)
{
    uint8_t buf[70000];
    for (uint64_t s = from; s <= to; s++) {
        hr_iov_t v = {buf, tu_payload(s, base_len, buf)};
        uint64_t first = 0;
        assert_int_equal(tu_append(log, &v, 1, &first), 0);
        assert_int_equal(first, s);
    }
}

/* Reads [from, to] and checks every payload; checks that nothing follows `to`. */
static inline void tu_check(hr_log_t *log, uint64_t from, uint64_t to, size_t base_len)
{
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    uint8_t buf[70000];
    uint64_t seq = from, prev_time = 0;
    while (seq <= to) {
        assert_int_equal(hr_log_read(log, seq, 100, 1 << 20, &b), 0);
        assert_true(b.n > 0);
        for (size_t i = 0; i < b.n; i++) {
            assert_int_equal(b.ents[i].seq, seq);
            size_t len = tu_payload(seq, base_len, buf);
            assert_int_equal(b.ents[i].len, len);
            assert_memory_equal(b.ents[i].payload, buf, len);
            assert_true(b.ents[i].time_ns >= prev_time);
            prev_time = b.ents[i].time_ns;
            seq++;
        }
    }
    assert_int_equal(hr_log_read(log, to + 1, 100, 1 << 20, &b), 0);
    assert_int_equal(b.n, 0);
    hr_log_batch_free(&b);
}

static inline hr_log_t *tu_open(const char *dir, const hr_log_opts_t *o)
{
    hr_log_t *log = NULL;
    assert_int_equal(hr_log_open(dir, o, &log), 0);
    assert_non_null(log);
    return log;
}

static inline uint64_t tu_last(hr_log_t *log)
{
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    return st.last_seq;
}

static inline off_t tu_fsize(const char *dir, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    if (stat(p, &st) != 0) {
        return -1;
    }
    return st.st_size;
}

static inline void tu_cp(const char *from_dir, const char *to_dir, const char *name)
{
    char a[512], b[512];
    snprintf(a, sizeof(a), "%s/%s", from_dir, name);
    snprintf(b, sizeof(b), "%s/%s", to_dir, name);
    int in = open(a, O_RDONLY), out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        assert_int_equal(write(out, buf, (size_t)n), n);
    }
    close(in);
    close(out);
}

static inline void tu_seg_name(char *out, uint64_t base, const char *ext)
{
    snprintf(out, 64, "%020llu.%s", (unsigned long long)base, ext);
}

#endif
