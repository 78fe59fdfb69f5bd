/* SPDX-License-Identifier: MIT */
/*
 * Bus log recovery: the last record torn at every byte offset (cut off, or zero-filled as a
 * pre-zeroed file would show it), a bad CRC, garbage after the tail, an incomplete multi-record
 * request, and missing, stale, ahead and corrupt index files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_test_util.h"

#define PLEN 40 /* payload bytes per record: records are 72 bytes */
#define RLEN (HR_REC_HDR_SIZE + PLEN)

static hr_log_opts_t opts(uint64_t seg_bytes)
{
    hr_log_opts_t o;
    hr_log_opts_default(&o);
    o.segment_bytes = seg_bytes;
    return o;
}

/* Writes `n` records (one request each) into a fresh log at `dir` and closes it. */
static void make_log(const char *dir, uint64_t seg_bytes, uint64_t n)
{
    hr_log_opts_t o = opts(seg_bytes);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, n, PLEN);
    hr_log_close(log);
}

static void copy_log(const char *from, const char *to, uint64_t base)
{
    char name[64];
    tu_seg_name(name, base, "log");
    tu_cp(from, to, name);
    tu_seg_name(name, base, "idx");
    tu_cp(from, to, name);
    tu_seg_name(name, base, "tix");
    tu_cp(from, to, name);
}

static void modify(const char *dir, const char *name, off_t off, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
    close(fd);
}

static void cut(const char *dir, const char *name, off_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(truncate(path, len), 0);
}

/* Reopens `dir`, expects records 1..expect_last intact, appends one more (expect_last + 1). */
static void expect_recovered(const char *dir, uint64_t seg_bytes, uint64_t expect_last)
{
    hr_log_opts_t o = opts(seg_bytes);
    hr_log_t *log = tu_open(dir, &o);
    assert_int_equal(tu_last(log), expect_last);
    assert_int_equal(hr_log_validate(log), 0);
    tu_check(log, 1, expect_last, PLEN);
    tu_fill(log, expect_last + 1, expect_last + 1, PLEN);
    hr_log_close(log);
    log = tu_open(dir, &o);
    tu_check(log, 1, expect_last + 1, PLEN);
    hr_log_close(log);
}

static void test_truncate_every_offset(void **state)
{
    const uint64_t n = 6;
    char *tmpl = tu_mkdtemp();
    make_log(tmpl, 1 << 20, n);
    char name[64];
    tu_seg_name(name, 1, "log");
    off_t last_start = HR_SEG_HDR_SIZE + (off_t)(n - 1) * RLEN;
    for (int zero_fill = 0; zero_fill < 2; zero_fill++) {
        for (off_t k = last_start; k < last_start + RLEN; k++) {
            char *dir = tu_mkdtemp();
            copy_log(tmpl, dir, 1);
            if (zero_fill) {
                /* the torn write as a pre-zeroed file shows it: zeros from k on */
                static const uint8_t z[RLEN + 64];
                cut(dir, name, last_start + RLEN);
                modify(dir, name, k, z, (size_t)(last_start + RLEN - k) + 64);
            } else {
                cut(dir, name, k);
            }
            expect_recovered(dir, 1 << 20, n - 1);
            tu_rmrf(dir);
            free(dir);
        }
    }
    tu_rmrf(tmpl);
    free(tmpl);
}

static void test_bad_crc_and_garbage(void **state)
{
    const uint64_t n = 10;
    char name[64];
    tu_seg_name(name, 1, "log");
    off_t last_start = HR_SEG_HDR_SIZE + (off_t)(n - 1) * RLEN;
    /* a flipped payload byte in the last record */
    char *dir = tu_mkdtemp();
    make_log(dir, 1 << 20, n);
    uint8_t x = 0xAA;
    modify(dir, name, last_start + HR_REC_HDR_SIZE + 3, &x, 1);
    expect_recovered(dir, 1 << 20, n - 1);
    tu_rmrf(dir);
    free(dir);
    /* a flipped bit in the last record's seq field */
    dir = tu_mkdtemp();
    make_log(dir, 1 << 20, n);
    modify(dir, name, last_start + 8, &x, 1);
    expect_recovered(dir, 1 << 20, n - 1);
    tu_rmrf(dir);
    free(dir);
    /* garbage after the tail: everything stays, the garbage goes */
    dir = tu_mkdtemp();
    make_log(dir, 1 << 20, n);
    uint8_t g[300];
    for (size_t i = 0; i < sizeof(g); i++) {
        g[i] = (uint8_t)(i * 13 + 1);
    }
    modify(dir, name, last_start + RLEN, g, sizeof(g));
    expect_recovered(dir, 1 << 20, n);
    tu_rmrf(dir);
    free(dir);
    /* a copy of a valid record with the next seq, after a zero length field (a torn write
     * whose first page was lost) must not come back once new records are appended */
    dir = tu_mkdtemp();
    make_log(dir, 1 << 20, n);
    hr_log_opts_t o = opts(1 << 20);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, n + 1, n + 2, PLEN);
    hr_log_close(log);
    static const uint8_t z[RLEN];
    modify(dir, name, last_start + RLEN, z, RLEN); /* record n+1 lost, n+2 survives */
    expect_recovered(dir, 1 << 20, n);
    tu_rmrf(dir);
    free(dir);
}

/* A multi-record request cut in the middle disappears whole (a request is atomic). */
static void test_incomplete_request(void **state)
{
    char *dir = tu_mkdtemp();
    hr_log_opts_t o = opts(1 << 20);
    hr_log_t *log = tu_open(dir, &o);
    tu_fill(log, 1, 3, PLEN);
    uint8_t p[4][PLEN];
    hr_iov_t v[4];
    for (int i = 0; i < 4; i++) {
        v[i].base = p[i];
        v[i].len = tu_payload(4 + (uint64_t)i, PLEN, p[i]);
    }
    uint64_t first = 0;
    assert_int_equal(tu_append(log, v, 4, &first), 0);
    assert_int_equal(first, 4);
    hr_log_close(log);
    char name[64];
    tu_seg_name(name, 1, "log");
    /* keep records 4 and 5 of the request, tear record 6 */
    cut(dir, name, HR_SEG_HDR_SIZE + 5 * RLEN + 10);
    expect_recovered(dir, 1 << 20, 3);
    tu_rmrf(dir);
    free(dir);
}

static void test_index_missing_stale_ahead(void **state)
{
    const uint64_t seg = 2048; /* about 27 records per segment, many segments */
    const uint64_t n = 200;
    char name[64];
    /* missing: every index file deleted */
    char *dir = tu_mkdtemp();
    make_log(dir, seg, n);
    hr_log_opts_t o = opts(seg);
    hr_log_t *log = tu_open(dir, &o);
    hr_log_stats_t st;
    hr_log_stats(log, &st);
    uint32_t segs = st.segments;
    hr_log_close(log);
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[600];
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 &&
            (strcmp(e->d_name + l - 4, ".idx") == 0 || strcmp(e->d_name + l - 4, ".tix") == 0)) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    expect_recovered(dir, seg, n);
    log = tu_open(dir, &o);
    hr_log_stats(log, &st);
    assert_int_equal(st.segments, segs);
    assert_int_equal(hr_log_seek_time(log, 0), 1);
    hr_log_close(log);
    /* the rebuilt index files are back */
    tu_seg_name(name, 1, "idx");
    assert_true(tu_fsize(dir, name) > HR_IDX_HDR_SIZE);
    tu_rmrf(dir);
    free(dir);

    /* stale (behind): the last segment's index from an earlier moment */
    dir = tu_mkdtemp();
    char *saved = tu_mkdtemp();
    o = opts(1 << 20);
    log = tu_open(dir, &o);
    tu_fill(log, 1, 20, PLEN);
    hr_log_close(log);
    tu_seg_name(name, 1, "idx");
    tu_cp(dir, saved, name);
    tu_seg_name(name, 1, "tix");
    tu_cp(dir, saved, name);
    log = tu_open(dir, &o);
    tu_fill(log, 21, 300, PLEN);
    hr_log_close(log);
    tu_seg_name(name, 1, "idx");
    tu_cp(saved, dir, name);
    tu_seg_name(name, 1, "tix");
    tu_cp(saved, dir, name);
    expect_recovered(dir, 1 << 20, 300);
    tu_rmrf(dir);
    free(dir);

    /* ahead: the data lost its last 100 records (e.g. never synced) but the index kept them */
    dir = tu_mkdtemp();
    log = tu_open(dir, &o);
    tu_fill(log, 1, 300, PLEN);
    hr_log_close(log);
    tu_seg_name(name, 1, "log");
    cut(dir, name, HR_SEG_HDR_SIZE + 200 * RLEN);
    tu_seg_name(name, 1, "idx");
    /* index points every 57 records (4 KiB): records 1, 58, ..., 229, 286; two are ahead */
    assert_int_equal(tu_fsize(dir, name), (off_t)(HR_IDX_HDR_SIZE + 6 * HR_IDX_ENT_SIZE));
    expect_recovered(dir, 1 << 20, 200);
    tu_rmrf(dir);
    tu_rmrf(saved);
    free(dir);
    free(saved);
}

/* A sealed segment's index whose trailer does not check out is rebuilt from the data. */
static void test_sealed_index_corrupt(void **state)
{
    char *dir = tu_mkdtemp();
    make_log(dir, 2048, 120);
    char name[64];
    uint8_t junk[40];
    memset(junk, 0x5A, sizeof(junk));
    tu_seg_name(name, 1, "idx");
    off_t sz = tu_fsize(dir, name);
    modify(dir, name, sz - 20, junk, 20); /* trailer CRC broken */
    tu_seg_name(name, 1, "tix");
    modify(dir, name, HR_IDX_HDR_SIZE, junk, sizeof(junk)); /* entries broken */
    expect_recovered(dir, 2048, 120);
    tu_seg_name(name, 1, "idx");
    assert_int_equal(tu_fsize(dir, name), sz); /* rewritten whole, trailer included */
    tu_rmrf(dir);
    free(dir);
}

/* A sealed segment whose data is damaged is reported, not silently skipped. */
static void test_sealed_data_corrupt(void **state)
{
    char *dir = tu_mkdtemp();
    make_log(dir, 2048, 120);
    char name[64];
    tu_seg_name(name, 1, "idx");
    unlink(strcat(strcat(strcpy((char[600]){0}, dir), "/"), name));
    tu_seg_name(name, 1, "log");
    uint8_t x = 0x77;
    modify(dir, name, HR_SEG_HDR_SIZE + 3 * RLEN + 40, &x, 1);
    hr_log_opts_t o = opts(2048);
    hr_log_t *log = tu_open(dir, &o);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    assert_int_equal(hr_log_read(log, 1, 10, 1 << 20, &b), HR_ECORRUPT);
    assert_int_equal(b.n, 0);
    hr_log_batch_free(&b);
    hr_log_close(log);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncate_every_offset),
        cmocka_unit_test(test_bad_crc_and_garbage),
        cmocka_unit_test(test_incomplete_request),
        cmocka_unit_test(test_index_missing_stale_ahead),
        cmocka_unit_test(test_sealed_index_corrupt),
        cmocka_unit_test(test_sealed_data_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
