/* SPDX-License-Identifier: MIT */
/*
 * The persist thread: batches metadata writes that must not run on the delivery loop — dead
 * letters, deletions of redriven dead letters, and trigger cursors with their counters — into
 * one SQLite transaction at a time (group commit for metadata).
 *
 * A dead letter's completion callback is posted to the delivery loop only after the
 * transaction holding it committed, so a trigger's cursor never passes an event whose dead
 * letter is not yet durable. Cursors are collected from the registry every flush_ms.
 */
#ifndef HR_BROKER_PERSIST_H
#define HR_BROKER_PERSIST_H

#include <stddef.h>
#include <stdint.h>

#include "delivery/loop.h"
#include "meta/meta.h"

typedef struct hr_persist hr_persist_t;

/* Fills *out (hr_xmalloc'd array of *n rows whose strings the callee owns until the next call
 * or destroy) with every trigger's cursor and counters. */
typedef void (*hr_persist_collect_fn)(void *arg, hr_meta_trigger_t **out, size_t *n);

int hr_persist_create(hr_meta_t *meta, uint32_t flush_ms, hr_persist_collect_fn collect,
                      void *collect_arg, hr_persist_t **out);
/* Flushes everything queued and the cursors one last time, then stops. */
void hr_persist_destroy(hr_persist_t *p);

/* Queues a dead letter (all fields copied). done(arg, rc) runs on delivery loop `loop` after
 * the write (rc 0, or a negative code: the dead letter was not stored). `replaces_id` > 0
 * deletes that dead letter in the same transaction (a redriven event that failed again). */
void hr_persist_dead_letter(hr_persist_t *p, const hr_meta_dl_t *dl, int64_t replaces_id,
                            hr_dloop_t *loop, void (*done)(void *arg, int rc), void *arg);
/* Queues the deletion of a redriven dead letter that was delivered. */
void hr_persist_forget(hr_persist_t *p, int64_t dl_id);
/* Asks for a flush soon (e.g. after a trigger was created or at shutdown). */
void hr_persist_kick(hr_persist_t *p);

#endif
