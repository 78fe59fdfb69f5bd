/* SPDX-License-Identifier: MIT */
/*
 * Recovery of a log directory at open (hr_log_open, before the commit thread starts; single
 * threaded). Lists the segments, trusts every segment but the last (invariant 3: they were
 * sealed and synced before the next one was created; their indexes are checked lazily on
 * first use), and validates the last segment's tail record by record, starting from its last
 * index entry that checks out against the data. A torn or CRC-bad tail, an incomplete request
 * and anything after them are truncated away; the index is rebuilt for what the scan covered.
 * The work is bounded by the size of one segment, never by the size of the log.
 */
#include "log/log_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/err.h"
#include "util/fileio.h"

/* Parses "<20 digits>.<ext>" into *base. Returns 1 on a match. */
static int parse_name(const char *name, const char *ext, uint64_t *base)
{
    size_t el = strlen(ext);
    if (strlen(name) != 21 + el || name[20] != '.' || strcmp(name + 21, ext) != 0) {
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    *base = v;
    return v >= 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists segment bases (sorted) and removes index files whose segment is gone (a crash during
 * retention) and a half-prepared next.tmp. */
static int list_segments(hr_log_t *log, uint64_t **out, size_t *n)
{
    uint64_t *bases = NULL, *orphans = NULL;
    size_t nb = 0, cb = 0, no = 0, co = 0;
    int fd = dup(log->lg_dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int rc = -errno;
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t b;
        if (parse_name(e->d_name, "log", &b)) {
            if (nb == cb) {
                cb = cb ? cb * 2 : 16;
                bases = hr_xrealloc(bases, cb * sizeof(*bases));
            }
            bases[nb++] = b;
        } else if (parse_name(e->d_name, "idx", &b) || parse_name(e->d_name, "tix", &b)) {
            if (no == co) {
                co = co ? co * 2 : 16;
                orphans = hr_xrealloc(orphans, co * sizeof(*orphans));
            }
            orphans[no++] = b;
        }
    }
    closedir(d);
    if (nb > 1) {
        qsort(bases, nb, sizeof(*bases), cmp_u64);
    }
    for (size_t i = 0; i < no; i++) {
        if (nb == 0 || bsearch(&orphans[i], bases, nb, sizeof(*bases), cmp_u64) == NULL) {
            char name[64];
            hr__log_seg_name(name, sizeof(name), orphans[i], "idx");
            unlinkat(log->lg_dirfd, name, 0);
            hr__log_seg_name(name, sizeof(name), orphans[i], "tix");
            unlinkat(log->lg_dirfd, name, 0);
        }
    }
    free(orphans);
    /* A next.tmp is only ever a zero-filled file without a name yet: safe to drop. */
    unlinkat(log->lg_dirfd, HR_NEXT_TMP, 0);
    *out = bases;
    *n = nb;
    return 0;
}

/* Checks that index entry `e` points at a valid record with the same seq and time that
 * starts a request. */
static int entry_ok(hr_seg_t *s, const hr_idx_ent_t *e, uint64_t size)
{
    hr_cursor_t c;
    hr_rec_t r;
    if (e->pos < HR_SEG_HDR_SIZE || e->pos >= size || e->seq < s->sg_base) {
        return 0;
    }
    if (hr__log_cursor_init(&c, s->sg_fd, e->pos, size) != 0) {
        return 0;
    }
    int ok = hr__log_cursor_next(&c, &r, NULL) == 0 && r.seq == e->seq && r.time_ns == e->time_ns &&
             r.req_idx == 0;
    hr__log_cursor_free(&c);
    return ok;
}

static int recover_last(hr_log_t *log, hr_seg_t *s, uint64_t prev_time)
{
    uint8_t hdr[HR_SEG_HDR_SIZE];
    size_t got = 0;
    struct stat st;
    int sealed_ok = 0;
    int rc = hr__log_seg_open_fd(log, s);
    if (rc != 0) {
        goto out;
    }
    if (fstat(s->sg_fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    rc = hr_pread_all(s->sg_fd, hdr, sizeof(hdr), 0, &got);
    if (rc == 0) {
        rc = hr__log_seg_hdr_check(hdr, got, s->sg_base);
    }
    if (rc != 0) {
        fprintf(stderr, "herald: log %s: segment %020llu.log: bad header at offset 0 (%s)\n",
                log->lg_dir, (unsigned long long)s->sg_base, hr_strerror(rc));
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    (void)hr__log_idx_read_files(log, s, &sealed_ok);
    /* The index may be behind, torn or ahead of the data after a crash (invariant 8): keep
     * the entries up to the last one that checks out against the data, scan from there. */
    while (s->sg_nidx > 0 && !entry_ok(s, &s->sg_idx[s->sg_nidx - 1], size)) {
        s->sg_nidx--;
    }
    hr_scan_t sc = {.pos = HR_SEG_HDR_SIZE, .seq = s->sg_base, .time = prev_time};
    if (s->sg_nidx > 0) {
        const hr_idx_ent_t *e = &s->sg_idx[s->sg_nidx - 1];
        sc = (hr_scan_t){.pos = e->pos, .seq = e->seq, .time = e->time_ns};
    }
    rc = hr__log_scan(log, s, size, &sc);
    if (rc != 0) {
        goto out;
    }
    if (sc.stop != 1) {
        fprintf(stderr,
                "herald: log %s: segment %020llu.log: torn or corrupt record at offset %llu "
                "after seq %llu; truncating %llu bytes\n",
                log->lg_dir, (unsigned long long)s->sg_base, (unsigned long long)sc.end,
                (unsigned long long)sc.last_seq, (unsigned long long)(size - sc.end));
    }
    if (size > sc.end && ftruncate(s->sg_fd, (off_t)sc.end) != 0) {
        /* Why: a torn tail must be gone before new records are written after sc.end, or a
         * stale record beyond them could later be read as their successor. */
        rc = -errno;
        goto out;
    }
    /* Why: records found on disk may only be in the page cache (a process crash under
     * fsync=interval/never) and are about to be published as committed; the truncation must
     * be durable before anything is appended after it. */
    rc = hr_fdatasync(s->sg_fd);
    if (rc != 0) {
        goto out;
    }
    atomic_store(&s->sg_end, sc.end);
    atomic_store(&s->sg_last, sc.last_seq);
    atomic_store(&s->sg_last_time, sc.last_time);
    s->sg_zeroed = sc.end;
    s->sg_loaded = 1;
    /* The rebuilt index replaces the old files; failure only costs a rescan next time. */
    (void)hr__log_idx_rewrite(log, s, 0);
    log->lg_last_time = sc.last_time > prev_time ? sc.last_time : prev_time;
out:
    return rc;
}

int hr__log_recover(hr_log_t *log)
{
    uint64_t *bases = NULL;
    size_t n = 0;
    char name[64];
    struct stat st;
    hr_seg_t *s = NULL;
    int rc = list_segments(log, &bases, &n);
    if (rc != 0) {
        goto out;
    }
    if (n == 0) {
        /* A new log: seqs start at 1. */
        rc = hr__log_seg_create(log, 1, &s);
        if (rc != 0) {
            goto out;
        }
        hr__log_segs_append(log, s);
        goto out;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        hr__log_seg_name(name, sizeof(name), bases[i], "log");
        if (fstatat(log->lg_dirfd, name, &st, 0) != 0) {
            rc = -errno;
            goto out;
        }
        s = hr__log_seg_new(bases[i]);
        atomic_store(&s->sg_last, bases[i + 1] - 1);
        atomic_store(&s->sg_end, (uint64_t)st.st_size);
        atomic_store(&s->sg_sealed, 1);
        atomic_fetch_add(&log->lg_bytes, (uint64_t)st.st_size);
        hr__log_segs_append(log, s);
    }
    uint64_t prev_time = 0;
    if (n > 1) {
        /* Only for invariant 2 when the last segment is empty: one sealed index, lazily. */
        hr_seg_t *prev = log->lg_segs[n - 2];
        if (hr__log_idx_ensure(log, prev) == 0) {
            prev_time = atomic_load(&prev->sg_last_time);
        }
    }
    s = hr__log_seg_new(bases[n - 1]);
    rc = recover_last(log, s, prev_time);
    if (rc != 0) {
        hr__log_seg_unref(s);
        goto out;
    }
    atomic_fetch_add(&log->lg_bytes, atomic_load(&s->sg_end));
    hr__log_segs_append(log, s);
out:
    free(bases);
    return rc;
}
