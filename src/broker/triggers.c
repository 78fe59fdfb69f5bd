/* SPDX-License-Identifier: MIT */
/*
 * The trigger registry (see triggers.h). A mutex guards the list of triggers and the map of
 * dispatchers; each trigger owns a live consumer and a list of replay/redrive consumers.
 *
 * Cursors: a trigger's cursor is its live consumer's (dispatch.h). The persist thread collects
 * every cursor each flush interval and writes them in one transaction; after a restart a
 * trigger resumes from its stored cursor + 1, so delivery is at least once.
 */
#include "broker/triggers.h"
#include "broker/dispatch.h"
#include "broker/persist.h"
#include "broker/trigger.h"
#include "ce/event.h"
#include "delivery/deliver.h"
#include "delivery/loop.h"
#include "obs/trace.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct trig {
    char *name;
    unsigned shard; /* which delivery loop serves it */
    char *bus;
    uint64_t created_ns;
    hr_trigger_spec_t *spec; /* current; guarded by the registry mutex */
    hr_consumer_t *live;
    hr_consumer_t *others; /* replays and redrives, linked by next_in_owner */
    hr_trig_stats_t stats;
    atomic_int refs; /* the registry's + one per consumer */
    struct trig *next;
} trig_t;

typedef struct disp_entry {
    char *bus;
    hr_bus_t *busref;
    hr_dispatch_t *d;
    struct disp_entry *next;
} disp_entry_t;

struct hr_triggers {
    hr_triggers_opts_t opts;
    hr_meta_t *meta;
    hr_buses_t *buses;
    pthread_mutex_t mu;
    trig_t *trigs;
    disp_entry_t *disps;
    hr_dloop_t **loops; /* delivery loops, one thread each; a trigger stays on one */
    hr_deliver_t **dvs;
    unsigned n_loops;
    hr_persist_t *persist;
    hr_trace_t *trace;
    /* rows handed to the persist thread (owned until the next collect) */
    hr_meta_trigger_t *rows;
    size_t n_rows;
};

/* ---- trigger lifetime ---- */

static trig_t *trig_ref(trig_t *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

static void trig_unref(void *owner)
{
    trig_t *g = owner;
    if (atomic_fetch_sub(&g->refs, 1) != 1) {
        return;
    }
    hr_trig_stats_destroy(&g->stats);
    hr_trigger_spec_unref(g->spec);
    free(g->name);
    free(g->bus);
    free(g);
}

static trig_t *find(hr_triggers_t *t, const char *name)
{
    for (trig_t *g = t->trigs; g; g = g->next) {
        if (strcmp(g->name, name) == 0) {
            return g;
        }
    }
    return NULL;
}

/* The dispatcher of a bus, created on first use. Registry mutex held. */
static hr_dispatch_t *dispatcher(hr_triggers_t *t, const char *bus)
{
    for (disp_entry_t *e = t->disps; e; e = e->next) {
        if (strcmp(e->bus, bus) == 0) {
            return e->d;
        }
    }
    hr_bus_t *b = hr_buses_get(t->buses, bus);
    if (b == NULL) {
        return NULL;
    }
    disp_entry_t *e = hr_xcalloc(1, sizeof *e);
    if (hr_dispatch_create(b, hr_deliver_kick, NULL, &e->d) != 0) {
        hr_bus_release(b);
        free(e);
        return NULL;
    }
    e->bus = hr_xstrdup(bus);
    e->busref = b;
    e->next = t->disps;
    t->disps = e;
    return e->d;
}

static hr_consumer_t *new_consumer(hr_triggers_t *t, trig_t *g, hr_consumer_kind_t kind,
                                   uint64_t next_seq, uint64_t end_seq)
{
    hr_consumer_t *c = hr_consumer_create(kind, trig_ref(g), g->spec, next_seq, end_seq);
    c->on_free = trig_unref;
    c->dv = t->dvs[g->shard % t->n_loops];
    c->stats = &g->stats;
    return c;
}

/* Starts the live consumer at cursor + 1. Registry mutex held. */
static int start_live(hr_triggers_t *t, trig_t *g, uint64_t cursor)
{
    hr_dispatch_t *d = dispatcher(t, g->bus);
    if (d == NULL) {
        return HR_ENOTFOUND;
    }
    g->live = new_consumer(t, g, HR_CONSUMER_LIVE, cursor + 1, UINT64_MAX);
    hr_dispatch_add(d, g->live);
    return 0;
}

static trig_t *trig_new(hr_trigger_spec_t *spec, uint64_t created_ns)
{
    trig_t *g = hr_xcalloc(1, sizeof *g);
    g->name = hr_xstrdup(spec->name);
    g->bus = hr_xstrdup(spec->bus);
    g->created_ns = created_ns;
    g->spec = spec;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = spec->name; *p; p++) {
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    }
    g->shard = (unsigned)(h >> 32);
    atomic_init(&g->refs, 1);
    hr_trig_stats_init(&g->stats);
    return g;
}

/* ---- callbacks from the persist thread and the loop ---- */

static void collect(void *arg, hr_meta_trigger_t **out, size_t *n)
{
    hr_triggers_t *t = arg;
    for (size_t i = 0; i < t->n_rows; i++) {
        free((char *)t->rows[i].name);
    }
    free(t->rows);
    t->rows = NULL;
    t->n_rows = 0;
    pthread_mutex_lock(&t->mu);
    size_t cnt = 0;
    for (trig_t *g = t->trigs; g; g = g->next) {
        cnt++;
    }
    t->rows = hr_xcalloc(cnt + 1, sizeof *t->rows);
    for (trig_t *g = t->trigs; g; g = g->next) {
        if (g->live == NULL) {
            continue;
        }
        hr_meta_trigger_t *r = &t->rows[t->n_rows++];
        r->name = hr_xstrdup(g->name);
        r->cursor = hr_consumer_cursor(g->live);
        r->delivered = atomic_load(&g->stats.delivered);
        r->retried = atomic_load(&g->stats.retried);
        r->failed = atomic_load(&g->stats.failed);
    }
    pthread_mutex_unlock(&t->mu);
    *out = t->rows;
    *n = t->n_rows;
}

/* On the loop thread: a replay or redrive is done; unlink and drop it. */
static void finished(void *arg, hr_consumer_t *c)
{
    hr_triggers_t *t = arg;
    trig_t *g = c->owner;
    bool found = false;
    pthread_mutex_lock(&t->mu);
    for (hr_consumer_t **pp = &g->others; *pp; pp = &(*pp)->next_in_owner) {
        if (*pp == c) {
            *pp = c->next_in_owner;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (found) {
        hr_consumer_kill(c);
        hr_consumer_unref(c);
    }
}

/* ---- open and close ---- */

typedef struct load_ctx {
    hr_triggers_t *t;
    int rc;
} load_ctx_t;

static int load_one(void *arg, const hr_meta_trigger_t *row)
{
    load_ctx_t *lc = arg;
    hr_triggers_t *t = lc->t;
    char err[256], path[128];
    hr_trigger_spec_t *spec;
    if (hr_trigger_parse(row->name, row->doc_json, strlen(row->doc_json), &spec, err, sizeof err,
                         path, sizeof path) != 0) {
        fprintf(stderr, "herald: trigger %s: stored document is invalid (%s: %s); skipped\n",
                row->name, path, err);
        return 0;
    }
    trig_t *g = trig_new(spec, row->created_ns);
    atomic_store(&g->stats.delivered, row->delivered);
    atomic_store(&g->stats.retried, row->retried);
    atomic_store(&g->stats.failed, row->failed);
    g->next = t->trigs;
    t->trigs = g;
    if (start_live(t, g, row->cursor) != 0) {
        fprintf(stderr, "herald: trigger %s: bus %s does not exist; not delivering\n", row->name,
                row->bus);
    }
    return 0;
}

int hr_triggers_open(const hr_triggers_opts_t *opts, hr_meta_t *meta, hr_buses_t *buses,
                     hr_triggers_t **out)
{
    hr_triggers_t *t = hr_xcalloc(1, sizeof *t);
    if (opts) {
        t->opts = *opts;
    }
    t->meta = meta;
    t->buses = buses;
    pthread_mutex_init(&t->mu, NULL);
    hr_trace_create(t->opts.trace_events ? t->opts.trace_events : 100000, &t->trace);
    hr_dloop_opts_t lo;
    hr_dloop_opts_default(&lo);
    lo.ca_file = t->opts.ca_file;
    /* A trigger's max_in_flight (up to 10,000) is what bounds its concurrency; libcurl's own
     * per-host cap only has to stay out of the way (requests beyond it wait inside libcurl and
     * their timeout runs while they wait). */
    lo.max_host_connections = 1024;
    lo.max_connections = 4096;
    unsigned n = t->opts.delivery_threads;
    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores < 1 ? 1 : cores > 4 ? 4 : (unsigned)cores;
    }
    t->loops = hr_xcalloc(n, sizeof *t->loops);
    t->dvs = hr_xcalloc(n, sizeof *t->dvs);
    int rc = hr_persist_create(meta, t->opts.cursor_flush_ms, collect, t, &t->persist);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if ((rc = hr_dloop_create(&lo, &t->loops[i])) == 0) {
            t->n_loops++;
            hr_deliver_opts_t dopts = {t->loops[i],      buses,    t->trace, t->persist,
                                       t->opts.max_hops, finished, t};
            hr_deliver_create(&dopts, &t->dvs[i]);
        }
    }
    if (rc != 0) {
        hr_triggers_close(t);
        return rc;
    }
    load_ctx_t lc = {t, 0};
    pthread_mutex_lock(&t->mu);
    rc = hr_meta_trigger_each(meta, load_one, &lc);
    pthread_mutex_unlock(&t->mu);
    if (rc != 0) {
        hr_triggers_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void hr_triggers_close(hr_triggers_t *t)
{
    if (t == NULL) {
        return;
    }
    /* 1. no more kicks: stop the dispatchers */
    for (disp_entry_t *e = t->disps, *n; e; e = n) {
        n = e->next;
        hr_dispatch_destroy(e->d);
        hr_bus_release(e->busref);
        free(e->bus);
        free(e);
    }
    t->disps = NULL;
    /* 2. stop delivery: attempts in flight end with "shutting down" and stay unsettled */
    for (unsigned i = 0; i < t->n_loops; i++) {
        hr_dloop_destroy(t->loops[i]);
    }
    /* 3. last cursor flush */
    hr_persist_destroy(t->persist);
    for (trig_t *g = t->trigs, *n; g; g = n) {
        n = g->next;
        for (hr_consumer_t *c = g->others, *cn; c; c = cn) {
            cn = c->next_in_owner;
            hr_consumer_unref(c);
        }
        hr_consumer_unref(g->live);
        trig_unref(g);
    }
    for (size_t i = 0; i < t->n_rows; i++) {
        free((char *)t->rows[i].name);
    }
    free(t->rows);
    for (unsigned i = 0; i < t->n_loops; i++) {
        hr_deliver_destroy(t->dvs[i]);
    }
    free(t->loops);
    free(t->dvs);
    hr_trace_destroy(t->trace);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ---- status ---- */

static void put_time(hr_buf_t *out, const char *name, uint64_t ns)
{
    char ts[HR_RFC3339_MAX];
    if (ns == 0) {
        hr_buf_printf(out, "\"%s\":null", name);
        return;
    }
    hr_rfc3339_format(ns, ts, sizeof ts);
    hr_buf_printf(out, "\"%s\":\"%s\"", name, ts);
}

/* Appends the trigger document with a "status" member. Registry mutex held. */
static void trig_json(hr_triggers_t *t, trig_t *g, hr_buf_t *out)
{
    hr_buf_t doc = HR_BUF_INIT;
    hr_trigger_spec_to_json(g->spec, &doc);
    hr_buf_append(out, doc.data, doc.len - 1); /* without the closing brace */
    hr_buf_free(&doc);
    uint64_t cursor = g->live ? hr_consumer_cursor(g->live) : 0;
    uint64_t last = 0, lag_ns = 0, now = hr_wall_ns();
    hr_bus_t *b = hr_buses_get(t->buses, g->bus);
    if (b) {
        last = hr_bus_last_seq(b);
        if (last > cursor) {
            hr_log_batch_t batch = HR_LOG_BATCH_INIT;
            if (hr_log_read(hr_bus_log(b), cursor + 1, 1, 1, &batch) == 0 && batch.n == 1 &&
                now > batch.ents[0].time_ns) {
                lag_ns = now - batch.ents[0].time_ns;
            }
            hr_log_batch_free(&batch);
        }
        hr_bus_release(b);
    }
    uint64_t dls = 0;
    hr_meta_dl_count(t->meta, g->bus, g->name, &dls);
    hr_buf_puts(out, ",\"status\":{");
    put_time(out, "created", g->created_ns);
    hr_buf_printf(out,
                  ",\"cursor\":%llu,\"last_seq\":%llu,\"lag_events\":%llu,\"lag_seconds\":%.3f,"
                  "\"in_flight\":%u,\"delivered\":%llu,\"retried\":%llu,\"failed\":%llu,"
                  "\"replies\":%llu,\"dead_letters\":%llu,",
                  (unsigned long long)cursor, (unsigned long long)last,
                  (unsigned long long)(last > cursor ? last - cursor : 0), lag_ns / 1e9,
                  atomic_load(&g->stats.in_flight),
                  (unsigned long long)atomic_load(&g->stats.delivered),
                  (unsigned long long)atomic_load(&g->stats.retried),
                  (unsigned long long)atomic_load(&g->stats.failed),
                  (unsigned long long)atomic_load(&g->stats.replies), (unsigned long long)dls);
    pthread_mutex_lock(&g->stats.mu);
    hr_buf_puts(out, "\"last_error\":");
    if (g->stats.last_error[0]) {
        hr_buf_json_str(out, g->stats.last_error, strlen(g->stats.last_error));
    } else {
        hr_buf_puts(out, "null");
    }
    hr_buf_putc(out, ',');
    put_time(out, "last_error_time", g->stats.last_error_ns);
    pthread_mutex_unlock(&g->stats.mu);
    hr_buf_puts(out, ",\"replays\":[");
    int k = 0;
    for (hr_consumer_t *c = g->others; c; c = c->next_in_owner) {
        pthread_mutex_lock(&c->mu);
        hr_buf_printf(out, "%s{\"kind\":\"%s\",\"position\":%llu,\"to\":%llu,\"pending\":%u}",
                      k++ ? "," : "", c->kind == HR_CONSUMER_REPLAY ? "replay" : "redrive",
                      (unsigned long long)c->scanned, (unsigned long long)c->end_seq, c->count);
        pthread_mutex_unlock(&c->mu);
    }
    hr_buf_puts(out, "]}}");
}

int hr_triggers_get(hr_triggers_t *t, const char *name, hr_buf_t *out)
{
    pthread_mutex_lock(&t->mu);
    trig_t *g = find(t, name);
    if (g) {
        trig_json(t, g, out);
    }
    pthread_mutex_unlock(&t->mu);
    return g ? 0 : HR_ENOTFOUND;
}

int hr_triggers_list(hr_triggers_t *t, const char *bus, hr_buf_t *out)
{
    pthread_mutex_lock(&t->mu);
    /* sorted by name: collect, sort, print */
    size_t n = 0;
    for (trig_t *g = t->trigs; g; g = g->next) {
        n++;
    }
    trig_t **arr = hr_xcalloc(n + 1, sizeof *arr);
    size_t k = 0;
    for (trig_t *g = t->trigs; g; g = g->next) {
        if (bus == NULL || strcmp(g->bus, bus) == 0) {
            arr[k++] = g;
        }
    }
    for (size_t i = 1; i < k; i++) {
        for (size_t j = i; j > 0 && strcmp(arr[j - 1]->name, arr[j]->name) > 0; j--) {
            trig_t *tmp = arr[j];
            arr[j] = arr[j - 1];
            arr[j - 1] = tmp;
        }
    }
    hr_buf_puts(out, "{\"triggers\":[");
    for (size_t i = 0; i < k; i++) {
        if (i) {
            hr_buf_putc(out, ',');
        }
        trig_json(t, arr[i], out);
    }
    hr_buf_puts(out, "]}");
    free(arr);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

size_t hr_triggers_on_bus(hr_triggers_t *t, const char *bus)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (trig_t *g = t->trigs; g; g = g->next) {
        n += strcmp(g->bus, bus) == 0;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* ---- changes ---- */

static void err_set(hr_trig_err_t *e, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void err_set(hr_trig_err_t *e, unsigned status, const char *field, const char *fmt, ...)
{
    e->status = status;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* The cursor a new trigger starts from. */
static uint64_t initial_cursor(hr_bus_t *b, const hr_trigger_spec_t *s)
{
    hr_log_stats_t st;
    hr_log_stats(hr_bus_log(b), &st);
    switch (s->start) {
    case HR_START_EARLIEST:
        return st.first_seq ? st.first_seq - 1 : 0;
    case HR_START_SEQ:
        return s->start_value - 1;
    case HR_START_TIME:
        return hr_log_seek_time(hr_bus_log(b), s->start_value) - 1;
    case HR_START_LATEST:
    default:
        return st.last_seq;
    }
}

int hr_triggers_put(hr_triggers_t *t, const char *name, const char *json, size_t len, bool *created,
                    hr_buf_t *out, hr_trig_err_t *err)
{
    char msg[256], path[128];
    hr_trigger_spec_t *spec;
    if (!hr_trigger_name_valid(name)) {
        err_set(err, 400, "trigger",
                "invalid trigger name \"%.64s\": use 1 to 63 characters of a-z, 0-9, '.', '_' and "
                "'-', starting with a letter or digit",
                name);
        return HR_EINVAL;
    }
    if (hr_trigger_parse(name, json, len, &spec, msg, sizeof msg, path, sizeof path) != 0) {
        err_set(err, 400, path, "%s", msg);
        return HR_EINVAL;
    }
    hr_bus_t *b = hr_buses_get(t->buses, spec->bus);
    if (b == NULL) {
        err_set(err, 404, "bus", "no bus named \"%s\"", spec->bus);
        hr_trigger_spec_unref(spec);
        return HR_ENOTFOUND;
    }
    if (spec->reply_bus && !hr_bus_name_valid(spec->reply_bus)) {
        err_set(err, 400, "reply_bus", "\"reply_bus\" is not a valid bus name");
        hr_trigger_spec_unref(spec);
        hr_bus_release(b);
        return HR_EINVAL;
    }
    hr_buf_t doc = HR_BUF_INIT;
    hr_trigger_spec_to_json(spec, &doc);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    trig_t *g = find(t, name);
    if (g && strcmp(g->bus, spec->bus) != 0) {
        err_set(err, 409, "bus",
                "trigger \"%s\" delivers from bus \"%s\"; its bus cannot change (delete and "
                "re-create it)",
                name, g->bus);
        rc = HR_ECONFLICT;
        hr_trigger_spec_unref(spec);
        goto out;
    }
    uint64_t now = hr_wall_ns();
    hr_meta_trigger_t row = {name, spec->bus, (const char *)doc.data, g ? g->created_ns : now, 0, 0,
                             0,    0};
    if (g == NULL) {
        row.cursor = initial_cursor(b, spec);
    }
    if ((rc = hr_meta_trigger_put(t->meta, &row)) != 0) {
        err_set(err, 500, NULL, "storing trigger \"%s\" failed: %s", name, hr_strerror(rc));
        hr_trigger_spec_unref(spec);
        goto out;
    }
    if (g) {
        hr_trigger_spec_t *old = g->spec;
        g->spec = spec;
        hr_consumer_set_spec(g->live, spec);
        for (hr_consumer_t *c = g->others; c; c = c->next_in_owner) {
            hr_consumer_set_spec(c, spec);
        }
        hr_trigger_spec_unref(old);
        hr_deliver_kick(NULL, g->live);
        *created = false;
    } else {
        g = trig_new(spec, now);
        g->next = t->trigs;
        t->trigs = g;
        rc = start_live(t, g, row.cursor);
        *created = true;
    }
    trig_json(t, g, out);
out:
    pthread_mutex_unlock(&t->mu);
    hr_bus_release(b);
    hr_buf_free(&doc);
    return rc;
}

int hr_triggers_delete(hr_triggers_t *t, const char *name)
{
    pthread_mutex_lock(&t->mu);
    trig_t **pp = &t->trigs;
    while (*pp && strcmp((*pp)->name, name) != 0) {
        pp = &(*pp)->next;
    }
    trig_t *g = *pp;
    if (g == NULL) {
        pthread_mutex_unlock(&t->mu);
        return HR_ENOTFOUND;
    }
    int rc = hr_meta_trigger_delete(t->meta, name);
    if (rc != 0 && rc != HR_ENOTFOUND) {
        pthread_mutex_unlock(&t->mu);
        return rc;
    }
    *pp = g->next;
    hr_consumer_t *others = g->others;
    g->others = NULL;
    hr_consumer_t *live = g->live;
    g->live = NULL;
    pthread_mutex_unlock(&t->mu);
    for (hr_consumer_t *c = others, *n; c; c = n) {
        n = c->next_in_owner;
        hr_consumer_kill(c);
        hr_deliver_kick(NULL, c);
        hr_consumer_unref(c);
    }
    if (live) {
        hr_consumer_kill(live);
        hr_deliver_kick(NULL, live);
        hr_consumer_unref(live);
    }
    trig_unref(g);
    return 0;
}

int hr_triggers_replay(hr_triggers_t *t, const char *name, uint64_t from, uint64_t to,
                       hr_buf_t *out, hr_trig_err_t *err)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    trig_t *g = find(t, name);
    if (g == NULL) {
        err_set(err, 404, "trigger", "no trigger named \"%s\"", name);
        rc = HR_ENOTFOUND;
        goto out;
    }
    hr_bus_t *b = hr_buses_get(t->buses, g->bus);
    hr_dispatch_t *d = dispatcher(t, g->bus);
    uint64_t last = b ? hr_bus_last_seq(b) : 0;
    hr_bus_release(b);
    if (d == NULL) {
        err_set(err, 404, "bus", "bus \"%s\" does not exist", g->bus);
        rc = HR_ENOTFOUND;
        goto out;
    }
    if (to == 0 || to > last) {
        to = last;
    }
    if (from > to) {
        err_set(err, 400, "from", "nothing to replay: from %llu is after the last seq %llu",
                (unsigned long long)from, (unsigned long long)to);
        rc = HR_EINVAL;
        goto out;
    }
    hr_consumer_t *c = new_consumer(t, g, HR_CONSUMER_REPLAY, from, to);
    c->next_in_owner = g->others;
    g->others = c;
    hr_dispatch_add(d, c);
    hr_buf_printf(out, "{\"trigger\":");
    hr_buf_json_str(out, name, strlen(name));
    hr_buf_printf(out, ",\"from\":%llu,\"to\":%llu}", (unsigned long long)from,
                  (unsigned long long)to);
out:
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- dead letters ---- */

typedef struct dl_list_ctx {
    hr_buf_t *out;
    size_t n;
    int64_t last_id;
} dl_list_ctx_t;

static int dl_list_one(void *arg, const hr_meta_dl_t *dl)
{
    dl_list_ctx_t *lc = arg;
    hr_buf_t *out = lc->out;
    if (lc->n++) {
        hr_buf_putc(out, ',');
    }
    lc->last_id = dl->id;
    hr_buf_printf(out, "{\"id\":%lld,\"trigger\":", (long long)dl->id);
    hr_buf_json_str(out, dl->trigger, strlen(dl->trigger));
    hr_buf_printf(out, ",\"seq\":%llu,", (unsigned long long)dl->seq);
    put_time(out, "time", dl->time_ns);
    hr_buf_printf(out, ",\"attempts\":%u,\"event\":", dl->attempts);
    hr_ce_event_t *ev = NULL;
    if (hr_ce_decode(dl->event, dl->event_len, &ev) == 0 &&
        hr_ce_set_ext(ev, "heralderrorcode", dl->code, HR_CE_STRING) == 0 &&
        hr_ce_set_ext(ev, "heralderrordata", dl->data, HR_CE_STRING) == 0 &&
        hr_ce_set_ext(ev, "heralderrordest", dl->dest, HR_CE_STRING) == 0) {
        hr_ce_to_json(ev, out);
    } else {
        hr_buf_puts(out, "null");
    }
    hr_ce_event_free(ev);
    return hr_buf_putc(out, '}');
}

int hr_triggers_deadletters(hr_triggers_t *t, const char *bus, const char *trigger, int64_t after,
                            size_t limit, hr_buf_t *out)
{
    hr_buf_puts(out, "{\"deadletters\":[");
    dl_list_ctx_t lc = {out, 0, after};
    int rc = hr_meta_dl_each(t->meta, bus, trigger, after, 0, 0, limit, dl_list_one, &lc);
    hr_buf_printf(out, "],\"next\":%lld}", (long long)lc.last_id);
    return rc;
}

typedef struct redrive_row {
    int64_t id;
    char *trigger;
    uint64_t seq, time_ns;
    uint8_t *event;
    size_t event_len;
} redrive_row_t;

typedef struct redrive_ctx {
    redrive_row_t *rows;
    size_t n, cap;
} redrive_ctx_t;

static int redrive_collect(void *arg, const hr_meta_dl_t *dl)
{
    redrive_ctx_t *rc = arg;
    if (rc->n == rc->cap) {
        rc->cap = rc->cap ? rc->cap * 2 : 64;
        rc->rows = hr_xrealloc(rc->rows, rc->cap * sizeof *rc->rows);
    }
    redrive_row_t *r = &rc->rows[rc->n++];
    r->id = dl->id;
    r->trigger = hr_xstrdup(dl->trigger);
    r->seq = dl->seq;
    r->time_ns = dl->time_ns;
    r->event = hr_xmalloc(dl->event_len ? dl->event_len : 1);
    memcpy(r->event, dl->event, dl->event_len);
    r->event_len = dl->event_len;
    return 0;
}

#define REDRIVE_MAX 10000

int hr_triggers_redrive(hr_triggers_t *t, const char *bus, const char *trigger, uint64_t from,
                        uint64_t to, hr_buf_t *out, hr_trig_err_t *err)
{
    redrive_ctx_t rc = {0};
    int r = hr_meta_dl_each(t->meta, bus, trigger, 0, from, to, REDRIVE_MAX, redrive_collect, &rc);
    if (r != 0) {
        err_set(err, 500, NULL, "reading dead letters failed: %s", hr_strerror(r));
        goto out;
    }
    size_t redriven = 0, skipped = 0;
    pthread_mutex_lock(&t->mu);
    /* one redrive consumer per trigger, filled in dead-letter order */
    for (size_t i = 0; i < rc.n; i++) {
        if (rc.rows[i].trigger == NULL) {
            continue;
        }
        trig_t *g = find(t, rc.rows[i].trigger);
        if (g == NULL || strcmp(g->bus, bus) != 0) {
            skipped++;
            continue;
        }
        uint32_t cnt = 0;
        for (size_t j = i; j < rc.n; j++) {
            cnt += rc.rows[j].trigger && strcmp(rc.rows[j].trigger, g->name) == 0;
        }
        hr_consumer_t *c = new_consumer(t, g, HR_CONSUMER_REDRIVE, 1, 0);
        hr_consumer_reserve(c, cnt);
        for (size_t j = i; j < rc.n; j++) {
            redrive_row_t *row = &rc.rows[j];
            if (row->trigger == NULL || strcmp(row->trigger, g->name) != 0) {
                continue;
            }
            hr_ce_event_t *ev = NULL;
            uint64_t key = 0;
            bool keyed = false;
            if (hr_ce_decode(row->event, row->event_len, &ev) == 0) {
                keyed = hr_dispatch_key(ev, &key);
            }
            hr_ce_event_free(ev);
            hr_consumer_append(c, row->seq, row->time_ns, row->event, row->event_len, row->id,
                               keyed, key);
            free(row->trigger);
            row->trigger = NULL;
            redriven++;
        }
        c->next_in_owner = g->others;
        g->others = c;
        hr_deliver_kick(NULL, c);
    }
    pthread_mutex_unlock(&t->mu);
    hr_buf_printf(out, "{\"redriven\":%zu,\"skipped\":%zu}", redriven, skipped);
out:
    for (size_t i = 0; i < rc.n; i++) {
        free(rc.rows[i].trigger);
        free(rc.rows[i].event);
    }
    free(rc.rows);
    return r;
}

int hr_triggers_trace(hr_triggers_t *t, const char *bus, uint64_t seq, hr_buf_t *out)
{
    return hr_trace_json(t->trace, bus, seq, out);
}
