/* SPDX-License-Identifier: MIT */
/*
 * Internals of the bus log shared by log.c (API, commit thread, reads), segment.c (files and
 * record framing), index.c (sparse seq/time indexes), recover.c (open-time recovery) and
 * retention.c. The byte layout, invariants and state diagram are documented at the top of
 * segment.c and in docs/architecture.md ("Storage: the bus log").
 */
#ifndef HR_LOG_LOG_INT_H
#define HR_LOG_LOG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "log/log.h"

#define HR_LOG_VERSION 1u
#define HR_SEG_HDR_SIZE 32u         /* segment file header */
#define HR_REC_HDR_SIZE 32u         /* record header; the payload follows */
#define HR_IDX_HDR_SIZE 16u         /* .idx / .tix file header */
#define HR_IDX_ENT_SIZE 16u         /* one .idx or .tix entry */
#define HR_IDX_TRAILER_SIZE 32u     /* seal trailer at the end of a sealed segment's .idx */
#define HR_IDX_MAX_INTERVAL 4096u   /* at most this many data bytes between index entries */
#define HR_PREZERO_CHUNK (1u << 20) /* zero-fill unit */
#define HR_PREZERO_AHEAD (8u << 20) /* keep this much zero-filled space ahead of the writer */
#define HR_SEG_MIN_BYTES 256u
#define HR_SEG_MAX_BYTES 0xffffffffu /* positions are stored as u32 */
#define HR_NEXT_TMP "next.tmp"

/* Little-endian encoding helpers: the on-disk format never depends on host byte order. */
static inline void hr__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void hr__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint32_t hr__get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t hr__get_le64(const uint8_t *p)
{
    return (uint64_t)hr__get_le32(p) | (uint64_t)hr__get_le32(p + 4) << 32;
}

/* One sparse index entry in memory: the seq and time of a request's first record and the
 * record's byte position in its segment. */
typedef struct hr_idx_ent {
    uint64_t seq;
    uint64_t time_ns;
    uint32_t pos;
} hr_idx_ent_t;

/* A decoded record (payload points into the buffer it was decoded from). */
typedef struct hr_rec {
    uint32_t len; /* whole record, header included */
    uint64_t seq;
    uint64_t time_ns;
    uint32_t req_idx;  /* position of this record within its append request */
    uint32_t req_left; /* records that follow it in the same request */
    const uint8_t *payload;
    size_t plen;
} hr_rec_t;

/* One segment. Lifetime: referenced by the log's segment list (one ref) and by each reader
 * using it; freed by the last hr__log_seg_unref(). Retention removes it from the list and
 * unlinks its files; open fds keep the data readable for readers that still hold a ref. */
typedef struct hr_seg {
    uint64_t sg_base;              /* first seq, from the file name; immutable */
    _Atomic uint64_t sg_last;      /* last committed seq in it; sg_base - 1 when empty */
    _Atomic uint64_t sg_end;       /* end of committed data in bytes (file size once sealed) */
    _Atomic uint64_t sg_last_time; /* time of the last record; 0 until known */
    _Atomic int sg_refs;
    _Atomic int sg_sealed;

    pthread_mutex_t sg_mu; /* guards the fields below (never held across another lock) */
    int sg_fd;             /* data file; -1 until opened */
    int sg_loaded;         /* sg_idx holds the whole index */
    hr_idx_ent_t *sg_idx;
    size_t sg_nidx, sg_capidx;

    /* Commit thread only (the active segment). */
    uint64_t sg_zeroed;    /* [0, sg_zeroed) is written or zero-filled and synced */
    size_t sg_idx_flushed; /* entries already written to the index files */
    int sg_idx_fd, sg_tix_fd;
} hr_seg_t;

struct hr_log {
    char *lg_dir;
    int lg_dirfd;
    int lg_lockfd;
    hr_log_opts_t lg_opts; /* as opened; the run-time settable fields live below */
    uint32_t lg_idx_interval;
    _Atomic int lg_fsync;
    _Atomic uint32_t lg_fsync_interval_ms;
    _Atomic uint64_t lg_ret_age_ms;
    _Atomic uint64_t lg_ret_bytes;

    /* The segment list, oldest first; the last one is the active segment. */
    pthread_mutex_t lg_seg_mu;
    hr_seg_t **lg_segs;
    size_t lg_nsegs, lg_capsegs;
    _Atomic uint64_t lg_bytes; /* committed data bytes in all segments */
    pthread_mutex_t lg_ret_mu; /* one retention pass at a time */

    /* Submit queue. */
    pthread_mutex_t lg_q_mu;
    pthread_cond_t lg_q_cv;
    hr_log_req_t *lg_q_head, *lg_q_tail;
    atomic_bool lg_q_busy; /* lg_q_head != NULL, readable without lg_q_mu (hr_log_busy) */
    int lg_closing;
    _Atomic int lg_failed;

    /* Committed state, for readers and waiters. */
    pthread_mutex_t lg_w_mu;
    pthread_cond_t lg_w_cv;
    _Atomic uint64_t lg_committed;
    int lg_closed;

    /* Commit thread only. */
    pthread_t lg_thr;
    hr_seg_t *lg_active;
    uint64_t lg_next_seq;
    uint64_t lg_last_time;
    int lg_dirty; /* written but not yet fdatasync'd (interval/never) */
    uint64_t lg_last_sync_ns;
    _Atomic uint64_t lg_next_retention_ns;
    int lg_prezero_ok; /* 0 after a pre-zero step found nothing to do or failed */
    int lg_next_fd;    /* prepared, pre-zeroed next segment (HR_NEXT_TMP) or -1 */
    uint64_t lg_next_zeroed;
    uint8_t *lg_zeros; /* HR_PREZERO_CHUNK zero bytes */
};

/* segment.c */
void hr__log_seg_name(char *out, size_t n, uint64_t base, const char *ext);
hr_seg_t *hr__log_seg_new(uint64_t base);
void hr__log_seg_ref(hr_seg_t *s);
void hr__log_seg_unref(hr_seg_t *s);
int hr__log_seg_open_fd(hr_log_t *log, hr_seg_t *s); /* under sg_mu */
void hr__log_seg_hdr_encode(uint8_t *hdr, uint64_t base);
int hr__log_seg_hdr_check(const uint8_t *hdr, size_t n, uint64_t base);
void hr__log_rec_hdr_encode(uint8_t *hdr, size_t plen, uint64_t seq, uint64_t time_ns,
                            uint32_t req_idx, uint32_t req_left, const uint8_t *payload);
int hr__log_rec_decode(const uint8_t *p, size_t avail, hr_rec_t *r);
int hr__log_seg_create(hr_log_t *log, uint64_t base, hr_seg_t **out);
int hr__log_seg_seal(hr_log_t *log, hr_seg_t *s);
int hr__log_prezero_step(hr_log_t *log);
/* Test hook: when set, the commit thread does no pre-zeroing (so that injected fdatasync
 * failures hit the append path deterministically). */
extern _Atomic int hr__log_test_no_prezero;

/* A forward reader over one segment's records in [pos, end). */
typedef struct hr_cursor {
    int fd;
    uint64_t pos, end;
    uint8_t *buf;
    size_t cap;
    uint64_t boff; /* file offset of buf[0] */
    size_t blen;
} hr_cursor_t;
int hr__log_cursor_init(hr_cursor_t *c, int fd, uint64_t pos, uint64_t end);
/* Returns 0 with *r filled (r->payload valid until the next call), 1 at the end (pos == end or
 * a zero length field), HR_ECORRUPT for a torn or CRC-bad record, or -errno. */
int hr__log_cursor_next(hr_cursor_t *c, hr_rec_t *r, uint64_t *rec_pos);
void hr__log_cursor_free(hr_cursor_t *c);

/* index.c */
void hr__log_idx_push(hr_seg_t *s, uint64_t seq, uint64_t time_ns, uint32_t pos);
int hr__log_idx_flush(hr_log_t *log, hr_seg_t *s);
int hr__log_idx_rewrite(hr_log_t *log, hr_seg_t *s, int sealed);
int hr__log_idx_read_files(hr_log_t *log, hr_seg_t *s, int *sealed_ok);
int hr__log_idx_ensure(hr_log_t *log, hr_seg_t *s); /* lazy load of a sealed segment */
int hr__log_idx_find_seq(hr_seg_t *s, uint64_t seq, hr_idx_ent_t *out);
/* Finds the last entry with time < t_ns. Returns 1 (and the first entry) when the segment's
 * first record already has time >= t_ns, else 0. */
int hr__log_idx_find_time(hr_seg_t *s, uint64_t t_ns, hr_idx_ent_t *out);

/* Scans records from sc->pos (expecting seq sc->seq and time >= sc->time) to the end of the
 * data, validating each record and request, and appends index points to s->sg_idx (the caller
 * holds sg_mu or owns s). Fills end/last_seq/last_time for the last complete request; stop is
 * 1 when zeros or the file end stopped it, HR_ECORRUPT when an invalid record did. Returns 0
 * or an I/O error. */
typedef struct hr_scan {
    uint64_t pos, seq, time;
    uint64_t end, last_seq, last_time;
    int stop;
} hr_scan_t;
int hr__log_scan(hr_log_t *log, hr_seg_t *s, uint64_t file_end, hr_scan_t *sc);
void hr__log_idx_close_files(hr_seg_t *s);

/* recover.c */
int hr__log_recover(hr_log_t *log);

/* retention.c */
int hr__log_retention(hr_log_t *log);

/* log.c */
void hr__log_segs_append(hr_log_t *log, hr_seg_t *s);

#endif
