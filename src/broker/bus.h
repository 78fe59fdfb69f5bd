/* SPDX-License-Identifier: MIT */
/*
 * A bus: one named, totally ordered event log with its dedup window and its configuration
 * (fsync policy, retention, dedup window), and the registry of buses (`default` always exists).
 *
 * Threads: any thread may publish, read and look buses up. Publishing is asynchronous: the
 * bus's log commit thread runs the dedup check atomically with seq assignment (the log's admit
 * hook) and calls the publish's done() once the events are durable. Buses are reference
 * counted: hr_buses_get() takes a reference that hr_bus_release() gives back; a deleted bus is
 * closed and its files removed when its last reference goes.
 */
#ifndef HR_BROKER_BUS_H
#define HR_BROKER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/dedup.h"
#include "log/log.h"
#include "meta/meta.h"
#include "util/buf.h"

typedef struct hr_bus hr_bus_t;
typedef struct hr_buses hr_buses_t;

typedef struct hr_bus_config {
    hr_fsync_policy_t fsync;
    uint64_t fsync_interval_ms;
    uint64_t retention_age_ms; /* 0 = forever */
    uint64_t retention_bytes;  /* 0 = unlimited */
    uint64_t dedup_window_ms;  /* 0 = no dedup */
    uint64_t segment_bytes;
} hr_bus_config_t;

void hr_bus_config_default(hr_bus_config_t *c);

/* Applies the members present in JSON document `json` (a PUT body) on top of `c`. Returns 0,
 * or HR_EINVAL with a sentence naming the member in err (size errsz) and its name in field. */
int hr_bus_config_parse(const char *json, size_t len, hr_bus_config_t *c, char *err, size_t errsz,
                        char *field, size_t fieldsz);
/* Appends the config as JSON members (no braces) to out. */
int hr_bus_config_to_json(const hr_bus_config_t *c, hr_buf_t *out);

/* Checks a bus name: ^[a-z0-9][a-z0-9._-]{0,62}$. */
bool hr_bus_name_valid(const char *name);

/* ---- publishing ---- */

typedef struct hr_bus_pub hr_bus_pub_t;
struct hr_bus_pub {
    /* Set by the caller; all borrowed until done() runs. */
    const hr_iov_t *recs;       /* encoded events (hr_ce_encode) */
    const hr_dedup_key_t *keys; /* dedup key of each event */
    size_t n;
    uint64_t *seqs;                  /* out: seq of each event (original seq for duplicates) */
    uint8_t *dup;                    /* out: 1 where the event was a duplicate */
    hr_iov_t *scratch;               /* n entries of scratch space for the bus */
    void (*done)(hr_bus_pub_t *pub); /* on the commit thread; must not block */
    void *user;
    /* Set before done(). */
    int status; /* 0 or a negative code; on error nothing was stored */
    /* Internal. */
    hr_log_req_t lreq;
};

/* Submits a publish. Returns 0 (done() will run once) or a negative code (it won't). */
int hr_bus_publish(hr_bus_t *bus, hr_bus_pub_t *pub);

/* ---- reading ---- */

/* Appends the read envelope {"seq":…,"ingested":"…","event":{…}} of one log entry. */
int hr_bus_envelope_json(const hr_log_entry_t *e, hr_buf_t *out);

hr_log_t *hr_bus_log(hr_bus_t *bus);
const char *hr_bus_name(const hr_bus_t *bus);
uint64_t hr_bus_last_seq(hr_bus_t *bus);
bool hr_bus_deleted(hr_bus_t *bus);

/* Appends the bus document (name, config, created, stats) as a JSON object. */
int hr_bus_to_json(hr_bus_t *bus, hr_buf_t *out);

/* Watchers are woken (on the commit thread, or on delete) whenever new events commit. */
typedef struct hr_bus_watch hr_bus_watch_t;
struct hr_bus_watch {
    void (*wake)(hr_bus_watch_t *w); /* must not block; called with the bus's watch lock held */
    hr_bus_watch_t *prev, *next;
};
void hr_bus_watch_add(hr_bus_t *bus, hr_bus_watch_t *w);
void hr_bus_watch_remove(hr_bus_t *bus, hr_bus_watch_t *w);
/* Runs fn(w, arg) for every watcher with the watch lock held (used to resume streams). */
void hr_bus_watch_each(hr_bus_t *bus, void (*fn)(hr_bus_watch_t *w, void *arg), void *arg);
/* Locks and unlocks the watch lock (for check-then-sleep without lost wake-ups). */
void hr_bus_watch_lock(hr_bus_t *bus);
void hr_bus_watch_unlock(hr_bus_t *bus);

/* ---- the registry ---- */

/* Opens every bus recorded in `meta` under data_dir/buses and creates `default` if missing. */
int hr_buses_open(const char *data_dir, hr_meta_t *meta, hr_buses_t **out);
void hr_buses_close(hr_buses_t *reg);

/* Returns a referenced bus or NULL. */
hr_bus_t *hr_buses_get(hr_buses_t *reg, const char *name);
void hr_bus_release(hr_bus_t *bus);

/* Creates or updates bus `name`. *created tells which. Returns a referenced bus in *out. */
int hr_buses_put(hr_buses_t *reg, const char *name, const hr_bus_config_t *cfg, bool *created,
                 hr_bus_t **out);

/* Deletes a bus: HR_ENOTFOUND, HR_EINVAL for `default`, HR_ECONFLICT when it holds events and
 * !force. */
int hr_buses_delete(hr_buses_t *reg, const char *name, bool force);

/* Calls fn for each bus (referenced during the call), in name order. */
int hr_buses_each(hr_buses_t *reg, int (*fn)(void *arg, hr_bus_t *bus), void *arg);

/* Calls fn for each bus's watchers (to resume streams on shutdown or for heartbeats). */
void hr_buses_watch_each(hr_buses_t *reg, void (*fn)(hr_bus_watch_t *w, void *arg), void *arg);

#endif
