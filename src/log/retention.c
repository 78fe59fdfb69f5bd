/* SPDX-License-Identifier: MIT */
/*
 * Retention: deletes whole segments, oldest first, while the log is over its size limit
 * (retention_bytes) or the oldest segment's newest record is older than retention_age_ms.
 * The active (last) segment is never deleted, so the next seq survives (invariant 1).
 * Runs on the commit thread (after each roll and every few seconds) and on any thread through
 * hr_log_enforce_retention; lg_ret_mu serializes passes. Readers holding a segment ref keep
 * reading its open fd after the unlink.
 */
#include "log/log_int.h"

#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/fileio.h"

/* Returns 1 when `s` (not the active segment) should go. */
static int expired(hr_log_t *log, hr_seg_t *s, uint64_t now_ns, int *err)
{
    uint64_t max_bytes = atomic_load(&log->lg_ret_bytes);
    uint64_t age_ms = atomic_load(&log->lg_ret_age_ms);
    if (max_bytes != 0 && atomic_load(&log->lg_bytes) > max_bytes) {
        return 1;
    }
    if (age_ms == 0) {
        return 0;
    }
    /* The newest record's time: known for segments sealed by this process, else from the
     * sealed index trailer (one lazy load of this one segment). */
    int rc = hr__log_idx_ensure(log, s);
    if (rc != 0) {
        *err = rc;
        return 0;
    }
    uint64_t age_ns = age_ms * 1000000u;
    return now_ns > age_ns && atomic_load(&s->sg_last_time) < now_ns - age_ns;
}

int hr__log_retention(hr_log_t *log)
{
    int deleted = 0, err = 0;
    uint64_t now = hr_wall_ns();
    pthread_mutex_lock(&log->lg_ret_mu);
    for (;;) {
        pthread_mutex_lock(&log->lg_seg_mu);
        if (log->lg_nsegs < 2) {
            pthread_mutex_unlock(&log->lg_seg_mu);
            break;
        }
        hr_seg_t *s = log->lg_segs[0];
        hr__log_seg_ref(s);
        pthread_mutex_unlock(&log->lg_seg_mu);
        if (!expired(log, s, now, &err)) {
            hr__log_seg_unref(s);
            break;
        }
        pthread_mutex_lock(&log->lg_seg_mu);
        HR_ASSERT(log->lg_segs[0] == s && log->lg_nsegs >= 2);
        memmove(log->lg_segs, log->lg_segs + 1, (log->lg_nsegs - 1) * sizeof(*log->lg_segs));
        log->lg_nsegs--;
        atomic_fetch_sub(&log->lg_bytes, atomic_load(&s->sg_end));
        pthread_mutex_unlock(&log->lg_seg_mu);
        /* The data file goes first: index files without their segment are removed at open. */
        char name[64];
        hr__log_seg_name(name, sizeof(name), s->sg_base, "log");
        unlinkat(log->lg_dirfd, name, 0);
        hr__log_seg_name(name, sizeof(name), s->sg_base, "idx");
        unlinkat(log->lg_dirfd, name, 0);
        hr__log_seg_name(name, sizeof(name), s->sg_base, "tix");
        unlinkat(log->lg_dirfd, name, 0);
        deleted++;
        hr__log_seg_unref(s); /* ours */
        hr__log_seg_unref(s); /* the list's; readers may still hold theirs */
    }
    if (deleted > 0) {
        /* Why: make the deletions durable, so a crash cannot bring back a segment whose
         * predecessor is gone (the first retained seq only moves forward). */
        (void)hr_fsync_dir(log->lg_dirfd);
    }
    pthread_mutex_unlock(&log->lg_ret_mu);
    return deleted > 0 || err == 0 ? deleted : err;
}
