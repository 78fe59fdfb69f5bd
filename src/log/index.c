/* SPDX-License-Identifier: MIT */
/*
 * Sparse seq and time indexes of a segment (file layout: see the top of segment.c).
 *
 * In memory, a segment's index is one array of (seq, time, position) entries, one per index
 * point, guarded by sg_mu. The commit thread appends entries for the active segment after the
 * data write and writes them to the .idx/.tix files lazily and without fsync (invariant 8).
 * Sealed segments found at open are loaded on first use (hr__log_idx_ensure) from any thread:
 * trusted if the .idx trailer's size and CRC check out, else rebuilt by scanning the segment.
 * Lookups are binary searches; the caller then scans forward from the returned position.
 */
#include "log/log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/crc32c.h"
#include "util/err.h"
#include "util/fileio.h"

static const char idx_magic[8] = {'H', 'R', 'L', 'O', 'G', 'I', 'D', 'X'};
static const char tix_magic[8] = {'H', 'R', 'L', 'O', 'G', 'T', 'I', 'X'};
#define SEAL_MARK UINT64_MAX

/* Appends an entry; the caller holds sg_mu or owns the segment exclusively. */
static void idx_append(hr_seg_t *s, uint64_t seq, uint64_t time_ns, uint32_t pos)
{
    if (s->sg_nidx == s->sg_capidx) {
        s->sg_capidx = s->sg_capidx ? s->sg_capidx * 2 : 64;
        s->sg_idx = hr_xrealloc(s->sg_idx, s->sg_capidx * sizeof(*s->sg_idx));
    }
    s->sg_idx[s->sg_nidx++] = (hr_idx_ent_t){seq, time_ns, pos};
}

void hr__log_idx_push(hr_seg_t *s, uint64_t seq, uint64_t time_ns, uint32_t pos)
{
    pthread_mutex_lock(&s->sg_mu);
    idx_append(s, seq, time_ns, pos);
    pthread_mutex_unlock(&s->sg_mu);
}

static void ent_encode(uint8_t *idx, uint8_t *tix, const hr_seg_t *s, const hr_idx_ent_t *e)
{
    hr__put_le64(idx, e->seq);
    hr__put_le32(idx + 8, e->pos);
    hr__put_le32(idx + 12, hr_crc32c(0, idx, 12));
    hr__put_le64(tix, e->time_ns);
    hr__put_le32(tix + 8, (uint32_t)(e->seq - s->sg_base));
    hr__put_le32(tix + 12, hr_crc32c(0, tix, 12));
}

static void file_hdr_encode(uint8_t *p, const char *magic)
{
    memcpy(p, magic, 8);
    hr__put_le32(p + 8, HR_LOG_VERSION);
    hr__put_le32(p + 12, 0);
}

void hr__log_idx_close_files(hr_seg_t *s)
{
    if (s->sg_idx_fd >= 0) {
        close(s->sg_idx_fd);
        s->sg_idx_fd = -1;
    }
    if (s->sg_tix_fd >= 0) {
        close(s->sg_tix_fd);
        s->sg_tix_fd = -1;
    }
}

int hr__log_idx_flush(hr_log_t *log, hr_seg_t *s)
{
    (void)log;
    if (s->sg_idx_fd < 0 || s->sg_tix_fd < 0 || s->sg_idx_flushed == s->sg_nidx) {
        return 0;
    }
    size_t n = s->sg_nidx - s->sg_idx_flushed;
    uint8_t *a = hr_xmalloc(2 * n * HR_IDX_ENT_SIZE);
    uint8_t *b = a + n * HR_IDX_ENT_SIZE;
    for (size_t i = 0; i < n; i++) {
        ent_encode(a + i * HR_IDX_ENT_SIZE, b + i * HR_IDX_ENT_SIZE, s,
                   &s->sg_idx[s->sg_idx_flushed + i]);
    }
    uint64_t off = HR_IDX_HDR_SIZE + (uint64_t)s->sg_idx_flushed * HR_IDX_ENT_SIZE;
    /* No fsync (invariant 8): a lost or torn entry is caught by its CRC or by checking it
     * against the data, and rebuilt. */
    int rc = hr_pwrite_all(s->sg_idx_fd, a, n * HR_IDX_ENT_SIZE, off, 0);
    if (rc == 0) {
        rc = hr_pwrite_all(s->sg_tix_fd, b, n * HR_IDX_ENT_SIZE, off, 0);
    }
    free(a);
    if (rc == 0) {
        s->sg_idx_flushed = s->sg_nidx;
    }
    return rc;
}

int hr__log_idx_rewrite(hr_log_t *log, hr_seg_t *s, int sealed)
{
    char name[64];
    size_t n = s->sg_nidx;
    size_t len = HR_IDX_HDR_SIZE + n * HR_IDX_ENT_SIZE;
    uint8_t *a = hr_xmalloc(2 * len + HR_IDX_TRAILER_SIZE);
    uint8_t *b = a + len + HR_IDX_TRAILER_SIZE;
    int rc = 0;
    file_hdr_encode(a, idx_magic);
    file_hdr_encode(b, tix_magic);
    for (size_t i = 0; i < n; i++) {
        size_t off = HR_IDX_HDR_SIZE + i * HR_IDX_ENT_SIZE;
        ent_encode(a + off, b + off, s, &s->sg_idx[i]);
    }
    size_t alen = len;
    if (sealed) {
        uint8_t *t = a + len;
        hr__put_le64(t, SEAL_MARK);
        hr__put_le64(t + 8, atomic_load(&s->sg_last));
        hr__put_le64(t + 16, atomic_load(&s->sg_last_time));
        hr__put_le32(t + 24, (uint32_t)atomic_load(&s->sg_end));
        hr__put_le32(t + 28, hr_crc32c(0, a, len + 28));
        alen += HR_IDX_TRAILER_SIZE;
    }
    hr__log_idx_close_files(s);
    hr__log_seg_name(name, sizeof(name), s->sg_base, "idx");
    int ifd = openat(log->lg_dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    hr__log_seg_name(name, sizeof(name), s->sg_base, "tix");
    int tfd = openat(log->lg_dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (ifd < 0 || tfd < 0) {
        rc = -errno;
        goto out;
    }
    /* Index files are hints (invariant 8): written without fsync. The .tix goes first so a
     * sealed .idx trailer never vouches for a .tix that was not written. */
    rc = hr_pwrite_all(tfd, b, len, 0, 0);
    if (rc == 0) {
        rc = hr_pwrite_all(ifd, a, alen, 0, 0);
    }
out:
    free(a);
    if (rc == 0 && !sealed) {
        s->sg_idx_fd = ifd;
        s->sg_tix_fd = tfd;
        s->sg_idx_flushed = n;
        return 0;
    }
    if (ifd >= 0) {
        close(ifd);
    }
    if (tfd >= 0) {
        close(tfd);
    }
    return rc;
}

/* Reads a whole small file at dirfd/name into a malloc'd buffer. */
static int slurp(int dirfd, const char *name, uint8_t **out, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    *out = NULL;
    *len = 0;
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    *out = hr_xmalloc((size_t)st.st_size + 1);
    rc = hr_pread_all(fd, *out, (size_t)st.st_size, 0, len);
out:
    close(fd);
    if (rc != 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int hr__log_idx_read_files(hr_log_t *log, hr_seg_t *s, int *sealed_ok)
{
    char name[64];
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    *sealed_ok = 0;
    s->sg_nidx = 0;
    hr__log_seg_name(name, sizeof(name), s->sg_base, "idx");
    int rc = slurp(log->lg_dirfd, name, &a, &alen);
    if (rc == 0) {
        hr__log_seg_name(name, sizeof(name), s->sg_base, "tix");
        rc = slurp(log->lg_dirfd, name, &b, &blen);
    }
    if (rc != 0 || alen < HR_IDX_HDR_SIZE || blen < HR_IDX_HDR_SIZE ||
        memcmp(a, idx_magic, 8) != 0 || memcmp(b, tix_magic, 8) != 0 ||
        hr__get_le32(a + 8) != HR_LOG_VERSION || hr__get_le32(b + 8) != HR_LOG_VERSION) {
        goto out; /* missing or unusable: no entries */
    }
    size_t na = (alen - HR_IDX_HDR_SIZE) / HR_IDX_ENT_SIZE;
    size_t nb = (blen - HR_IDX_HDR_SIZE) / HR_IDX_ENT_SIZE;
    for (size_t i = 0; i < na && i < nb; i++) {
        const uint8_t *e = a + HR_IDX_HDR_SIZE + i * HR_IDX_ENT_SIZE;
        const uint8_t *t = b + HR_IDX_HDR_SIZE + i * HR_IDX_ENT_SIZE;
        uint64_t seq = hr__get_le64(e);
        if (hr__get_le32(e + 12) != hr_crc32c(0, e, 12) ||
            hr__get_le32(t + 12) != hr_crc32c(0, t, 12) || seq == SEAL_MARK ||
            seq != s->sg_base + hr__get_le32(t + 8) ||
            (s->sg_nidx > 0 && (seq <= s->sg_idx[s->sg_nidx - 1].seq ||
                                hr__get_le64(t) < s->sg_idx[s->sg_nidx - 1].time_ns))) {
            break; /* entries after a bad one are not trusted either */
        }
        idx_append(s, seq, hr__get_le64(t), hr__get_le32(e + 8));
    }
    /* A sealed segment's .idx: header, entries, trailer, and nothing else. */
    size_t tpos = HR_IDX_HDR_SIZE + s->sg_nidx * HR_IDX_ENT_SIZE;
    if (alen == tpos + HR_IDX_TRAILER_SIZE && blen == tpos && s->sg_nidx > 0) {
        const uint8_t *t = a + tpos;
        struct stat st;
        if (hr__get_le64(t) == SEAL_MARK && hr__get_le32(t + 28) == hr_crc32c(0, a, tpos + 28) &&
            s->sg_fd >= 0 && fstat(s->sg_fd, &st) == 0 &&
            (uint64_t)st.st_size == hr__get_le32(t + 24) &&
            hr__get_le64(t + 8) == atomic_load(&s->sg_last) && s->sg_idx[0].seq == s->sg_base &&
            s->sg_idx[0].pos == HR_SEG_HDR_SIZE) {
            atomic_store(&s->sg_last_time, hr__get_le64(t + 16));
            *sealed_ok = 1;
        }
    }
out:
    free(a);
    free(b);
    return 0;
}

int hr__log_scan(hr_log_t *log, hr_seg_t *s, uint64_t file_end, hr_scan_t *sc)
{
    hr_cursor_t c;
    hr_rec_t r;
    uint64_t pos = 0;
    uint64_t seq = sc->seq, min_time = sc->time;
    uint64_t req_pos = sc->pos; /* start of the request being scanned */
    uint64_t last_idx_pos = s->sg_nidx ? s->sg_idx[s->sg_nidx - 1].pos : 0;
    int have_idx = s->sg_nidx > 0;
    uint32_t want_idx = 0, want_left = 0; /* continuation expected from the previous record */
    int in_req = 0;
    int rc = hr__log_cursor_init(&c, s->sg_fd, sc->pos, file_end);
    if (rc != 0) {
        return rc;
    }
    sc->end = sc->pos;
    sc->last_seq = sc->seq - 1;
    sc->last_time = sc->time;
    sc->stop = 1;
    for (;;) {
        rc = hr__log_cursor_next(&c, &r, &pos);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc == HR_ECORRUPT) {
            sc->stop = HR_ECORRUPT;
            rc = 0;
            break;
        }
        if (rc != 0) {
            goto out;
        }
        int ok = r.seq == seq && r.time_ns >= min_time;
        if (in_req) {
            ok = ok && r.req_idx == want_idx && r.req_left == want_left;
        } else {
            ok = ok && r.req_idx == 0;
        }
        if (!ok) {
            sc->stop = HR_ECORRUPT;
            break;
        }
        if (r.req_idx == 0) {
            req_pos = pos;
            if (!have_idx || pos - last_idx_pos >= log->lg_idx_interval) {
                idx_append(s, r.seq, r.time_ns, (uint32_t)pos);
                last_idx_pos = pos;
                have_idx = 1;
            }
        }
        seq++;
        min_time = r.time_ns;
        if (r.req_left == 0) {
            in_req = 0;
            sc->end = c.pos;
            sc->last_seq = r.seq;
            sc->last_time = r.time_ns;
        } else {
            in_req = 1;
            want_idx = r.req_idx + 1;
            want_left = r.req_left - 1;
        }
    }
    if (in_req && sc->stop == 1) {
        sc->stop = HR_ECORRUPT; /* the data ends inside a request */
    }
    (void)req_pos;
    /* Entries for an incomplete request at the end are dropped with it. */
    while (s->sg_nidx > 0 && s->sg_idx[s->sg_nidx - 1].seq > sc->last_seq) {
        s->sg_nidx--;
    }
out:
    hr__log_cursor_free(&c);
    return rc;
}

int hr__log_idx_ensure(hr_log_t *log, hr_seg_t *s)
{
    int sealed_ok = 0;
    struct stat st;
    hr_scan_t sc;
    int rc = 0;
    pthread_mutex_lock(&s->sg_mu);
    if (s->sg_loaded) {
        goto out;
    }
    rc = hr__log_seg_open_fd(log, s);
    if (rc != 0) {
        goto out;
    }
    rc = hr__log_idx_read_files(log, s, &sealed_ok);
    if (rc != 0) {
        goto out;
    }
    if (!sealed_ok) {
        /* Missing, stale or torn index of a sealed segment: rebuild it from the data. */
        s->sg_nidx = 0;
        if (fstat(s->sg_fd, &st) != 0) {
            rc = -errno;
            goto out;
        }
        sc = (hr_scan_t){.pos = HR_SEG_HDR_SIZE, .seq = s->sg_base, .time = 0};
        rc = hr__log_scan(log, s, (uint64_t)st.st_size, &sc);
        if (rc != 0) {
            goto out;
        }
        if (sc.end != (uint64_t)st.st_size || sc.last_seq != atomic_load(&s->sg_last)) {
            rc = HR_ECORRUPT; /* a sealed segment must hold exactly its records */
            goto out;
        }
        atomic_store(&s->sg_last_time, sc.last_time);
        (void)hr__log_idx_rewrite(log, s, 1);
    }
    s->sg_loaded = 1;
out:
    pthread_mutex_unlock(&s->sg_mu);
    return rc;
}

int hr__log_idx_find_seq(hr_seg_t *s, uint64_t seq, hr_idx_ent_t *out)
{
    pthread_mutex_lock(&s->sg_mu);
    size_t lo = 0, hi = s->sg_nidx; /* first entry with seq > target */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->sg_idx[mid].seq <= seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        *out = (hr_idx_ent_t){s->sg_base, 0, HR_SEG_HDR_SIZE};
    } else {
        *out = s->sg_idx[lo - 1];
    }
    pthread_mutex_unlock(&s->sg_mu);
    return 0;
}

int hr__log_idx_find_time(hr_seg_t *s, uint64_t t_ns, hr_idx_ent_t *out)
{
    pthread_mutex_lock(&s->sg_mu);
    size_t lo = 0, hi = s->sg_nidx; /* first entry with time >= t */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->sg_idx[mid].time_ns < t_ns) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    int rc = 0;
    if (lo == 0 && s->sg_nidx > 0) {
        *out = s->sg_idx[0]; /* the segment's first record is already >= t */
        rc = 1;
    } else if (lo == 0) {
        *out = (hr_idx_ent_t){s->sg_base, 0, HR_SEG_HDR_SIZE};
    } else {
        *out = s->sg_idx[lo - 1];
    }
    pthread_mutex_unlock(&s->sg_mu);
    return rc;
}
