/* SPDX-License-Identifier: MIT */
/*
 * The bus log's public API (log.h): open/close, the submit queue, the commit thread with
 * group commit and the fsync policies, reads, time seeks, stats and waiting for new records.
 * The on-disk layout, invariants and state diagrams are at the top of segment.c.
 *
 * Threads. Any thread may submit, read, seek, wait and ask for stats. One commit thread per
 * log owns the write side: it takes every queued request (up to max_batch_records records),
 * and for each, in order, calls the admit hook with the seq the request's first record would
 * get - nothing else assigns seqs, so the hook's decision is atomic with the append - then
 * writes the admitted records of the group with one pwritev, fdatasyncs per policy,
 * publishes the new last committed seq, calls every done() and the commit listener once.
 * When the queue is empty it zero-fills the active segment ahead of the writer, syncs under
 * fsync=interval, and runs retention.
 *
 * Locks (never nested, except lg_ret_mu -> lg_seg_mu -> sg_mu, in that order):
 *   lg_q_mu   the submit queue and lg_closing
 *   lg_w_mu   waiters on lg_committed (itself an atomic, read lock-free by readers)
 *   lg_seg_mu the segment list (readers take a ref on a segment and drop the lock)
 *   sg_mu     one segment's in-memory index and lazily opened fd
 */
#include "log/log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fileio.h"

#define RETENTION_PERIOD_NS (5ull * 1000000000u)
#define STAGE_COPY_MAX 2048u /* payloads up to this size are copied next to their header */
#define IDX_FLUSH_ENTRIES 256u

/* One group being built on the commit thread: records for the active segment. */
typedef struct piece {
    const uint8_t *ext; /* payload memory of the request, or NULL: [off, off+len) of stage */
    size_t off, len;
} piece_t;

typedef struct group {
    uint8_t *stage;
    size_t stage_len, stage_cap;
    piece_t *pieces;
    size_t npieces, cappieces;
    hr_iov_t *iov;
    size_t capiov;
    hr_idx_ent_t *ents;
    size_t nents, capents;
    hr_log_req_t *done_head, *done_tail; /* every request of the group, in order */
    uint64_t first_seq, bytes;
    size_t nrec;
    uint64_t time_ns;
    int have_time;
    int idx_have;
    uint64_t idx_last_pos;
} group_t;

void hr_log_opts_default(hr_log_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->fsync = HR_FSYNC_ALWAYS;
    o->fsync_interval_ms = 100;
    o->segment_bytes = 128u << 20;
    o->max_batch_records = 4096;
}

void hr__log_segs_append(hr_log_t *log, hr_seg_t *s)
{
    pthread_mutex_lock(&log->lg_seg_mu);
    if (log->lg_nsegs == log->lg_capsegs) {
        log->lg_capsegs = log->lg_capsegs ? log->lg_capsegs * 2 : 16;
        log->lg_segs = hr_xrealloc(log->lg_segs, log->lg_capsegs * sizeof(*log->lg_segs));
    }
    log->lg_segs[log->lg_nsegs++] = s;
    pthread_mutex_unlock(&log->lg_seg_mu);
}

static void store_config(hr_log_t *log, const hr_log_opts_t *o)
{
    atomic_store(&log->lg_fsync, (int)o->fsync);
    atomic_store(&log->lg_fsync_interval_ms, o->fsync_interval_ms ? o->fsync_interval_ms : 100);
    atomic_store(&log->lg_ret_age_ms, o->retention_age_ms);
    atomic_store(&log->lg_ret_bytes, o->retention_bytes);
}

void hr_log_configure(hr_log_t *log, const hr_log_opts_t *opts)
{
    store_config(log, opts);
    pthread_mutex_lock(&log->lg_q_mu);
    log->lg_next_retention_ns = 0; /* apply new retention soon */
    pthread_cond_signal(&log->lg_q_cv);
    pthread_mutex_unlock(&log->lg_q_mu);
}

/* ---- commit thread ---------------------------------------------------------------------- */

static void done_add(group_t *g, hr_log_req_t *req)
{
    req->next = NULL;
    if (g->done_tail) {
        g->done_tail->next = req;
    } else {
        g->done_head = req;
    }
    g->done_tail = req;
}

static void publish(hr_log_t *log, uint64_t seq)
{
    pthread_mutex_lock(&log->lg_w_mu);
    atomic_store_explicit(&log->lg_committed, seq, memory_order_release);
    pthread_cond_broadcast(&log->lg_w_cv);
    pthread_mutex_unlock(&log->lg_w_mu);
}

/* Enters the sticky failed state after a write or sync error at `off` of the active segment. */
static void enter_failed(hr_log_t *log, uint64_t off)
{
    atomic_store(&log->lg_failed, 1);
    /* Why: invariant 6 - whatever part of the failed group reached the file is cut away, so
     * the file ends with the last committed record (the write helper already did this for
     * failed writes; this covers a failed fdatasync). */
    if (ftruncate(log->lg_active->sg_fd, (off_t)off) != 0) {
        /* Recovery at the next open truncates anything invalid. */
    }
}

/* Makes the group just written durable per the fsync policy. */
static int sync_policy(hr_log_t *log, hr_seg_t *s)
{
    int policy = atomic_load(&log->lg_fsync);
    uint64_t now = hr_mono_ns();
    uint64_t ival = (uint64_t)atomic_load(&log->lg_fsync_interval_ms) * 1000000u;
    if (policy == HR_FSYNC_ALWAYS ||
        (policy == HR_FSYNC_INTERVAL && now - log->lg_last_sync_ns >= ival)) {
        /* Why: guarantee 1 (DESIGN.md §2) - under fsync=always done() must not run before the
         * records are on disk; one fdatasync covers the whole group. */
        int rc = hr_fdatasync(s->sg_fd);
        if (rc == 0) {
            log->lg_dirty = 0;
            log->lg_last_sync_ns = now;
        }
        return rc;
    }
    log->lg_dirty = 1;
    return 0;
}

/* Writes the group, syncs it, publishes it, and completes every request in it. Returns the
 * I/O error that put the log in the failed state, or 0. */
static int group_finish(hr_log_t *log, group_t *g)
{
    int rc = 0;
    uint64_t before = atomic_load(&log->lg_committed);
    hr_seg_t *s = log->lg_active;
    if (g->nrec > 0) {
        uint64_t off = atomic_load(&s->sg_end);
        if (g->npieces > g->capiov) {
            g->capiov = g->npieces;
            g->iov = hr_xrealloc(g->iov, g->capiov * sizeof(*g->iov));
        }
        for (size_t i = 0; i < g->npieces; i++) {
            const piece_t *p = &g->pieces[i];
            g->iov[i].base = p->ext ? p->ext : g->stage + p->off;
            g->iov[i].len = p->len;
        }
        /* One positional write for the whole group (invariant 5); on failure the helper
         * truncates the partial write away. */
        rc = hr_pwritev_all(s->sg_fd, g->iov, g->npieces, off, 1);
        if (rc == 0) {
            rc = sync_policy(log, s);
        }
        if (rc != 0) {
            enter_failed(log, off);
            for (hr_log_req_t *r = g->done_head; r; r = r->next) {
                if (r->status == 0 && r->n_recs > 0) {
                    r->status = rc;
                    r->first_seq = 0;
                }
            }
        } else {
            pthread_mutex_lock(&s->sg_mu);
            for (size_t i = 0; i < g->nents; i++) {
                hr_idx_ent_t *e = &g->ents[i];
                if (s->sg_nidx == s->sg_capidx) {
                    s->sg_capidx = s->sg_capidx ? s->sg_capidx * 2 : 64;
                    s->sg_idx = hr_xrealloc(s->sg_idx, s->sg_capidx * sizeof(*s->sg_idx));
                }
                s->sg_idx[s->sg_nidx++] = *e;
            }
            pthread_mutex_unlock(&s->sg_mu);
            uint64_t last = g->first_seq + g->nrec - 1;
            atomic_store(&s->sg_last_time, g->time_ns);
            atomic_store_explicit(&s->sg_end, off + g->bytes, memory_order_release);
            atomic_store(&s->sg_last, last);
            atomic_fetch_add(&log->lg_bytes, g->bytes);
            log->lg_last_time = g->time_ns;
            if (s->sg_nidx - s->sg_idx_flushed >= IDX_FLUSH_ENTRIES) {
                /* After the data write (and sync), so under fsync=always an index entry is
                 * never ahead of durable data. */
                (void)hr__log_idx_flush(log, s);
            }
            publish(log, last);
        }
    }
    for (hr_log_req_t *r = g->done_head, *nx; r; r = nx) {
        nx = r->next;
        r->next = NULL;
        r->done(r);
    }
    uint64_t after = atomic_load(&log->lg_committed);
    if (after != before && log->lg_opts.on_commit) {
        log->lg_opts.on_commit(log->lg_opts.commit_arg, after);
    }
    g->done_head = g->done_tail = NULL;
    g->stage_len = g->npieces = g->nents = g->nrec = 0;
    g->bytes = 0;
    return rc;
}

/* Seals the active segment and starts the next one at lg_next_seq. */
static int roll(hr_log_t *log)
{
    hr_seg_t *ns = NULL;
    int rc = hr__log_seg_seal(log, log->lg_active);
    if (rc == 0) {
        log->lg_dirty = 0; /* the seal synced everything */
        rc = hr__log_seg_create(log, log->lg_next_seq, &ns);
    }
    if (rc != 0) {
        atomic_store(&log->lg_failed, 1);
        return rc;
    }
    hr__log_segs_append(log, ns);
    log->lg_active = ns;
    log->lg_next_retention_ns = 0; /* retention after each roll */
    log->lg_prezero_ok = 1;
    return 0;
}

static uint8_t *stage_grow(group_t *g, size_t n)
{
    if (g->stage_len + n > g->stage_cap) {
        size_t cap = g->stage_cap ? g->stage_cap : 64u << 10;
        while (cap < g->stage_len + n) {
            cap *= 2;
        }
        g->stage = hr_xrealloc(g->stage, cap);
        g->stage_cap = cap;
    }
    uint8_t *p = g->stage + g->stage_len;
    g->stage_len += n;
    return p;
}

static void piece_add(group_t *g, const uint8_t *ext, size_t off, size_t len)
{
    if (ext == NULL && g->npieces > 0) {
        piece_t *last = &g->pieces[g->npieces - 1];
        if (last->ext == NULL && last->off + last->len == off) {
            last->len += len;
            return;
        }
    }
    if (g->npieces == g->cappieces) {
        g->cappieces = g->cappieces ? g->cappieces * 2 : 256;
        g->pieces = hr_xrealloc(g->pieces, g->cappieces * sizeof(*g->pieces));
    }
    g->pieces[g->npieces++] = (piece_t){ext, off, len};
}

/* Adds an admitted request's records to the group; they will start at byte `wpos`. The
 * staging memory is bounded by max_batch_records and the segment size (only payloads up to
 * STAGE_COPY_MAX are copied), so it uses the aborting allocator. */
static void group_add(hr_log_t *log, group_t *g, hr_log_req_t *req, uint64_t wpos)
{
    uint64_t seq = log->lg_next_seq;
    if (g->nrec == 0) {
        g->first_seq = seq;
        hr_seg_t *s = log->lg_active;
        g->idx_have = s->sg_nidx > 0;
        g->idx_last_pos = s->sg_nidx ? s->sg_idx[s->sg_nidx - 1].pos : 0;
    }
    if (!g->idx_have || wpos - g->idx_last_pos >= log->lg_idx_interval) {
        if (g->nents == g->capents) {
            g->capents = g->capents ? g->capents * 2 : 64;
            g->ents = hr_xrealloc(g->ents, g->capents * sizeof(*g->ents));
        }
        g->ents[g->nents++] = (hr_idx_ent_t){seq, g->time_ns, (uint32_t)wpos};
        g->idx_have = 1;
        g->idx_last_pos = wpos;
    }
    req->first_seq = seq;
    for (size_t i = 0; i < req->n_recs; i++) {
        const hr_iov_t *r = &req->recs[i];
        int copy = r->len <= STAGE_COPY_MAX;
        size_t off = g->stage_len;
        uint8_t *h = stage_grow(g, HR_REC_HDR_SIZE + (copy ? r->len : 0));
        hr__log_rec_hdr_encode(h, r->len, seq + i, g->time_ns, (uint32_t)i,
                               (uint32_t)(req->n_recs - 1 - i), r->base);
        if (copy && r->len > 0) {
            memcpy(h + HR_REC_HDR_SIZE, r->base, r->len);
        }
        piece_add(g, NULL, off, HR_REC_HDR_SIZE + (copy ? r->len : 0));
        if (!copy) {
            piece_add(g, r->base, 0, r->len);
        }
        g->bytes += HR_REC_HDR_SIZE + r->len;
    }
    g->nrec += req->n_recs;
    log->lg_next_seq += req->n_recs;
}

/* Sum of the request's record sizes, or HR_ETOOBIG when it cannot fit in one segment. */
static int req_size(const hr_log_t *log, const hr_log_req_t *req, uint64_t *total)
{
    uint64_t room = log->lg_opts.segment_bytes - HR_SEG_HDR_SIZE;
    uint64_t t = 0;
    if (req->n_recs > 0 && req->recs == NULL) {
        return HR_EINVAL;
    }
    for (size_t i = 0; i < req->n_recs; i++) {
        t += HR_REC_HDR_SIZE + (uint64_t)req->recs[i].len;
        if (req->recs[i].len > room || t > room) {
            return HR_ETOOBIG;
        }
    }
    *total = t;
    return 0;
}

static void commit_batch(hr_log_t *log, group_t *g, hr_log_req_t *batch)
{
    uint64_t seg_bytes = log->lg_opts.segment_bytes;
    uint64_t wall = hr_wall_ns();
    /* Invariant 2: time never goes backwards, even if the wall clock does. */
    g->time_ns = wall > log->lg_last_time ? wall : log->lg_last_time;
    for (hr_log_req_t *req = batch, *nx; req; req = nx) {
        nx = req->next;
        uint64_t total = 0;
        req->status = 0;
        req->first_seq = 0;
        req->time_ns = g->time_ns;
        done_add(g, req);
        if (atomic_load(&log->lg_failed)) {
            req->status = HR_EFAILED;
            continue;
        }
        int rc = req_size(log, req, &total);
        if (rc == 0 && log->lg_opts.admit) {
            rc = log->lg_opts.admit(log->lg_opts.admit_arg, req, log->lg_next_seq);
            if (rc == 0) {
                rc = req_size(log, req, &total);
            }
        }
        if (rc != 0 || req->n_recs == 0) {
            req->status = rc;
            continue;
        }
        uint64_t wpos = atomic_load(&log->lg_active->sg_end) + g->bytes;
        if (wpos + total > seg_bytes && wpos > HR_SEG_HDR_SIZE) {
            /* Invariant 5: a request never spans segments; finish this group and roll. The
             * request is taken off the list first so that it is completed with its own
             * group. */
            g->done_tail = NULL;
            for (hr_log_req_t *r = g->done_head; r && r != req; r = r->next) {
                g->done_tail = r;
            }
            if (g->done_tail) {
                g->done_tail->next = NULL;
            } else {
                g->done_head = NULL;
            }
            rc = group_finish(log, g);
            if (rc == 0) {
                rc = roll(log);
            }
            done_add(g, req);
            if (rc != 0) {
                req->status = rc;
                continue;
            }
            wpos = HR_SEG_HDR_SIZE;
        }
        group_add(log, g, req, wpos);
    }
    (void)group_finish(log, g);
}

/* Takes up to max_batch_records records' worth of requests (at least one) off the queue.
 * Called with lg_q_mu held. */
static hr_log_req_t *take_batch(hr_log_t *log)
{
    hr_log_req_t *head = log->lg_q_head, *last = head;
    size_t n = head->n_recs;
    while (last->next && n + last->next->n_recs <= log->lg_opts.max_batch_records) {
        last = last->next;
        n += last->n_recs;
    }
    log->lg_q_head = last->next;
    if (log->lg_q_head == NULL) {
        log->lg_q_tail = NULL;
        atomic_store(&log->lg_q_busy, false);
    }
    last->next = NULL;
    return head;
}

static void timespec_at(struct timespec *ts, uint64_t mono_ns)
{
    ts->tv_sec = (time_t)(mono_ns / 1000000000u);
    ts->tv_nsec = (long)(mono_ns % 1000000000u);
}

static void *commit_main(void *arg)
{
    hr_log_t *log = arg;
    pthread_setname_np(pthread_self(), "hr-commit"); /* for top -H and profiles */
    group_t g;
    memset(&g, 0, sizeof(g));
    pthread_mutex_lock(&log->lg_q_mu);
    for (;;) {
        if (log->lg_q_head) {
            hr_log_req_t *batch = take_batch(log);
            pthread_mutex_unlock(&log->lg_q_mu);
            commit_batch(log, &g, batch);
            log->lg_prezero_ok = 1;
            pthread_mutex_lock(&log->lg_q_mu);
            continue;
        }
        if (log->lg_closing) {
            break;
        }
        /* Idle: interval sync, retention, then pre-zeroing, one step at a time so that new
         * requests are picked up between steps. */
        uint64_t now = hr_mono_ns();
        uint64_t ival = (uint64_t)atomic_load(&log->lg_fsync_interval_ms) * 1000000u;
        int failed = atomic_load(&log->lg_failed);
        if (log->lg_dirty && !failed && now - log->lg_last_sync_ns >= ival) {
            pthread_mutex_unlock(&log->lg_q_mu);
            /* Why: fsync=interval bounds the window of acknowledged but unsynced records. */
            int rc = hr_fdatasync(log->lg_active->sg_fd);
            log->lg_dirty = 0;
            log->lg_last_sync_ns = now;
            if (rc != 0) {
                enter_failed(log, atomic_load(&log->lg_active->sg_end));
            }
            pthread_mutex_lock(&log->lg_q_mu);
            continue;
        }
        if (now >= log->lg_next_retention_ns) {
            log->lg_next_retention_ns = now + RETENTION_PERIOD_NS;
            if (atomic_load(&log->lg_ret_age_ms) || atomic_load(&log->lg_ret_bytes)) {
                pthread_mutex_unlock(&log->lg_q_mu);
                (void)hr__log_retention(log);
                pthread_mutex_lock(&log->lg_q_mu);
            }
            continue;
        }
        if (log->lg_prezero_ok && !failed) {
            pthread_mutex_unlock(&log->lg_q_mu);
            int r = hr__log_prezero_step(log);
            pthread_mutex_lock(&log->lg_q_mu);
            if (r != 1) {
                log->lg_prezero_ok = 0;
            }
            continue;
        }
        uint64_t deadline = log->lg_next_retention_ns;
        if (log->lg_dirty && !failed && log->lg_last_sync_ns + ival < deadline) {
            deadline = log->lg_last_sync_ns + ival;
        }
        struct timespec ts;
        timespec_at(&ts, deadline);
        pthread_cond_timedwait(&log->lg_q_cv, &log->lg_q_mu, &ts);
    }
    pthread_mutex_unlock(&log->lg_q_mu);
    /* Closing: the queue is drained. Index entries go to their files (lazily, as always). */
    (void)hr__log_idx_flush(log, log->lg_active);
    if (log->lg_dirty && !atomic_load(&log->lg_failed)) {
        /* Why: a clean close leaves every acknowledged record on disk, whatever the policy. */
        (void)hr_fdatasync(log->lg_active->sg_fd);
        log->lg_dirty = 0;
    }
    free(g.stage);
    free(g.pieces);
    free(g.iov);
    free(g.ents);
    return NULL;
}

/* ---- open / close ------------------------------------------------------------------------ */

static void log_free(hr_log_t *log)
{
    for (size_t i = 0; i < log->lg_nsegs; i++) {
        hr__log_seg_unref(log->lg_segs[i]);
    }
    free(log->lg_segs);
    if (log->lg_next_fd >= 0) {
        close(log->lg_next_fd);
    }
    if (log->lg_dirfd >= 0) {
        close(log->lg_dirfd);
    }
    if (log->lg_lockfd >= 0) {
        close(log->lg_lockfd); /* releases the flock */
    }
    pthread_mutex_destroy(&log->lg_seg_mu);
    pthread_mutex_destroy(&log->lg_ret_mu);
    pthread_mutex_destroy(&log->lg_q_mu);
    pthread_mutex_destroy(&log->lg_w_mu);
    pthread_cond_destroy(&log->lg_q_cv);
    pthread_cond_destroy(&log->lg_w_cv);
    free(log->lg_zeros);
    free(log->lg_dir);
    free(log);
}

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

int hr_log_open(const char *dir, const hr_log_opts_t *opts, hr_log_t **out)
{
    hr_log_t *log = hr_xcalloc(1, sizeof(*log));
    int rc = 0;
    *out = NULL;
    log->lg_opts = *opts;
    hr_log_opts_t *o = &log->lg_opts;
    if (o->segment_bytes == 0) {
        o->segment_bytes = 128u << 20;
    }
    if (o->max_batch_records == 0) {
        o->max_batch_records = 4096;
    }
    log->lg_dir = hr_xstrdup(dir);
    log->lg_dirfd = -1;
    log->lg_lockfd = -1;
    log->lg_next_fd = -1;
    pthread_mutex_init(&log->lg_seg_mu, NULL);
    pthread_mutex_init(&log->lg_ret_mu, NULL);
    pthread_mutex_init(&log->lg_q_mu, NULL);
    pthread_mutex_init(&log->lg_w_mu, NULL);
    cond_init_mono(&log->lg_q_cv);
    cond_init_mono(&log->lg_w_cv);
    log->lg_zeros = hr_xcalloc(1, HR_PREZERO_CHUNK);
    if (o->segment_bytes < HR_SEG_MIN_BYTES || o->segment_bytes > HR_SEG_MAX_BYTES ||
        (unsigned)o->fsync > HR_FSYNC_NEVER) {
        rc = HR_EINVAL;
        goto err;
    }
    store_config(log, o);
    uint64_t ival = o->segment_bytes / 64;
    log->lg_idx_interval = (uint32_t)(ival > HR_IDX_MAX_INTERVAL ? HR_IDX_MAX_INTERVAL
                                      : ival < 1                 ? 1
                                                                 : ival);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        goto err;
    }
    log->lg_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->lg_dirfd < 0) {
        rc = -errno;
        goto err;
    }
    /* One process (and one hr_log_t) per log directory: two writers would interleave. */
    log->lg_lockfd = openat(log->lg_dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (log->lg_lockfd < 0) {
        rc = -errno;
        goto err;
    }
    if (flock(log->lg_lockfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? HR_EBUSY : -errno;
        goto err;
    }
    rc = hr__log_recover(log);
    if (rc != 0) {
        goto err;
    }
    log->lg_active = log->lg_segs[log->lg_nsegs - 1];
    log->lg_next_seq = atomic_load(&log->lg_active->sg_last) + 1;
    atomic_store(&log->lg_committed, log->lg_next_seq - 1);
    log->lg_last_sync_ns = hr_mono_ns();
    log->lg_prezero_ok = 1;
    rc = -pthread_create(&log->lg_thr, NULL, commit_main, log);
    if (rc != 0) {
        goto err;
    }
    *out = log;
    return 0;
err:
    log_free(log);
    return rc;
}

void hr_log_close(hr_log_t *log)
{
    if (log == NULL) {
        return;
    }
    pthread_mutex_lock(&log->lg_q_mu);
    log->lg_closing = 1;
    pthread_cond_signal(&log->lg_q_cv);
    pthread_mutex_unlock(&log->lg_q_mu);
    pthread_join(log->lg_thr, NULL);
    pthread_mutex_lock(&log->lg_w_mu);
    log->lg_closed = 1;
    pthread_cond_broadcast(&log->lg_w_cv);
    pthread_mutex_unlock(&log->lg_w_mu);
    log_free(log);
}

int hr_log_submit(hr_log_t *log, hr_log_req_t *req)
{
    int rc = 0;
    req->next = NULL;
    req->status = 0;
    req->first_seq = 0;
    pthread_mutex_lock(&log->lg_q_mu);
    if (log->lg_closing) {
        rc = HR_ECLOSED;
    } else if (atomic_load(&log->lg_failed)) {
        rc = HR_EFAILED;
    } else {
        if (log->lg_q_tail) {
            log->lg_q_tail->next = req;
        } else {
            log->lg_q_head = req;
            atomic_store(&log->lg_q_busy, true);
            /* The commit thread only sleeps on an empty queue. */
            pthread_cond_signal(&log->lg_q_cv);
        }
        log->lg_q_tail = req;
    }
    pthread_mutex_unlock(&log->lg_q_mu);
    return rc;
}

bool hr_log_busy(hr_log_t *log)
{
    return atomic_load(&log->lg_q_busy);
}

/* ---- reads ------------------------------------------------------------------------------- */

/* Returns a ref on the segment holding `seq` (moving *seq up to the first retained seq when it
 * is older), or NULL. */
static hr_seg_t *seg_get(hr_log_t *log, uint64_t *seq)
{
    hr_seg_t *s = NULL;
    pthread_mutex_lock(&log->lg_seg_mu);
    if (log->lg_nsegs > 0) {
        if (*seq < log->lg_segs[0]->sg_base) {
            *seq = log->lg_segs[0]->sg_base;
        }
        size_t lo = 0, hi = log->lg_nsegs; /* first segment with base > seq */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (log->lg_segs[mid]->sg_base <= *seq) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        s = log->lg_segs[lo - 1];
        hr__log_seg_ref(s);
    }
    pthread_mutex_unlock(&log->lg_seg_mu);
    return s;
}

/* Ensures `s` has its fd and index; HR_ENOTFOUND when retention deleted it meanwhile. */
static int seg_ready(hr_log_t *log, hr_seg_t *s)
{
    int rc = hr__log_idx_ensure(log, s);
    return rc == -ENOENT ? HR_ENOTFOUND : rc;
}

int hr_log_read(hr_log_t *log, uint64_t from_seq, size_t max_n, size_t max_bytes,
                hr_log_batch_t *out)
{
    uint64_t committed = atomic_load_explicit(&log->lg_committed, memory_order_acquire);
    uint64_t seq = from_seq ? from_seq : 1;
    size_t bytes = 0;
    int rc = 0, tries = 0;
    hr_cursor_t c = {0};
    out->n = 0;
    hr_buf_reset(&out->buf);
    while (out->n < max_n && seq <= committed) {
        hr_seg_t *s = seg_get(log, &seq);
        if (s == NULL) {
            break;
        }
        rc = seg_ready(log, s);
        if (rc == HR_ENOTFOUND && ++tries < 8) {
            hr__log_seg_unref(s); /* deleted by retention: start at the new first segment */
            rc = 0;
            continue;
        }
        hr_idx_ent_t e;
        if (rc == 0) {
            hr__log_idx_find_seq(s, seq, &e);
            rc = hr__log_cursor_init(&c, s->sg_fd, e.pos,
                                     atomic_load_explicit(&s->sg_end, memory_order_acquire));
        }
        int seg_done = 0, all_done = 0;
        while (rc == 0 && !seg_done && !all_done) {
            hr_rec_t r;
            rc = hr__log_cursor_next(&c, &r, NULL);
            if (rc == 1) {
                rc = 0;
                seg_done = 1;
                break;
            }
            if (rc != 0 || r.seq < seq) {
                continue;
            }
            if (r.seq > committed || (out->n > 0 && bytes + r.plen > max_bytes)) {
                all_done = 1;
                break;
            }
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 64;
                hr_log_entry_t *ents = realloc(out->ents, cap * sizeof(*ents));
                if (ents == NULL) {
                    rc = HR_ENOMEM;
                    break;
                }
                out->ents = ents;
                out->cap = cap;
            }
            rc = hr_buf_append(&out->buf, r.payload, r.plen);
            if (rc != 0) {
                break;
            }
            out->ents[out->n++] = (hr_log_entry_t){r.seq, r.time_ns, NULL, r.plen};
            bytes += r.plen;
            seq = r.seq + 1;
            all_done = out->n == max_n;
        }
        hr__log_cursor_free(&c);
        uint64_t next_base = atomic_load(&s->sg_last) + 1;
        hr__log_seg_unref(s);
        if (rc != 0 || all_done) {
            break;
        }
        if (seq < next_base) {
            seq = next_base; /* the segment ended (sealed: its last seq is fixed) */
        }
        if (seg_done && seq > committed) {
            break;
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < out->n; i++) {
        out->ents[i].payload = out->buf.data + off;
        off += out->ents[i].len;
    }
    if (rc != 0) {
        out->n = 0;
    }
    return rc;
}

void hr_log_batch_free(hr_log_batch_t *b)
{
    free(b->ents);
    hr_buf_free(&b->buf);
    b->ents = NULL;
    b->n = b->cap = 0;
}

/* The first record's time of `s`, or UINT64_MAX when it has no committed record. */
static uint64_t seg_first_time(hr_log_t *log, hr_seg_t *s, uint64_t committed)
{
    if (atomic_load(&s->sg_last) < s->sg_base || s->sg_base > committed || seg_ready(log, s) != 0) {
        return UINT64_MAX;
    }
    hr_idx_ent_t e;
    return hr__log_idx_find_time(s, 0, &e) == 1 ? e.time_ns : UINT64_MAX;
}

uint64_t hr_log_seek_time(hr_log_t *log, uint64_t t_ns)
{
    uint64_t committed = atomic_load_explicit(&log->lg_committed, memory_order_acquire);
    uint64_t result = committed + 1;
    pthread_mutex_lock(&log->lg_seg_mu);
    size_t n = log->lg_nsegs;
    hr_seg_t **segs = hr_xmalloc(n * sizeof(*segs));
    for (size_t i = 0; i < n; i++) {
        segs[i] = log->lg_segs[i];
        hr__log_seg_ref(segs[i]);
    }
    pthread_mutex_unlock(&log->lg_seg_mu);
    /* Binary search over segments for the last one whose first record is before t. */
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (seg_first_time(log, segs[mid], committed) < t_ns) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        if (n > 0 && segs[0]->sg_base <= committed) {
            result = segs[0]->sg_base;
        }
        goto out;
    }
    hr_seg_t *s = segs[lo - 1];
    hr_idx_ent_t e;
    hr_cursor_t c;
    hr__log_idx_find_time(s, t_ns, &e);
    if (hr__log_cursor_init(&c, s->sg_fd, e.pos, atomic_load(&s->sg_end)) != 0) {
        goto out;
    }
    hr_rec_t r;
    uint64_t last = atomic_load(&s->sg_last);
    result = (last < committed ? last : committed) + 1;
    while (hr__log_cursor_next(&c, &r, NULL) == 0 && r.seq <= committed) {
        if (r.time_ns >= t_ns) {
            result = r.seq;
            break;
        }
    }
    hr__log_cursor_free(&c);
out:
    for (size_t i = 0; i < n; i++) {
        hr__log_seg_unref(segs[i]);
    }
    free(segs);
    return result;
}

void hr_log_stats(hr_log_t *log, hr_log_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t last = atomic_load(&log->lg_committed);
    pthread_mutex_lock(&log->lg_seg_mu);
    out->first_seq = log->lg_segs[0]->sg_base;
    out->segments = (uint32_t)log->lg_nsegs;
    out->bytes = atomic_load(&log->lg_bytes);
    pthread_mutex_unlock(&log->lg_seg_mu);
    if (out->first_seq > last + 1) {
        out->first_seq = last + 1;
    }
    out->last_seq = last;
    out->count = last + 1 - out->first_seq;
    out->failed = atomic_load(&log->lg_failed);
}

uint64_t hr_log_wait(hr_log_t *log, uint64_t after_seq, int timeout_ms)
{
    struct timespec ts;
    timespec_at(&ts, hr_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u);
    pthread_mutex_lock(&log->lg_w_mu);
    while (atomic_load(&log->lg_committed) <= after_seq && !log->lg_closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&log->lg_w_cv, &log->lg_w_mu);
        } else if (timeout_ms == 0 ||
                   pthread_cond_timedwait(&log->lg_w_cv, &log->lg_w_mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    uint64_t seq = atomic_load(&log->lg_committed);
    pthread_mutex_unlock(&log->lg_w_mu);
    return seq;
}

int hr_log_enforce_retention(hr_log_t *log)
{
    return hr__log_retention(log);
}

int hr_log_validate(hr_log_t *log)
{
    int rc = 0;
    uint64_t committed = atomic_load(&log->lg_committed);
    pthread_mutex_lock(&log->lg_seg_mu);
    for (size_t i = 0; i < log->lg_nsegs && rc == 0; i++) {
        hr_seg_t *s = log->lg_segs[i];
        uint64_t last = atomic_load(&s->sg_last);
        if (i + 1 < log->lg_nsegs && log->lg_segs[i + 1]->sg_base != last + 1) {
            rc = HR_ECORRUPT; /* invariant 1: gap-free */
        }
        if (i + 1 == log->lg_nsegs && last < committed) {
            rc = HR_ECORRUPT;
        }
        pthread_mutex_lock(&s->sg_mu);
        for (size_t k = 0; k < s->sg_nidx && rc == 0; k++) {
            const hr_idx_ent_t *e = &s->sg_idx[k];
            if (e->seq < s->sg_base || e->seq > last || e->pos < HR_SEG_HDR_SIZE ||
                e->pos >= atomic_load(&s->sg_end) ||
                (k > 0 && (e->seq <= s->sg_idx[k - 1].seq || e->pos <= s->sg_idx[k - 1].pos ||
                           e->time_ns < s->sg_idx[k - 1].time_ns))) {
                rc = HR_ECORRUPT;
            }
        }
        pthread_mutex_unlock(&s->sg_mu);
    }
    pthread_mutex_unlock(&log->lg_seg_mu);
    return rc;
}
