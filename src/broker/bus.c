/* SPDX-License-Identifier: MIT */
/*
 * One bus: its log, dedup window, configuration and watchers. See bus.h for the threading
 * contract. The dedup table is touched only by the log's commit thread (admit hook) once the
 * bus is open; before that, by the opening thread while rebuilding it from the log.
 */
#include "broker/bus_int.h"
#include "ce/event.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEDUP_MAX_ENTRIES (8u * 1024 * 1024)

void hr_bus_config_default(hr_bus_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->fsync = HR_FSYNC_ALWAYS;
    c->fsync_interval_ms = 100;
    c->dedup_window_ms = 10 * 60 * 1000;
    c->segment_bytes = 128ull << 20;
}

bool hr_bus_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok) {
            return false;
        }
    }
    return true;
}

static const char *const fsync_names[] = {"always", "interval", "never"};

/* Parses a duration member; null means 0 ("none") when allow_null. */
static int parse_dur(json_t *v, const char *name, uint64_t *out, bool allow_null, char *err,
                     size_t errsz)
{
    if (json_is_null(v) && allow_null) {
        *out = 0;
        return 0;
    }
    if (!json_is_string(v) || hr_duration_parse(json_string_value(v), out) != 0) {
        snprintf(err, errsz, "\"%s\" must be an ISO 8601 duration such as \"PT10M\" or \"P7D\"%s",
                 name, allow_null ? " (or null)" : "");
        return HR_EINVAL;
    }
    return 0;
}

static int parse_u64(json_t *v, const char *name, uint64_t *out, char *err, size_t errsz)
{
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        snprintf(err, errsz, "\"%s\" must be a positive integer, or null for no limit", name);
        return HR_EINVAL;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int hr_bus_config_parse(const char *json, size_t len, hr_bus_config_t *c, char *err, size_t errsz,
                        char *field, size_t fieldsz)
{
    int rc = HR_EINVAL;
    json_error_t jerr;
    hr_bus_config_t n = *c;
    snprintf(field, fieldsz, "body");
    json_t *root = len ? json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (root == NULL) {
        snprintf(err, errsz, "request body is not valid JSON: %s at line %d column %d", jerr.text,
                 jerr.line, jerr.column);
        return HR_EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errsz, "request body must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        snprintf(field, fieldsz, "%s", key);
        if (strcmp(key, "fsync") == 0) {
            size_t i;
            for (i = 0; i < 3; i++) {
                if (json_is_string(v) && strcmp(json_string_value(v), fsync_names[i]) == 0) {
                    break;
                }
            }
            if (i == 3) {
                snprintf(err, errsz, "\"fsync\" must be \"always\", \"interval\" or \"never\"");
                goto out;
            }
            n.fsync = (hr_fsync_policy_t)i;
        } else if (strcmp(key, "fsync_interval") == 0) {
            if (parse_dur(v, key, &n.fsync_interval_ms, false, err, errsz) != 0) {
                goto out;
            }
            if (n.fsync_interval_ms == 0 || n.fsync_interval_ms > 60000) {
                snprintf(err, errsz, "\"fsync_interval\" must be between PT0.001S and PT60S");
                goto out;
            }
        } else if (strcmp(key, "dedup_window") == 0) {
            if (parse_dur(v, key, &n.dedup_window_ms, true, err, errsz) != 0) {
                goto out;
            }
        } else if (strcmp(key, "retention") == 0) {
            if (json_is_null(v)) {
                n.retention_age_ms = n.retention_bytes = 0;
                continue;
            }
            if (!json_is_object(v)) {
                snprintf(err, errsz, "\"retention\" must be an object with max_age and max_bytes");
                goto out;
            }
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2)
            {
                snprintf(field, fieldsz, "retention.%s", k2);
                if (strcmp(k2, "max_age") == 0) {
                    if (parse_dur(v2, "retention.max_age", &n.retention_age_ms, true, err, errsz) !=
                        0) {
                        goto out;
                    }
                } else if (strcmp(k2, "max_bytes") == 0) {
                    if (parse_u64(v2, "retention.max_bytes", &n.retention_bytes, err, errsz) != 0) {
                        goto out;
                    }
                } else {
                    snprintf(err, errsz,
                             "unknown member \"retention.%s\" (expected max_age, max_bytes)", k2);
                    goto out;
                }
            }
        } else if (strcmp(key, "name") == 0 || strcmp(key, "stats") == 0 ||
                   strcmp(key, "created") == 0) {
            /* read-only members of the bus document: accepted so GET output can be PUT back */
        } else {
            snprintf(err, errsz,
                     "unknown member \"%s\" (expected fsync, fsync_interval, retention, "
                     "dedup_window)",
                     key);
            goto out;
        }
    }
    *c = n;
    field[0] = '\0';
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int put_dur(hr_buf_t *out, const char *name, uint64_t ms, bool zero_is_null)
{
    char d[48];
    if (zero_is_null && ms == 0) {
        return hr_buf_printf(out, "\"%s\":null", name);
    }
    hr_duration_format(ms, d, sizeof d);
    return hr_buf_printf(out, "\"%s\":\"%s\"", name, d);
}

int hr_bus_config_to_json(const hr_bus_config_t *c, hr_buf_t *out)
{
    int rc = hr_buf_printf(out, "\"fsync\":\"%s\",", fsync_names[c->fsync]);
    rc = rc ? rc : put_dur(out, "fsync_interval", c->fsync_interval_ms, false);
    rc = rc ? rc : hr_buf_puts(out, ",\"retention\":{");
    rc = rc ? rc : put_dur(out, "max_age", c->retention_age_ms, true);
    if (rc == 0) {
        rc = c->retention_bytes ? hr_buf_printf(out, ",\"max_bytes\":%llu},",
                                                (unsigned long long)c->retention_bytes)
                                : hr_buf_puts(out, ",\"max_bytes\":null},");
    }
    rc = rc ? rc : put_dur(out, "dedup_window", c->dedup_window_ms, true);
    return rc;
}

/* ---- publishing ---- */

/* The log's admit hook, on the commit thread: drops duplicates (also within the request),
 * assigns seqs, and remembers the new keys, atomically with the append. */
static int admit(void *arg, hr_log_req_t *lreq, uint64_t next_seq)
{
    hr_bus_t *bus = arg;
    hr_bus_pub_t *pub = lreq->user;
    uint64_t now = hr_wall_ns();
    if (now < bus->dedup_last_ns) {
        now = bus->dedup_last_ns;
    }
    bus->dedup_last_ns = now;
    size_t k = 0;
    uint64_t window_ms = atomic_load_explicit(&bus->dedup_window_ms, memory_order_relaxed);
    if (window_ms != bus->dedup_cur_ms) {
        hr_dedup_set_window(bus->dedup, window_ms);
        bus->dedup_cur_ms = window_ms;
    }
    if (window_ms) {
        hr_dedup_expire(bus->dedup, now);
    }
    for (size_t i = 0; i < pub->n; i++) {
        uint64_t seq;
        if (window_ms && hr_dedup_find(bus->dedup, pub->keys[i], now, &seq)) {
            pub->seqs[i] = seq;
            pub->dup[i] = 1;
            continue;
        }
        pub->seqs[i] = next_seq + k;
        pub->dup[i] = 0;
        if (window_ms) {
            hr_dedup_insert(bus->dedup, pub->keys[i], next_seq + k, now);
        }
        pub->scratch[k++] = pub->recs[i];
    }
    lreq->recs = pub->scratch;
    lreq->n_recs = k;
    return 0;
}

static void pub_done(hr_log_req_t *lreq)
{
    hr_bus_pub_t *pub = lreq->user;
    pub->status = lreq->status;
    pub->done(pub);
}

int hr_bus_publish(hr_bus_t *bus, hr_bus_pub_t *pub)
{
    memset(&pub->lreq, 0, sizeof pub->lreq);
    pub->status = 0;
    pub->lreq.recs = pub->recs;
    pub->lreq.n_recs = pub->n;
    pub->lreq.done = pub_done;
    pub->lreq.user = pub;
    return hr_log_submit(bus->log, &pub->lreq);
}

static void on_commit(void *arg, uint64_t last_seq)
{
    (void)last_seq;
    hr__bus_wake(arg);
}

void hr__bus_wake(hr_bus_t *bus)
{
    pthread_mutex_lock(&bus->watch_mu);
    for (hr_bus_watch_t *w = bus->watchers; w; w = w->next) {
        w->wake(w);
    }
    pthread_mutex_unlock(&bus->watch_mu);
}

/* ---- reading ---- */

int hr_bus_envelope_json(const hr_log_entry_t *e, hr_buf_t *out)
{
    hr_ce_event_t *ev = NULL;
    int rc = hr_ce_decode(e->payload, e->len, &ev);
    if (rc != 0) {
        return rc;
    }
    char ts[64];
    hr_rfc3339_format(e->time_ns, ts, sizeof ts);
    rc = hr_buf_printf(
        out, "{\"seq\":%llu,\"ingested\":\"%s\",\"event\":", (unsigned long long)e->seq, ts);
    rc = rc ? rc : hr_ce_to_json(ev, out);
    rc = rc ? rc : hr_buf_putc(out, '}');
    hr_ce_event_free(ev);
    return rc;
}

hr_log_t *hr_bus_log(hr_bus_t *bus)
{
    return bus->log;
}

const char *hr_bus_name(const hr_bus_t *bus)
{
    return bus->name;
}

uint64_t hr_bus_last_seq(hr_bus_t *bus)
{
    hr_log_stats_t st;
    hr_log_stats(bus->log, &st);
    return st.last_seq;
}

bool hr_bus_deleted(hr_bus_t *bus)
{
    return atomic_load(&bus->deleted);
}

int hr_bus_to_json(hr_bus_t *bus, hr_buf_t *out)
{
    hr_log_stats_t st;
    hr_log_stats(bus->log, &st);
    char created[64];
    hr_rfc3339_format(bus->created_ns, created, sizeof created);
    int rc = hr_buf_puts(out, "{\"name\":");
    rc = rc ? rc : hr_buf_json_str(out, bus->name, strlen(bus->name));
    rc = rc ? rc : hr_buf_putc(out, ',');
    pthread_mutex_lock(&bus->cfg_mu);
    hr_bus_config_t cfg = bus->cfg;
    pthread_mutex_unlock(&bus->cfg_mu);
    rc = rc ? rc : hr_bus_config_to_json(&cfg, out);
    rc =
        rc ? rc
           : hr_buf_printf(out,
                           ",\"created\":\"%s\",\"stats\":{\"first_seq\":%llu,\"last_seq\":%llu,"
                           "\"events\":%llu,\"bytes\":%llu,\"segments\":%u,\"failed\":%s}}",
                           created, (unsigned long long)st.first_seq,
                           (unsigned long long)st.last_seq, (unsigned long long)st.count,
                           (unsigned long long)st.bytes, st.segments, st.failed ? "true" : "false");
    return rc;
}

void hr_bus_watch_add(hr_bus_t *bus, hr_bus_watch_t *w)
{
    pthread_mutex_lock(&bus->watch_mu);
    w->prev = NULL;
    w->next = bus->watchers;
    if (bus->watchers) {
        bus->watchers->prev = w;
    }
    bus->watchers = w;
    pthread_mutex_unlock(&bus->watch_mu);
}

void hr_bus_watch_remove(hr_bus_t *bus, hr_bus_watch_t *w)
{
    pthread_mutex_lock(&bus->watch_mu);
    if (w->prev) {
        w->prev->next = w->next;
    } else if (bus->watchers == w) {
        bus->watchers = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    w->prev = w->next = NULL;
    pthread_mutex_unlock(&bus->watch_mu);
}

void hr_bus_watch_each(hr_bus_t *bus, void (*fn)(hr_bus_watch_t *w, void *arg), void *arg)
{
    pthread_mutex_lock(&bus->watch_mu);
    for (hr_bus_watch_t *w = bus->watchers; w; w = w->next) {
        fn(w, arg);
    }
    pthread_mutex_unlock(&bus->watch_mu);
}

void hr_bus_watch_lock(hr_bus_t *bus)
{
    pthread_mutex_lock(&bus->watch_mu);
}

void hr_bus_watch_unlock(hr_bus_t *bus)
{
    pthread_mutex_unlock(&bus->watch_mu);
}

/* ---- open and close ---- */

static void log_opts(const hr_bus_config_t *c, hr_bus_t *bus, hr_log_opts_t *o)
{
    hr_log_opts_default(o);
    o->fsync = c->fsync;
    o->fsync_interval_ms = (uint32_t)c->fsync_interval_ms;
    o->segment_bytes = c->segment_bytes;
    o->retention_age_ms = c->retention_age_ms;
    o->retention_bytes = c->retention_bytes;
    o->admit = admit;
    o->admit_arg = bus;
    o->on_commit = on_commit;
    o->commit_arg = bus;
}

/* Rebuilds the dedup window from the log's records ingested within the window. */
static int rebuild_dedup(hr_bus_t *bus)
{
    if (bus->cfg.dedup_window_ms == 0) {
        return 0;
    }
    uint64_t now = hr_wall_ns(), win = bus->cfg.dedup_window_ms * 1000000ull;
    uint64_t seq = hr_log_seek_time(bus->log, now > win ? now - win : 0);
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    int rc = 0;
    for (;;) {
        if ((rc = hr_log_read(bus->log, seq, 4096, 8u << 20, &b)) != 0 || b.n == 0) {
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            hr_ce_event_t *ev = NULL;
            if (hr_ce_decode(b.ents[i].payload, b.ents[i].len, &ev) != 0) {
                fprintf(stderr, "herald: bus %s: seq %llu does not decode; skipped for dedup\n",
                        bus->name, (unsigned long long)b.ents[i].seq);
                continue;
            }
            hr_dedup_insert(bus->dedup, hr_dedup_key(ev->source, ev->id), b.ents[i].seq,
                            b.ents[i].time_ns);
            if (b.ents[i].time_ns > bus->dedup_last_ns) {
                bus->dedup_last_ns = b.ents[i].time_ns;
            }
            hr_ce_event_free(ev);
        }
        seq = b.ents[b.n - 1].seq + 1;
    }
    hr_log_batch_free(&b);
    return rc;
}

int hr__bus_open(const char *name, const char *dir, const hr_bus_config_t *cfg, uint64_t created_ns,
                 hr_bus_t **out)
{
    *out = NULL;
    hr_bus_t *bus = hr_xcalloc(1, sizeof *bus);
    bus->name = hr_xstrdup(name);
    bus->dir = hr_xstrdup(dir);
    bus->cfg = *cfg;
    bus->created_ns = created_ns;
    atomic_init(&bus->refs, 1);
    atomic_init(&bus->deleted, false);
    pthread_mutex_init(&bus->watch_mu, NULL);
    pthread_mutex_init(&bus->cfg_mu, NULL);
    hr_dedup_create(cfg->dedup_window_ms, DEDUP_MAX_ENTRIES, &bus->dedup);
    bus->dedup_cur_ms = cfg->dedup_window_ms;
    atomic_init(&bus->dedup_window_ms, cfg->dedup_window_ms);
    hr_log_opts_t o;
    log_opts(cfg, bus, &o);
    int rc = hr_log_open(dir, &o, &bus->log);
    if (rc == 0) {
        rc = rebuild_dedup(bus);
    }
    if (rc != 0) {
        fprintf(stderr, "herald: cannot open bus %s in %s: %s\n", name, dir, hr_strerror(rc));
        hr__bus_close(bus);
        return rc;
    }
    *out = bus;
    return 0;
}

/* Applies a new configuration. The log is reconfigured under its own lock; the dedup window
 * is handed to the commit thread through an atomic that the admit hook reads at each request
 * (widening the window does not bring back keys that already left it). */
void hr__bus_configure(hr_bus_t *bus, const hr_bus_config_t *cfg)
{
    pthread_mutex_lock(&bus->cfg_mu);
    bus->cfg.fsync = cfg->fsync;
    bus->cfg.fsync_interval_ms = cfg->fsync_interval_ms;
    bus->cfg.retention_age_ms = cfg->retention_age_ms;
    bus->cfg.retention_bytes = cfg->retention_bytes;
    bus->cfg.dedup_window_ms = cfg->dedup_window_ms;
    hr_bus_config_t c = bus->cfg;
    pthread_mutex_unlock(&bus->cfg_mu);
    hr_log_opts_t o;
    log_opts(&c, bus, &o);
    hr_log_configure(bus->log, &o);
    atomic_store(&bus->dedup_window_ms, c.dedup_window_ms);
}

void hr__bus_close(hr_bus_t *bus)
{
    if (bus == NULL) {
        return;
    }
    hr_log_close(bus->log);
    hr_dedup_destroy(bus->dedup);
    pthread_mutex_destroy(&bus->watch_mu);
    pthread_mutex_destroy(&bus->cfg_mu);
    free(bus->name);
    free(bus->dir);
    free(bus);
}
