/* SPDX-License-Identifier: MIT */
/*
 * The delivery runtime: runs on the delivery loop thread and turns consumers' ring entries into
 * HTTP attempts against the trigger's sink, with the trigger's window (max_in_flight), ordering
 * by key, rate limit, retries with backoff and Retry-After, dead letters, replies and traces.
 *
 * Life of an entry:  QUEUED ──start──► ACTIVE (attempt in flight)
 *                      ▲                 │ 2xx ──(reply? publish it, wait for commit)──► DONE
 *                      └── backoff timer ┤ retryable and budget left
 *                                        └ other 4xx, budget spent ─► dead letter (durable) ─► DONE
 * DONE entries are popped in seq order from the ring's head, which advances the cursor.
 */
#ifndef HR_DELIVERY_DELIVER_H
#define HR_DELIVERY_DELIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "broker/bus.h"
#include "broker/dispatch.h"
#include "broker/persist.h"
#include "delivery/loop.h"
#include "obs/trace.h"

typedef struct hr_deliver hr_deliver_t;

/* A trigger's counters and last error, shared by its consumers (live, replays, redrives). */
typedef struct hr_trig_stats {
    atomic_uint_least64_t delivered, retried, failed, replies;
    atomic_uint in_flight;
    pthread_mutex_t mu; /* guards last_error */
    char last_error[256];
    uint64_t last_error_ns;
} hr_trig_stats_t;

typedef struct hr_deliver_opts {
    hr_dloop_t *loop;
    hr_buses_t *buses; /* for replies */
    hr_trace_t *trace;
    hr_persist_t *persist;
    uint32_t max_hops; /* replies deeper than this are dead-lettered; default 8 */
    /* Called on the loop thread when a replay or redrive consumer finished. */
    void (*finished)(void *arg, hr_consumer_t *c);
    void *finished_arg;
} hr_deliver_opts_t;

void hr_deliver_create(const hr_deliver_opts_t *opts, hr_deliver_t **out);
/* Call after the loop stopped (no callbacks run any more). */
void hr_deliver_destroy(hr_deliver_t *dv);

/* The dispatcher's kick: schedules a pump of `c` on the loop thread. Any thread. */
void hr_deliver_kick(void *dv, hr_consumer_t *c);

void hr_trig_stats_init(hr_trig_stats_t *s);
void hr_trig_stats_destroy(hr_trig_stats_t *s);

#endif
