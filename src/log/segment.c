/* SPDX-License-Identifier: MIT */
/*
 * Segment files of the bus log: naming, the segment header, record framing and checksums,
 * creating a segment (through a pre-zeroed temporary file and a rename), sealing it, and
 * zero-filling ahead of the writer. Called by the commit thread (create, seal, pre-zero),
 * by recovery at open, and by readers on any thread (the cursor; it only reads).
 *
 * NOTES ON THE DESIGN OF THE LOG FILES
 *
 * A log is a directory. It holds segment files named by the seq of their first record, as 20
 * decimal digits ("00000000000000000001.log"), a sparse seq index ("<base>.idx") and a time
 * index ("<base>.tix") beside each, an exclusive lock file ("LOCK") and at most one
 * pre-zeroed segment being prepared ("next.tmp"). All integers are little-endian and encoded
 * byte by byte; nothing is written as a raw struct.
 *
 * Segment file:
 *
 *    offset size  field
 *         0    8  magic "HRLOGSEG"
 *         8    4  format version (1)
 *        12    4  header size (32)
 *        16    8  base seq: the seq of the first record, equal to the number in the file name
 *        24    4  reserved, 0
 *        28    4  CRC32C of bytes [0, 28)
 *        32       records, back to back, then zeros (pre-zeroed space) up to the file size
 *
 * Record (32-byte header, then the payload):
 *
 *    offset size  field
 *         0    4  len: the whole record's size, header included (>= 32). 0 = end of data.
 *         4    4  CRC32C of bytes [0, 4) and [8, len): every byte of the record but itself
 *         8    8  seq
 *        16    8  ingest time, ns since the Unix epoch
 *        24    4  req_idx: position of this record within its append request (0 = first)
 *        28    4  req_left: records that follow it in the same request (0 = last)
 *        32       payload (len - 32 bytes, opaque to the log)
 *
 * A record is valid when len >= 32, it lies wholly inside the file, its CRC matches, its seq is
 * the previous record's seq + 1 (the base seq for the first), its time is not below the
 * previous record's, and its req_idx/req_left continue the previous record's request (or
 * start a new one with req_idx 0). The data of a segment ends at the first zero len field, at
 * the end of the file, or - in the last segment only, after a crash - at the first invalid
 * record. A request whose last record (req_left 0) is missing is cut off whole: an append
 * request is atomic.
 *
 * Index files (see index.c): a 16-byte header ("HRLOGIDX" or "HRLOGTIX", u32 version, u32 0),
 * then 16-byte entries, one per index point, in step in both files:
 *    .idx entry: u64 seq, u32 position, u32 CRC32C of the entry's first 12 bytes
 *    .tix entry: u64 time, u32 seq - base, u32 CRC32C of the entry's first 12 bytes
 * An index point is the first record of a request that starts at least the index interval
 * (segment size / 64, at most 4 KiB) after the previous point; the first record of every
 * segment is one. A sealed segment's .idx ends with a 32-byte trailer:
 *    u64 0xFFFFFFFFFFFFFFFF, u64 last seq, u64 last record's time, u32 data size (the
 *    segment file's size), u32 CRC32C of every preceding byte of the .idx file.
 *
 * INVARIANTS
 *
 * 1. Seqs start at 1 and are gap-free across segments: a segment's base seq is the previous
 *    segment's last seq + 1. A seq is never reused, also after retention deleted segments,
 *    because the active (last) segment is never deleted and its name carries the next base.
 * 2. Record times never decrease within a log (time = max(previous time, wall clock)).
 * 3. Every segment but the last is sealed: truncated to exactly its records and fdatasync'd
 *    before the next segment is created. So recovery scans only the last segment.
 * 4. A named segment file always has a durable, valid header: the header is written and
 *    fdatasync'd in next.tmp before the rename, and the directory is fsync'd after it.
 * 5. An append request's records lie in one segment (a request that does not fit the active
 *    segment's space starts a new one) and are written by one pwritev.
 * 6. Nothing is written past a failed write: after a write or fdatasync error the writer
 *    truncates the partial write away and stays failed until the log is reopened.
 * 7. Readers see only committed records: seq <= the published last committed seq, bytes <
 *    the segment's published committed end. Both are published after the write (and, under
 *    fsync=always, after the fdatasync) that covers them.
 * 8. Index files are hints: they are written lazily and never fsync'd, and every entry is
 *    checked against the data (last segment) or against the trailer's size and CRC (sealed
 *    segments) before it is trusted; a bad index is rebuilt from the data.
 *
 * STATES OF A SEGMENT
 *
 *    next.tmp (pre-zeroing) --header+fdatasync+rename+dir fsync--> ACTIVE (appends, zero-fill
 *    ahead) --truncate+fdatasync+trailer--> SEALED (read-only) --retention: unlink+dir fsync-->
 *    DELETED (freed when the last reader drops its ref)
 *
 * STATES OF THE WRITER (the commit thread)
 *
 *    OPEN --write/fdatasync error--> FAILED (submits fail with HR_EFAILED until reopened)
 *    OPEN or FAILED --hr_log_close--> CLOSING (drains the queue) --> CLOSED
 */
#include "log/log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/crc32c.h"
#include "util/err.h"
#include "util/fileio.h"

static const char seg_magic[8] = {'H', 'R', 'L', 'O', 'G', 'S', 'E', 'G'};

void hr__log_seg_name(char *out, size_t n, uint64_t base, const char *ext)
{
    snprintf(out, n, "%020" PRIu64 ".%s", base, ext);
}

hr_seg_t *hr__log_seg_new(uint64_t base)
{
    hr_seg_t *s = hr_xcalloc(1, sizeof(*s));
    s->sg_base = base;
    atomic_init(&s->sg_last, base - 1);
    atomic_init(&s->sg_end, HR_SEG_HDR_SIZE);
    atomic_init(&s->sg_last_time, 0);
    atomic_init(&s->sg_refs, 1);
    atomic_init(&s->sg_sealed, 0);
    pthread_mutex_init(&s->sg_mu, NULL);
    s->sg_fd = -1;
    s->sg_idx_fd = -1;
    s->sg_tix_fd = -1;
    return s;
}

void hr__log_seg_ref(hr_seg_t *s)
{
    atomic_fetch_add(&s->sg_refs, 1);
}

void hr__log_seg_unref(hr_seg_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->sg_refs, 1) != 1) {
        return;
    }
    if (s->sg_fd >= 0) {
        close(s->sg_fd);
    }
    hr__log_idx_close_files(s);
    free(s->sg_idx);
    pthread_mutex_destroy(&s->sg_mu);
    free(s);
}

int hr__log_seg_open_fd(hr_log_t *log, hr_seg_t *s)
{
    if (s->sg_fd >= 0) {
        return 0;
    }
    char name[64];
    hr__log_seg_name(name, sizeof(name), s->sg_base, "log");
    int fd = openat(log->lg_dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    s->sg_fd = fd;
    return 0;
}

void hr__log_seg_hdr_encode(uint8_t *hdr, uint64_t base)
{
    memcpy(hdr, seg_magic, 8);
    hr__put_le32(hdr + 8, HR_LOG_VERSION);
    hr__put_le32(hdr + 12, HR_SEG_HDR_SIZE);
    hr__put_le64(hdr + 16, base);
    hr__put_le32(hdr + 24, 0);
    hr__put_le32(hdr + 28, hr_crc32c(0, hdr, 28));
}

int hr__log_seg_hdr_check(const uint8_t *hdr, size_t n, uint64_t base)
{
    if (n < HR_SEG_HDR_SIZE || memcmp(hdr, seg_magic, 8) != 0 ||
        hr__get_le32(hdr + 28) != hr_crc32c(0, hdr, 28)) {
        return HR_ECORRUPT;
    }
    if (hr__get_le32(hdr + 8) != HR_LOG_VERSION || hr__get_le32(hdr + 12) != HR_SEG_HDR_SIZE) {
        return HR_EINVAL; /* a format this build does not know */
    }
    return hr__get_le64(hdr + 16) == base ? 0 : HR_ECORRUPT;
}

void hr__log_rec_hdr_encode(uint8_t *hdr, size_t plen, uint64_t seq, uint64_t time_ns,
                            uint32_t req_idx, uint32_t req_left, const uint8_t *payload)
{
    hr__put_le32(hdr, (uint32_t)(HR_REC_HDR_SIZE + plen));
    hr__put_le64(hdr + 8, seq);
    hr__put_le64(hdr + 16, time_ns);
    hr__put_le32(hdr + 24, req_idx);
    hr__put_le32(hdr + 28, req_left);
    uint32_t c = hr_crc32c(0, hdr, 4);
    c = hr_crc32c(c, hdr + 8, HR_REC_HDR_SIZE - 8);
    c = hr_crc32c(c, payload, plen);
    hr__put_le32(hdr + 4, c);
}

/* Decodes the record at p (avail bytes available, at least 4). Returns 0, 1 for a zero length
 * field (end of data), or HR_ECORRUPT. */
int hr__log_rec_decode(const uint8_t *p, size_t avail, hr_rec_t *r)
{
    uint32_t len = hr__get_le32(p);
    if (len == 0) {
        return 1;
    }
    if (len < HR_REC_HDR_SIZE || len > avail) {
        return HR_ECORRUPT;
    }
    uint32_t c = hr_crc32c(0, p, 4);
    c = hr_crc32c(c, p + 8, len - 8);
    if (c != hr__get_le32(p + 4)) {
        return HR_ECORRUPT;
    }
    r->len = len;
    r->seq = hr__get_le64(p + 8);
    r->time_ns = hr__get_le64(p + 16);
    r->req_idx = hr__get_le32(p + 24);
    r->req_left = hr__get_le32(p + 28);
    r->payload = p + HR_REC_HDR_SIZE;
    r->plen = len - HR_REC_HDR_SIZE;
    return 0;
}

#define CURSOR_BUF (256u << 10)

int hr__log_cursor_init(hr_cursor_t *c, int fd, uint64_t pos, uint64_t end)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->pos = pos;
    c->end = end;
    c->boff = pos;
    c->cap = CURSOR_BUF;
    c->buf = malloc(c->cap);
    return c->buf ? 0 : HR_ENOMEM;
}

void hr__log_cursor_free(hr_cursor_t *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* Makes [pos, pos + n) available in the buffer (n <= end - pos). */
static int cursor_fill(hr_cursor_t *c, uint64_t pos, size_t n)
{
    if (pos >= c->boff && pos + n <= c->boff + c->blen) {
        return 0;
    }
    if (n > c->cap) {
        uint8_t *b = realloc(c->buf, n);
        if (b == NULL) {
            return HR_ENOMEM;
        }
        c->buf = b;
        c->cap = n;
    }
    size_t want = c->end - pos < c->cap ? (size_t)(c->end - pos) : c->cap;
    size_t got = 0;
    c->boff = pos;
    c->blen = 0;
    int rc = hr_pread_all(c->fd, c->buf, want, pos, &got);
    if (rc != 0) {
        return rc;
    }
    c->blen = got;
    return got < n ? HR_ECORRUPT : 0; /* the file is shorter than its data end */
}

int hr__log_cursor_next(hr_cursor_t *c, hr_rec_t *r, uint64_t *rec_pos)
{
    if (c->pos >= c->end) {
        return 1;
    }
    uint64_t left = c->end - c->pos;
    size_t n = left < HR_REC_HDR_SIZE ? (size_t)left : HR_REC_HDR_SIZE;
    int rc = cursor_fill(c, c->pos, n);
    if (rc != 0) {
        return rc;
    }
    const uint8_t *p = c->buf + (c->pos - c->boff);
    if (n < 4) {
        for (size_t i = 0; i < n; i++) {
            if (p[i] != 0) {
                return HR_ECORRUPT;
            }
        }
        return 1;
    }
    uint32_t len = hr__get_le32(p);
    if (len == 0) {
        return 1;
    }
    if (len < HR_REC_HDR_SIZE || len > left) {
        return HR_ECORRUPT;
    }
    rc = cursor_fill(c, c->pos, len);
    if (rc != 0) {
        return rc;
    }
    rc = hr__log_rec_decode(c->buf + (c->pos - c->boff), len, r);
    if (rc != 0) {
        return rc < 0 ? rc : HR_ECORRUPT;
    }
    if (rec_pos) {
        *rec_pos = c->pos;
    }
    c->pos += len;
    return 0;
}

static int open_index_files(hr_log_t *log, hr_seg_t *s)
{
    int rc = hr__log_idx_rewrite(log, s, 0);
    return rc;
}

/* Opens next.tmp for zero-filling if it is not open yet. */
static int next_open(hr_log_t *log)
{
    if (log->lg_next_fd >= 0) {
        return 0;
    }
    int fd = openat(log->lg_dirfd, HR_NEXT_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return -errno;
    }
    log->lg_next_fd = fd;
    log->lg_next_zeroed = 0;
    return 0;
}

int hr__log_seg_create(hr_log_t *log, uint64_t base, hr_seg_t **out)
{
    char name[64];
    uint8_t hdr[HR_SEG_HDR_SIZE];
    hr_seg_t *s = NULL;
    int rc = next_open(log);
    if (rc != 0) {
        goto err;
    }
    int fd = log->lg_next_fd;
    hr__log_seg_hdr_encode(hdr, base);
    rc = hr_pwrite_all(fd, hdr, sizeof(hdr), 0, 0);
    if (rc == 0) {
        /* Why: invariant 4 - the header must be durable before the file gets its name, so a
         * named segment never has a torn header. */
        rc = hr_fdatasync(fd);
    }
    hr__log_seg_name(name, sizeof(name), base, "log");
    if (rc == 0 && renameat(log->lg_dirfd, HR_NEXT_TMP, log->lg_dirfd, name) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        /* Why: the new name must survive a crash before any record in it is acknowledged. */
        rc = hr_fsync_dir(log->lg_dirfd);
    }
    if (rc != 0) {
        close(fd);
        log->lg_next_fd = -1;
        unlinkat(log->lg_dirfd, HR_NEXT_TMP, 0);
        goto err;
    }
    s = hr__log_seg_new(base);
    s->sg_fd = fd;
    s->sg_loaded = 1;
    s->sg_zeroed = log->lg_next_zeroed > HR_SEG_HDR_SIZE ? log->lg_next_zeroed : HR_SEG_HDR_SIZE;
    log->lg_next_fd = -1;
    log->lg_next_zeroed = 0;
    rc = open_index_files(log, s);
    if (rc != 0) {
        /* The segment exists and is valid; a missing index is rebuilt at the next open. */
        rc = 0;
    }
    *out = s;
    return 0;
err:
    return rc;
}

int hr__log_seg_seal(hr_log_t *log, hr_seg_t *s)
{
    uint64_t end = atomic_load(&s->sg_end);
    struct stat st;
    int rc = 0;
    if (fstat(s->sg_fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if ((uint64_t)st.st_size != end && ftruncate(s->sg_fd, (off_t)end) != 0) {
        /* Why: a sealed segment holds exactly its records, so its size is the data size the
         * .idx trailer vouches for, and the pre-zeroed space is given back. */
        rc = -errno;
        goto out;
    }
    /* Why: invariant 3 - every segment but the last is durable, so that recovery only has to
     * scan the last one and the next segment never exists while this one's tail could tear. */
    rc = hr_fdatasync(s->sg_fd);
    if (rc != 0) {
        goto out;
    }
    atomic_store(&s->sg_sealed, 1);
    /* The trailer is written without fsync: if it is lost, the index is rebuilt by one scan
     * of this segment when it is next used. */
    (void)hr__log_idx_flush(log, s);
    (void)hr__log_idx_rewrite(log, s, 1);
    hr__log_idx_close_files(s);
out:
    return rc;
}

/* Zero-fills one chunk at `off` in `fd` and syncs it. */
static int zero_chunk(hr_log_t *log, int fd, uint64_t off, size_t n)
{
    int rc = hr_pwrite_all(fd, log->lg_zeros, n, off, 0);
    if (rc == 0) {
        /* Why: make the file size and block allocation durable now, off the critical path,
         * so the fdatasync after a later append flushes only data blocks (no metadata). This
         * is the pre-zeroing that cut sync latency by about a third (DESIGN.md §4). */
        rc = hr_fdatasync(fd);
    }
    return rc;
}

_Atomic int hr__log_test_no_prezero;

int hr__log_prezero_step(hr_log_t *log)
{
    if (atomic_load(&hr__log_test_no_prezero)) {
        return 0;
    }
    hr_seg_t *s = log->lg_active;
    uint64_t seg_bytes = log->lg_opts.segment_bytes;
    uint64_t end = atomic_load(&s->sg_end);
    uint64_t target = end + HR_PREZERO_AHEAD < seg_bytes ? end + HR_PREZERO_AHEAD : seg_bytes;
    if (s->sg_zeroed < target) {
        uint64_t off = s->sg_zeroed > end ? s->sg_zeroed : end;
        size_t n = target - off < HR_PREZERO_CHUNK ? (size_t)(target - off) : HR_PREZERO_CHUNK;
        int rc = zero_chunk(log, s->sg_fd, off, n);
        if (rc != 0) {
            s->sg_zeroed = UINT64_MAX; /* give up on this segment; appends still work */
            return rc;
        }
        s->sg_zeroed = off + n;
        /* The sync also covered any records written under fsync=interval/never. */
        log->lg_dirty = 0;
        log->lg_last_sync_ns = hr_mono_ns();
        return 1;
    }
    /* The active segment is zero-filled to its end: prepare the next one. */
    uint64_t next_target = HR_PREZERO_AHEAD < seg_bytes ? HR_PREZERO_AHEAD : seg_bytes;
    if (s->sg_zeroed != UINT64_MAX && end + HR_PREZERO_AHEAD >= seg_bytes &&
        (log->lg_next_fd < 0 || log->lg_next_zeroed < next_target)) {
        int rc = next_open(log);
        if (rc != 0) {
            return rc;
        }
        uint64_t off = log->lg_next_zeroed;
        size_t n =
            next_target - off < HR_PREZERO_CHUNK ? (size_t)(next_target - off) : HR_PREZERO_CHUNK;
        rc = zero_chunk(log, log->lg_next_fd, off, n);
        if (rc != 0) {
            return rc;
        }
        log->lg_next_zeroed = off + n;
        return 1;
    }
    return 0;
}
