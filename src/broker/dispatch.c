/* SPDX-License-Identifier: MIT */
/*
 * The dispatcher thread of one bus (see dispatch.h for the model). Its loop:
 *
 *   1. attached pass: read the next committed records at `pos` once, decode each once, and push
 *      it to every attached consumer whose filter matches; a consumer whose ring is full is
 *      detached at that seq; then every still-attached consumer has scanned up to the batch end.
 *   2. detached pass: each detached consumer with room reads from its own next_seq, filtered
 *      for itself only, until its ring is full or it reaches `pos`, where it re-attaches.
 *   3. with nothing to do, wait on the condition variable, woken by commits (bus watcher),
 *      room freed by the delivery loop, new or killed consumers, or a 1 s timeout.
 *
 * A small commit (at most INLINE_MAX records, every consumer attached, no further appends
 * queued) is dispatched by the committing thread itself (try_inline), so that the dispatcher
 * thread need not wake up.
 * pass_mu makes the passes exclusive: one thread at a time pushes entries; the delivery loop
 * only pops.
 */
#include "broker/dispatch.h"
#include "ce/event.h"
#include "filter/matcher.h"
#include "util/alloc.h"
#include "util/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READ_RECORDS 512
#define READ_BYTES (4u << 20)
#define RING_MAX_BYTES (8u << 20)
/* Most records a commit notification dispatches on the committing thread. */
#define INLINE_MAX 256

struct hr_dispatch {
    hr_bus_t *bus;
    hr_bus_watch_t watch;
    hr_dispatch_kick_fn kick;
    void *kick_arg;
    pthread_t thread;
    pthread_mutex_t pass_mu; /* held for a pass: pos, batch, matcher and consumer progress */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool woken;
    hr_consumer_t **cs; /* guarded by mu; the thread works on a snapshot */
    size_t n_cs, cap_cs;
    uint64_t pos; /* under pass_mu */
    hr_log_batch_t batch;
    /* The index of the attached consumers' filters (under pass_mu), rebuilt when
     * the set of attached consumers or any spec changes. */
    hr_matcher_t *matcher;
    hr_trigger_spec_t **m_specs; /* references held for the filters in the matcher */
    size_t n_m_specs;
    bool dirty;
    unsigned spec_gen;
    bool added; /* guarded by mu: consumers were added since the last snapshot */
};

/* Bumped by every spec swap so dispatchers know to rebuild their index. */
static atomic_uint spec_gen;

/* ---- consumers ---- */

hr_consumer_t *hr_consumer_create(hr_consumer_kind_t kind, void *owner, hr_trigger_spec_t *spec,
                                  uint64_t next_seq, uint64_t end_seq)
{
    hr_consumer_t *c = hr_xcalloc(1, sizeof *c);
    c->kind = kind;
    c->owner = owner;
    c->spec = hr_trigger_spec_ref(spec);
    atomic_init(&c->refs, 1);
    atomic_init(&c->wants_room, false);
    atomic_init(&c->kick_posted, false);
    pthread_mutex_init(&c->mu, NULL);
    /* Room for several windows of in-flight events, so keyed ordering can pass a held-up key. */
    uint32_t cap = spec->max_in_flight * 4;
    c->cap = cap < 128 ? 128 : cap > 16384 ? 16384 : cap;
    c->ring = hr_xcalloc(c->cap, sizeof *c->ring);
    c->max_bytes = RING_MAX_BYTES;
    c->next_seq = next_seq ? next_seq : 1;
    c->scanned = c->next_seq - 1;
    c->end_seq = end_seq;
    return c;
}

void hr_consumer_reserve(hr_consumer_t *c, uint32_t n)
{
    HR_ASSERT(c->head == 0);
    if (c->count + n > c->cap) {
        c->cap = c->count + n;
        c->ring = hr_xrealloc(c->ring, c->cap * sizeof *c->ring);
    }
}

void hr_consumer_append(hr_consumer_t *c, uint64_t seq, uint64_t time_ns, const uint8_t *rec,
                        size_t len, int64_t dl_id, bool keyed, uint64_t key)
{
    HR_ASSERT(c->count < c->cap);
    hr_dentry_t *e = hr_xcalloc(1, sizeof *e);
    c->ring[(c->head + c->count) % c->cap] = e;
    e->seq = seq;
    e->time_ns = time_ns;
    e->rec = hr_xmalloc(len ? len : 1);
    memcpy(e->rec, rec, len);
    e->rec_len = (uint32_t)len;
    e->dl_id = dl_id;
    e->keyed = keyed;
    e->key = key;
    e->state = HR_DE_QUEUED;
    c->count++;
    c->bytes += len;
}

hr_consumer_t *hr_consumer_ref(hr_consumer_t *c)
{
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void hr_consumer_unref(hr_consumer_t *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1) {
        return;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
        free(e->rec);
        free(e);
    }
    free(c->ring);
    hr_trigger_spec_unref(c->spec);
    pthread_mutex_destroy(&c->mu);
    if (c->on_free) {
        c->on_free(c->owner);
    }
    free(c);
}

uint64_t hr_consumer_cursor(hr_consumer_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t cur = c->count ? c->ring[c->head]->seq - 1 : c->scanned;
    pthread_mutex_unlock(&c->mu);
    return cur;
}

void hr_consumer_set_spec(hr_consumer_t *c, hr_trigger_spec_t *spec)
{
    hr_trigger_spec_ref(spec);
    pthread_mutex_lock(&c->mu);
    hr_trigger_spec_t *old = c->spec;
    c->spec = spec;
    pthread_mutex_unlock(&c->mu);
    hr_trigger_spec_unref(old);
    atomic_fetch_add(&spec_gen, 1);
    if (c->disp) {
        hr_dispatch_wake(c->disp);
    }
}

hr_trigger_spec_t *hr_consumer_spec(hr_consumer_t *c)
{
    pthread_mutex_lock(&c->mu);
    hr_trigger_spec_t *s = hr_trigger_spec_ref(c->spec);
    pthread_mutex_unlock(&c->mu);
    return s;
}

void hr_consumer_kill(hr_consumer_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->dead = true;
    pthread_mutex_unlock(&c->mu);
    if (c->disp) {
        hr_dispatch_wake(c->disp);
    }
}

bool hr_consumer_dead(hr_consumer_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool d = c->dead;
    pthread_mutex_unlock(&c->mu);
    return d;
}

bool hr_consumer_finished(hr_consumer_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool f = c->count == 0 && c->scanned >= c->end_seq;
    pthread_mutex_unlock(&c->mu);
    return f;
}

uint32_t hr_consumer_pop_settled(hr_consumer_t *c)
{
    uint32_t n = 0;
    pthread_mutex_lock(&c->mu);
    while (c->count && c->ring[c->head]->state == HR_DE_DONE) {
        hr_dentry_t *e = c->ring[c->head];
        c->bytes -= e->rec_len;
        free(e->rec);
        free(e);
        c->ring[c->head] = NULL;
        c->head = (c->head + 1) % c->cap;
        c->count--;
        n++;
    }
    pthread_mutex_unlock(&c->mu);
    if (n) {
        c->first_queued = c->first_queued > n ? c->first_queued - n : 0;
        if (atomic_exchange(&c->wants_room, false) && c->disp) {
            hr_dispatch_wake(c->disp);
        }
    }
    return n;
}

uint32_t hr_consumer_compact(hr_consumer_t *c)
{
    uint32_t removed = 0, kept = 0;
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < c->count; i++) {
        hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
        if (e->state == HR_DE_DONE && i > 0) {
            c->bytes -= e->rec_len;
            free(e->rec);
            free(e);
            removed++;
            continue;
        }
        c->ring[(c->head + kept) % c->cap] = e;
        kept++;
    }
    for (uint32_t i = kept; i < c->count; i++) {
        c->ring[(c->head + i) % c->cap] = NULL;
    }
    c->count = kept;
    pthread_mutex_unlock(&c->mu);
    if (removed) {
        c->first_queued = 0; /* offsets changed */
        if (atomic_exchange(&c->wants_room, false) && c->disp) {
            hr_dispatch_wake(c->disp);
        }
    }
    return removed;
}

/* Pushes one matching record; false (and nothing pushed) when the ring is full. */
static bool push(hr_consumer_t *c, const hr_log_entry_t *e, const hr_ce_event_t *ev)
{
    pthread_mutex_lock(&c->mu);
    if (c->count == c->cap || (c->count && c->bytes + e->len > c->max_bytes)) {
        pthread_mutex_unlock(&c->mu);
        atomic_store(&c->wants_room, true);
        return false;
    }
    pthread_mutex_unlock(&c->mu);
    uint8_t *rec = malloc(e->len ? e->len : 1);
    if (rec == NULL) {
        atomic_store(&c->wants_room, true);
        return false;
    }
    memcpy(rec, e->payload, e->len);
    hr_dentry_t *ne = calloc(1, sizeof *ne);
    if (ne == NULL) {
        free(rec);
        atomic_store(&c->wants_room, true);
        return false;
    }
    ne->seq = e->seq;
    ne->time_ns = e->time_ns;
    ne->rec = rec;
    ne->rec_len = (uint32_t)e->len;
    ne->state = HR_DE_QUEUED;
    ne->keyed = hr_dispatch_key(ev, &ne->key);
    pthread_mutex_lock(&c->mu);
    c->ring[(c->head + c->count) % c->cap] = ne;
    c->count++;
    c->bytes += e->len;
    c->scanned = e->seq;
    pthread_mutex_unlock(&c->mu);
    return true;
}

static void set_scanned(hr_consumer_t *c, uint64_t seq)
{
    pthread_mutex_lock(&c->mu);
    if (seq > c->scanned) {
        c->scanned = seq;
    }
    pthread_mutex_unlock(&c->mu);
}

bool hr_dispatch_key(const hr_ce_event_t *ev, uint64_t *key)
{
    const char *k = hr_ce_get(ev, "partitionkey");
    if (k == NULL) {
        k = ev->subject;
    }
    if (k == NULL) {
        return false;
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    *key = h;
    return true;
}

/* ---- the dispatcher ---- */

static bool matches(hr_consumer_t *c, const hr_ce_event_t *ev)
{
    /* The spec may be swapped concurrently; hold a reference while evaluating. */
    hr_trigger_spec_t *s = hr_consumer_spec(c);
    bool m = hr_filter_match(s->filter, ev);
    hr_trigger_spec_unref(s);
    return m;
}

static void drop_index(hr_dispatch_t *d)
{
    hr_matcher_destroy(d->matcher);
    d->matcher = NULL;
    for (size_t i = 0; i < d->n_m_specs; i++) {
        hr_trigger_spec_unref(d->m_specs[i]);
    }
    free(d->m_specs);
    d->m_specs = NULL;
    d->n_m_specs = 0;
}

/* Indexes the attached consumers' current filters. */
static void build_index(hr_dispatch_t *d, hr_consumer_t **cs, size_t n)
{
    drop_index(d);
    d->matcher = hr_matcher_create();
    d->m_specs = hr_xcalloc(n ? n : 1, sizeof *d->m_specs);
    for (size_t i = 0; i < n; i++) {
        if (!cs[i]->attached) {
            continue;
        }
        hr_trigger_spec_t *s = hr_consumer_spec(cs[i]);
        d->m_specs[d->n_m_specs++] = s;
        hr_matcher_add(d->matcher, cs[i], s->filter);
    }
    d->dirty = false;
}

typedef struct match_ctx {
    hr_dispatch_t *d;
    const hr_log_entry_t *e;
    const hr_ce_event_t *ev;
} match_ctx_t;

/* A matching attached consumer gets the entry, or is detached at it when its ring is full. */
static void on_match(void *arg, void *key)
{
    match_ctx_t *mc = arg;
    hr_consumer_t *c = key;
    if (!c->attached || mc->e->seq > c->end_seq) {
        return;
    }
    if (push(c, mc->e, mc->ev)) {
        c->dkicked = true;
    } else {
        c->attached = false;
        c->next_seq = mc->e->seq;
        set_scanned(c, mc->e->seq - 1);
        mc->d->dirty = true;
    }
}

/* One attached pass. Returns true when it made progress. */
static bool attached_pass(hr_dispatch_t *d, hr_consumer_t **cs, size_t n)
{
    uint64_t last = hr_bus_last_seq(d->bus);
    if (d->pos > last) {
        return false;
    }
    size_t attached = 0;
    for (size_t i = 0; i < n; i++) {
        attached += cs[i]->attached;
    }
    if (attached == 0) {
        d->pos = last + 1; /* detached consumers keep their own positions */
        return true;
    }
    unsigned gen = atomic_load(&spec_gen);
    if (d->dirty || d->matcher == NULL || gen != d->spec_gen) {
        d->spec_gen = gen;
        build_index(d, cs, n);
    }
    if (hr_log_read(hr_bus_log(d->bus), d->pos, READ_RECORDS, READ_BYTES, &d->batch) != 0 ||
        d->batch.n == 0) {
        return false;
    }
    for (size_t r = 0; r < d->batch.n; r++) {
        const hr_log_entry_t *e = &d->batch.ents[r];
        hr_ce_event_t *ev = NULL;
        if (hr_ce_decode(e->payload, e->len, &ev) != 0) {
            fprintf(stderr, "herald: bus %s: seq %llu does not decode; not delivered\n",
                    hr_bus_name(d->bus), (unsigned long long)e->seq);
            continue;
        }
        match_ctx_t mc = {d, e, ev};
        hr_matcher_match(d->matcher, ev, on_match, &mc);
        hr_ce_event_free(ev);
    }
    uint64_t end = d->batch.ents[d->batch.n - 1].seq;
    for (size_t i = 0; i < n; i++) {
        if (cs[i]->attached) {
            set_scanned(cs[i], end < cs[i]->end_seq ? end : cs[i]->end_seq);
            cs[i]->next_seq = end + 1;
        }
    }
    d->pos = end + 1;
    return true;
}

/* Lets one detached consumer catch up. Returns true when it made progress. */
static bool catch_up(hr_dispatch_t *d, hr_consumer_t *c)
{
    if (c->next_seq > c->end_seq) {
        return false;
    }
    if (c->next_seq == d->pos && c->end_seq == UINT64_MAX) {
        c->attached = true;
        d->dirty = true;
        return true;
    }
    pthread_mutex_lock(&c->mu);
    uint32_t room = c->cap - c->count;
    pthread_mutex_unlock(&c->mu);
    if (room == 0) {
        atomic_store(&c->wants_room, true);
        return false;
    }
    if (hr_log_read(hr_bus_log(d->bus), c->next_seq, room < READ_RECORDS ? room : READ_RECORDS,
                    READ_BYTES, &d->batch) != 0 ||
        d->batch.n == 0) {
        return false;
    }
    bool progress = false;
    for (size_t r = 0; r < d->batch.n; r++) {
        const hr_log_entry_t *e = &d->batch.ents[r];
        if (e->seq > c->end_seq || (c->end_seq == UINT64_MAX && e->seq >= d->pos)) {
            break;
        }
        hr_ce_event_t *ev = NULL;
        bool match = false;
        if (hr_ce_decode(e->payload, e->len, &ev) == 0) {
            match = matches(c, ev);
        }
        if (match && !push(c, e, ev)) {
            hr_ce_event_free(ev);
            break;
        }
        hr_ce_event_free(ev);
        c->dkicked |= match;
        set_scanned(c, e->seq);
        c->next_seq = e->seq + 1;
        progress = true;
    }
    if (c->next_seq == d->pos && c->end_seq == UINT64_MAX) {
        c->attached = true;
        d->dirty = true;
    }
    if (!progress && c->end_seq != UINT64_MAX && d->batch.n && d->batch.ents[0].seq > c->end_seq) {
        set_scanned(c, c->end_seq);
        c->next_seq = c->end_seq + 1;
    }
    return progress;
}

static hr_consumer_t **snapshot(hr_dispatch_t *d, size_t *n);
static void kick_and_release(hr_dispatch_t *d, hr_consumer_t **cs, size_t n);

/* Dispatches a small commit on the calling thread. Returns true when everything committed
 * was dispatched, i.e. the dispatcher thread has nothing to do. Why: at moderate rates most
 * commit groups hold a few events, and waking another thread for each costs a futex wake (an
 * inter-processor interrupt when it sleeps on another CPU) and one more hop of delivery
 * latency. Big groups, detached consumers (whose reads may reach older segments on disk) and
 * commits with more appends already queued stay with the dispatcher thread, so that the
 * committing thread goes straight on to the next group when it is busy. */
static bool try_inline(hr_dispatch_t *d)
{
    if (hr_log_busy(hr_bus_log(d->bus))) {
        return false; /* the committing thread has the next group to write: keep it free */
    }
    if (pthread_mutex_trylock(&d->pass_mu) != 0) {
        return false; /* a pass is running; the wake-up makes it look again */
    }
    bool done = false;
    uint64_t last = hr_bus_last_seq(d->bus);
    if (last >= d->pos && last - d->pos < INLINE_MAX) {
        size_t n;
        hr_consumer_t **cs = snapshot(d, &n);
        bool all_attached = true;
        for (size_t i = 0; i < n; i++) {
            all_attached &= cs[i]->attached && cs[i]->kind != HR_CONSUMER_REPLAY;
        }
        if (all_attached) {
            (void)attached_pass(d, cs, n);
            done = d->pos > last;
            for (size_t i = 0; i < n; i++) {
                done &= cs[i]->attached;
            }
        }
        kick_and_release(d, cs, n);
    }
    pthread_mutex_unlock(&d->pass_mu);
    return done;
}

static void on_commit(hr_bus_watch_t *w)
{
    hr_dispatch_t *d = (hr_dispatch_t *)((char *)w - offsetof(hr_dispatch_t, watch));
    if (!try_inline(d)) {
        hr_dispatch_wake(d);
    }
}

void hr_dispatch_wake(hr_dispatch_t *d)
{
    pthread_mutex_lock(&d->mu);
    d->woken = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Drops dead consumers from the list; returns a snapshot with references. */
static hr_consumer_t **snapshot(hr_dispatch_t *d, size_t *n)
{
    pthread_mutex_lock(&d->mu);
    if (d->added) {
        d->dirty = true;
        d->added = false;
    }
    size_t k = 0;
    for (size_t i = 0; i < d->n_cs; i++) {
        if (hr_consumer_dead(d->cs[i])) {
            hr_consumer_unref(d->cs[i]);
            d->dirty = true; /* the index may point at it: rebuild before the next use */
            continue;
        }
        d->cs[k++] = d->cs[i];
    }
    d->n_cs = k;
    hr_consumer_t **snap = hr_xmalloc((k ? k : 1) * sizeof *snap);
    for (size_t i = 0; i < k; i++) {
        snap[i] = hr_consumer_ref(d->cs[i]);
    }
    *n = k;
    pthread_mutex_unlock(&d->mu);
    return snap;
}

/* Tells the delivery loop about consumers that got entries (and replays, which also end),
 * then drops the snapshot's references. */
static void kick_and_release(hr_dispatch_t *d, hr_consumer_t **cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (cs[i]->dkicked || cs[i]->kind == HR_CONSUMER_REPLAY) {
            cs[i]->dkicked = false;
            d->kick(d->kick_arg, cs[i]);
        }
        hr_consumer_unref(cs[i]);
    }
    free(cs);
}

static void *dispatch_main(void *arg)
{
    hr_dispatch_t *d = arg;
    pthread_setname_np(pthread_self(), "hr-dispatch"); /* for top -H and profiles */
    for (;;) {
        pthread_mutex_lock(&d->mu);
        bool stop = d->stop;
        d->woken = false;
        pthread_mutex_unlock(&d->mu);
        if (stop) {
            break;
        }
        pthread_mutex_lock(&d->pass_mu);
        size_t n;
        hr_consumer_t **cs = snapshot(d, &n);
        bool progress = attached_pass(d, cs, n);
        for (size_t i = 0; i < n; i++) {
            if (!cs[i]->attached) {
                progress |= catch_up(d, cs[i]);
            }
        }
        kick_and_release(d, cs, n);
        pthread_mutex_unlock(&d->pass_mu);
        if (progress) {
            continue;
        }
        pthread_mutex_lock(&d->mu);
        if (!d->woken && !d->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        pthread_mutex_unlock(&d->mu);
    }
    return NULL;
}

int hr_dispatch_create(hr_bus_t *bus, hr_dispatch_kick_fn kick, void *kick_arg, hr_dispatch_t **out)
{
    hr_dispatch_t *d = hr_xcalloc(1, sizeof *d);
    d->bus = bus;
    d->kick = kick;
    d->kick_arg = kick_arg;
    d->pos = hr_bus_last_seq(bus) + 1;
    pthread_mutex_init(&d->pass_mu, NULL);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->batch = (hr_log_batch_t)HR_LOG_BATCH_INIT;
    d->watch.wake = on_commit;
    hr_bus_watch_add(bus, &d->watch);
    if (pthread_create(&d->thread, NULL, dispatch_main, d) != 0) {
        hr_bus_watch_remove(bus, &d->watch);
        free(d);
        return HR_ENOMEM;
    }
    *out = d;
    return 0;
}

void hr_dispatch_destroy(hr_dispatch_t *d)
{
    if (d == NULL) {
        return;
    }
    hr_bus_watch_remove(d->bus, &d->watch);
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    drop_index(d);
    for (size_t i = 0; i < d->n_cs; i++) {
        hr_consumer_unref(d->cs[i]);
    }
    free(d->cs);
    hr_log_batch_free(&d->batch);
    pthread_mutex_destroy(&d->pass_mu);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

void hr_dispatch_add(hr_dispatch_t *d, hr_consumer_t *c)
{
    c->disp = d;
    pthread_mutex_lock(&d->mu);
    if (d->n_cs == d->cap_cs) {
        d->cap_cs = d->cap_cs ? d->cap_cs * 2 : 16;
        d->cs = hr_xrealloc(d->cs, d->cap_cs * sizeof *d->cs);
    }
    d->cs[d->n_cs++] = hr_consumer_ref(c);
    d->added = true;
    d->woken = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}
