/* SPDX-License-Identifier: MIT */
/*
 * The bus log: an append-only, totally ordered sequence of records in segment files, each
 * record CRC32C-checked, with sparse seq and time indexes, group commit on a commit thread,
 * crash recovery that truncates a torn tail, and retention by age and size (whole segments).
 *
 * Threads: hr_log_submit() may be called from any thread. One commit thread per log gathers
 * queued requests, calls the admit hook for each (in order), writes the admitted records,
 * makes them durable per the fsync policy, then calls each request's done() callback and the
 * commit listener. Reads (hr_log_read, hr_log_seek_time, hr_log_stats) may run on any thread
 * concurrently with appends and see only committed records.
 *
 * Payloads are opaque bytes to the log (the broker stores hr_ce_encode() output).
 */
#ifndef HR_LOG_LOG_H
#define HR_LOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct hr_log hr_log_t;
typedef struct hr_log_req hr_log_req_t;

typedef enum hr_fsync_policy {
    HR_FSYNC_ALWAYS = 0,   /* done() only after fdatasync covered the records (default) */
    HR_FSYNC_INTERVAL = 1, /* done() after write(); fdatasync at least every interval */
    HR_FSYNC_NEVER = 2,    /* done() after write(); the OS syncs when it likes */
} hr_fsync_policy_t;

/* Called on the commit thread, in submission order, just before `req` would be written, with
 * the seq its first record would get. The hook decides atomically with the append: it may
 * return 0 to append, or a negative code to append nothing (req->status gets that code and
 * done() is still called). It may replace req->recs / req->n_recs with a subset whose memory
 * it owns (n_recs == 0 appends nothing, status 0). Used for dedup and, later, expected stream
 * versions. Must not block. */
typedef int (*hr_log_admit_fn)(void *arg, hr_log_req_t *req, uint64_t next_seq);

/* Called on the commit thread after a group of records became committed, with the new last
 * committed seq. Must not block (it wakes readers, e.g. SSE streams and the dispatcher). */
typedef void (*hr_log_commit_fn)(void *arg, uint64_t last_seq);

typedef struct hr_log_opts {
    hr_fsync_policy_t fsync;
    uint32_t fsync_interval_ms; /* for HR_FSYNC_INTERVAL; default 100 */
    uint64_t segment_bytes;     /* roll size; default 128 MiB */
    uint64_t retention_age_ms;  /* 0 = keep forever */
    uint64_t retention_bytes;   /* 0 = no size limit */
    uint32_t max_batch_records; /* max records per group commit; default 4096 */
    hr_log_admit_fn admit;      /* optional */
    void *admit_arg;
    hr_log_commit_fn on_commit; /* optional */
    void *commit_arg;
} hr_log_opts_t;

/* Fills `o` with the defaults above. */
void hr_log_opts_default(hr_log_opts_t *o);

/* An append request. The caller owns it and everything it points to until done() runs. */
struct hr_log_req {
    /* Set by the caller. */
    const hr_iov_t *recs; /* payloads, appended as consecutive records */
    size_t n_recs;
    void (*done)(hr_log_req_t *req); /* called once, on the commit thread; must not block */
    void *user;
    /* Set by the log before done(). */
    int status;         /* 0, or a negative code (admit's code, HR_EFAILED, -ENOSPC, ...) */
    uint64_t first_seq; /* seq of recs[0] when status == 0 and n_recs > 0 */
    uint64_t time_ns;   /* ingest time stamped on these records (wall clock, never decreasing) */
    /* Internal. */
    hr_log_req_t *next;
};

/* Opens (creating if needed) the log in directory `dir`, recovers it (validates the tail,
 * truncates a torn write, rebuilds missing or stale indexes) and starts its commit thread.
 * `opts` is copied. Start-up time does not depend on the log's size. */
int hr_log_open(const char *dir, const hr_log_opts_t *opts, hr_log_t **out);

/* Drains queued requests, stops the commit thread, syncs and closes files. NULL is a no-op. */
void hr_log_close(hr_log_t *log);

/* Changes fsync policy and retention at run time (segment size and hooks stay). */
void hr_log_configure(hr_log_t *log, const hr_log_opts_t *opts);

/* Queues `req`. Returns 0 (done() will be called exactly once) or HR_EFAILED / HR_ECLOSED
 * (done() will not be called). Records larger than the segment size are rejected with
 * HR_ETOOBIG via done(). */
int hr_log_submit(hr_log_t *log, hr_log_req_t *req);

/* True when appends are queued for the commit thread (a hint: it may change at once). Any
 * thread. */
bool hr_log_busy(hr_log_t *log);

/* One record as read back. */
typedef struct hr_log_entry {
    uint64_t seq;
    uint64_t time_ns;
    const uint8_t *payload; /* points into the owning hr_log_batch_t */
    size_t len;
} hr_log_entry_t;

typedef struct hr_log_batch {
    hr_log_entry_t *ents;
    size_t n;
    hr_buf_t buf; /* owns payload bytes */
    size_t cap;   /* internal */
} hr_log_batch_t;

#define HR_LOG_BATCH_INIT                                                                          \
    {                                                                                              \
        NULL, 0, HR_BUF_INIT, 0                                                                    \
    }

/* Reads committed records with seq >= from_seq (from_seq below the first retained seq starts
 * at the first retained one), at most max_n records and, beyond the first record, at most
 * max_bytes of payload. Replaces the contents of `out` (reusable across calls). Returns 0
 * (out->n may be 0 at the end of the log) or a negative code. */
int hr_log_read(hr_log_t *log, uint64_t from_seq, size_t max_n, size_t max_bytes,
                hr_log_batch_t *out);
void hr_log_batch_free(hr_log_batch_t *b);

/* Returns the seq of the first committed record whose time_ns >= t, or last_seq + 1 if none. */
uint64_t hr_log_seek_time(hr_log_t *log, uint64_t t_ns);

typedef struct hr_log_stats {
    uint64_t first_seq; /* first retained seq; last_seq + 1 when the log is empty */
    uint64_t last_seq;  /* last committed seq; 0 when nothing was ever appended */
    uint64_t bytes;     /* bytes in segment files */
    uint64_t count;     /* retained records: last_seq - first_seq + 1 */
    uint32_t segments;
    int failed; /* 1 when the writer is in the sticky failed state */
} hr_log_stats_t;

void hr_log_stats(hr_log_t *log, hr_log_stats_t *out);

/* Blocks until last committed seq > after_seq, or timeout_ms passes, or the log closes.
 * Returns the last committed seq. */
uint64_t hr_log_wait(hr_log_t *log, uint64_t after_seq, int timeout_ms);

/* Applies retention now (also done by the commit thread periodically). Returns segments
 * deleted or a negative code. */
int hr_log_enforce_retention(hr_log_t *log);

/* Debug check of the in-memory state (segments gap-free, index entries ordered and inside
 * their segment). Returns 0 or HR_ECORRUPT. Any thread; for tests and debug builds. */
int hr_log_validate(hr_log_t *log);

#endif
