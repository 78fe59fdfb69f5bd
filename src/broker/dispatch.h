/* SPDX-License-Identifier: MIT */
/*
 * Dispatch: moving committed events from a bus's log to the consumers that want them.
 *
 * A consumer is one reader of a bus on behalf of a trigger: the trigger's live consumer, or a
 * replay of a seq range. Each has a bounded ring of entries (events to deliver, in seq order)
 * shared between two threads:
 *
 *   dispatcher thread (one per bus) ──push at tail──► ring ◄──states, pop at head── delivery loop
 *
 * The dispatcher reads each committed record once, decodes it once, evaluates every attached
 * consumer's filter, and pushes matches. A consumer whose ring is full is detached at the
 * event that did not fit and later catches up by reading the log on its own, re-attaching when
 * it reaches the dispatcher's position, so a slow sink never holds up other triggers and never
 * grows memory (DESIGN.md §2.6). `scanned` is the highest seq the dispatcher has examined for
 * the consumer; the consumer's cursor (everything at or below is settled) is the seq before
 * the ring's head entry, or `scanned` when the ring is empty.
 *
 * Locking: `mu` guards head, count, bytes, scanned, the dead flag and the ring's slots. An
 * entry is written only by the dispatcher before it is counted, and afterwards only by the
 * delivery loop, which is also the only thread that removes entries (at the head, or settled
 * ones behind the head when compacting); so the loop reads slots and entries without the lock.
 */
#ifndef HR_BROKER_DISPATCH_H
#define HR_BROKER_DISPATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/bus.h"
#include "broker/trigger.h"
#include "delivery/loop.h"

typedef struct hr_dispatch hr_dispatch_t;
typedef struct hr_consumer hr_consumer_t;
struct hr_attempt; /* the delivery loop's per-entry state */

typedef enum hr_dentry_state {
    HR_DE_QUEUED = 0, /* waiting for its turn */
    HR_DE_ACTIVE = 1, /* being delivered: in flight, waiting to retry, or settling */
    HR_DE_DONE = 2,   /* settled: delivered, dead-lettered or dropped */
} hr_dentry_state_t;

typedef struct hr_dentry {
    uint64_t seq;
    uint64_t time_ns; /* ingest time */
    uint8_t *rec;     /* the event's log record, owned */
    uint32_t rec_len;
    uint8_t state;
    bool keyed;    /* ordering key present (partitionkey, else subject) */
    uint64_t key;  /* hash of the ordering key */
    int64_t dl_id; /* when redriving: the dead letter this entry came from */
    struct hr_attempt *att;
} hr_dentry_t;

typedef enum hr_consumer_kind {
    HR_CONSUMER_LIVE = 0,
    HR_CONSUMER_REPLAY = 1,  /* a seq range read again from the log */
    HR_CONSUMER_REDRIVE = 2, /* dead letters, filled once at creation; no dispatcher */
} hr_consumer_kind_t;

struct hr_consumer {
    hr_consumer_kind_t kind;
    atomic_int refs;
    void *owner;             /* the trigger runtime (triggers.c) */
    hr_trigger_spec_t *spec; /* guarded by mu; swapped on trigger update */
    pthread_mutex_t mu;
    hr_dentry_t **ring; /* entries are allocated one by one, so they never move */
    uint32_t cap, head, count;
    size_t bytes, max_bytes;
    uint64_t scanned;
    bool dead;               /* deleted: stop feeding; the loop drains and drops */
    atomic_bool wants_room;  /* the dispatcher found the ring full */
    atomic_bool kick_posted; /* a drain is queued on the delivery loop */
    /* dispatcher thread only */
    uint64_t next_seq; /* next seq to examine when detached */
    uint64_t end_seq;  /* last seq to include (replays), UINT64_MAX for live */
    bool attached;
    bool dkicked; /* got entries in this dispatcher iteration */
    /* delivery loop only */
    uint32_t in_flight;
    uint32_t first_queued; /* ring offset (from head) below which nothing is QUEUED */
    double tokens;         /* rate limit bucket */
    uint64_t tokens_ns;
    hr_dloop_timer_t rate_timer;
    hr_dloop_task_t kick_task;
    struct hr_deliver *dv;       /* the delivery runtime this consumer belongs to */
    struct hr_trig_stats *stats; /* the trigger's counters (shared by its consumers) */
    uint32_t retry_ready;        /* entries back in QUEUED after a backoff, not yet started */
    hr_consumer_t *next_in_owner;
    hr_dispatch_t *disp;          /* set by hr_dispatch_add */
    void (*on_free)(void *owner); /* called when the last reference goes */
};

/* Called (on the dispatcher thread) when a consumer got new entries. */
typedef void (*hr_dispatch_kick_fn)(void *arg, hr_consumer_t *c);

/* Creates a consumer with a ring of `cap` entries / `max_bytes` of records, starting at
 * `next_seq` (scanned = next_seq - 1) and ending at end_seq. One reference. */
hr_consumer_t *hr_consumer_create(hr_consumer_kind_t kind, void *owner, hr_trigger_spec_t *spec,
                                  uint64_t next_seq, uint64_t end_seq);
/* For redrives: grows the ring to hold `n` more entries and appends one entry directly
 * (copying rec). Only before the consumer is shared with the delivery loop. */
void hr_consumer_reserve(hr_consumer_t *c, uint32_t n);
void hr_consumer_append(hr_consumer_t *c, uint64_t seq, uint64_t time_ns, const uint8_t *rec,
                        size_t len, int64_t dl_id, bool keyed, uint64_t key);
hr_consumer_t *hr_consumer_ref(hr_consumer_t *c);
void hr_consumer_unref(hr_consumer_t *c);

/* The consumer's cursor: every seq at or below it is settled. */
uint64_t hr_consumer_cursor(hr_consumer_t *c);
/* Swaps in a new spec (filter, sink, options) for entries not yet started. Takes a ref. */
void hr_consumer_set_spec(hr_consumer_t *c, hr_trigger_spec_t *spec);
/* Returns the current spec with a reference (unref when done). */
hr_trigger_spec_t *hr_consumer_spec(hr_consumer_t *c);
/* Marks the consumer deleted: the dispatcher stops feeding it. */
void hr_consumer_kill(hr_consumer_t *c);
bool hr_consumer_dead(hr_consumer_t *c);
/* A replay is finished when it has examined its whole range and its ring is empty. */
bool hr_consumer_finished(hr_consumer_t *c);

/* Delivery loop side: pops settled entries at the head (freeing them) and wakes the
 * dispatcher if it was waiting for room. Returns how many were popped. */
uint32_t hr_consumer_pop_settled(hr_consumer_t *c);
/* Delivery loop side: removes settled entries behind an unsettled head (an event waiting on
 * retries), so a full ring can take new events and other events (and keys) keep flowing. The
 * cursor stays before the head: after a restart those settled events are delivered again.
 * Returns how many were removed. */
uint32_t hr_consumer_compact(hr_consumer_t *c);

/* Starts the dispatcher of `bus` (borrowed; it must outlive the dispatcher). */
int hr_dispatch_create(hr_bus_t *bus, hr_dispatch_kick_fn kick, void *kick_arg,
                       hr_dispatch_t **out);
void hr_dispatch_destroy(hr_dispatch_t *d);
/* Adds a consumer (takes a reference). */
void hr_dispatch_add(hr_dispatch_t *d, hr_consumer_t *c);
/* Wakes the dispatcher (room freed, consumer killed). */
void hr_dispatch_wake(hr_dispatch_t *d);

/* Hash of an event's ordering key (partitionkey, else subject); false when it has neither. */
bool hr_dispatch_key(const hr_ce_event_t *ev, uint64_t *key);

#endif
