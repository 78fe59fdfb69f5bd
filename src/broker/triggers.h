/* SPDX-License-Identifier: MIT */
/*
 * The trigger registry and runtime: triggers persisted in the metadata store, one dispatcher
 * per bus that has triggers, the delivery loop, the persist thread, the trace store, replays
 * and dead-letter redrives. The HTTP handlers call in here from HTTP worker threads; every
 * function is thread-safe.
 */
#ifndef HR_BROKER_TRIGGERS_H
#define HR_BROKER_TRIGGERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/bus.h"
#include "meta/meta.h"
#include "util/buf.h"

typedef struct hr_triggers hr_triggers_t;

typedef struct hr_triggers_opts {
    uint32_t max_hops;         /* reply hop limit (default 8) */
    size_t trace_events;       /* events traced in memory (default 100,000) */
    uint32_t cursor_flush_ms;  /* how often cursors are written (default 500) */
    const char *ca_file;       /* CA bundle for https sinks; NULL = system default */
    unsigned delivery_threads; /* delivery loops; triggers are spread over them (default:
                                * the number of cores, at most 4) */
} hr_triggers_opts_t;

int hr_triggers_open(const hr_triggers_opts_t *opts, hr_meta_t *meta, hr_buses_t *buses,
                     hr_triggers_t **out);
/* Stops dispatch and delivery (in-flight attempts are abandoned, to be redelivered after the
 * next start), writes the cursors, frees everything. */
void hr_triggers_close(hr_triggers_t *t);

/* A user-facing error: status code, field/path and message. */
typedef struct hr_trig_err {
    unsigned status;
    char field[128];
    char msg[256];
} hr_trig_err_t;

/* Creates or updates trigger `name` from a JSON document; *created tells which. On success
 * appends the trigger's JSON (document + status) to out. */
int hr_triggers_put(hr_triggers_t *t, const char *name, const char *json, size_t len, bool *created,
                    hr_buf_t *out, hr_trig_err_t *err);
int hr_triggers_get(hr_triggers_t *t, const char *name, hr_buf_t *out);
int hr_triggers_list(hr_triggers_t *t, const char *bus, hr_buf_t *out);
int hr_triggers_delete(hr_triggers_t *t, const char *name);
/* Number of triggers on a bus (a bus with triggers cannot be deleted). */
size_t hr_triggers_on_bus(hr_triggers_t *t, const char *bus);

/* Starts a replay of trigger `name` over [from, to] (to 0 = the last seq now). */
int hr_triggers_replay(hr_triggers_t *t, const char *name, uint64_t from, uint64_t to,
                       hr_buf_t *out, hr_trig_err_t *err);

/* Lists dead letters of a bus (trigger NULL = all) after id `after`, at most limit. */
int hr_triggers_deadletters(hr_triggers_t *t, const char *bus, const char *trigger, int64_t after,
                            size_t limit, hr_buf_t *out);
/* Redrives dead letters of a bus (by trigger, by seq range [from, to] when to > 0).
 * Appends {"redriven": n, "skipped": m}. */
int hr_triggers_redrive(hr_triggers_t *t, const char *bus, const char *trigger, uint64_t from,
                        uint64_t to, hr_buf_t *out, hr_trig_err_t *err);

/* Appends the trace of event (bus, seq), or returns HR_ENOTFOUND. */
int hr_triggers_trace(hr_triggers_t *t, const char *bus, uint64_t seq, hr_buf_t *out);

#endif
