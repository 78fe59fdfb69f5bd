/* SPDX-License-Identifier: MIT */
/*
 * Metadata store: buses (and later triggers, cursors, tokens) in one SQLite database in WAL
 * mode at <data>/herald.db. Documents are stored as JSON text. A mutex serializes access, so
 * any thread may call in; calls are short (one statement or one transaction).
 */
#ifndef HR_META_META_H
#define HR_META_META_H

#include <stddef.h>
#include <stdint.h>

typedef struct hr_meta hr_meta_t;

/* Opens or creates the database at `path` and migrates its schema. */
int hr_meta_open(const char *path, hr_meta_t **out);
void hr_meta_close(hr_meta_t *m);

/* Stores bus `name`'s config document (JSON text, copied) with its creation time. */
int hr_meta_bus_put(hr_meta_t *m, const char *name, const char *config_json, uint64_t created_ns);
int hr_meta_bus_delete(hr_meta_t *m, const char *name);

/* Calls fn once per stored bus, in name order. Strings are valid only during the call.
 * Stops early and returns fn's value when it returns non-zero. */
typedef int (*hr_meta_bus_fn)(void *arg, const char *name, const char *config_json,
                              uint64_t created_ns);
int hr_meta_bus_each(hr_meta_t *m, hr_meta_bus_fn fn, void *arg);

/* ---- triggers ---- */

typedef struct hr_meta_trigger {
    const char *name;
    const char *bus;
    const char *doc_json;
    uint64_t created_ns;
    uint64_t cursor;
    uint64_t delivered, retried, failed;
} hr_meta_trigger_t;

/* Inserts or replaces a trigger's document; a new row starts with the given cursor, an
 * existing row keeps its cursor and counters. */
int hr_meta_trigger_put(hr_meta_t *m, const hr_meta_trigger_t *t);
int hr_meta_trigger_delete(hr_meta_t *m, const char *name);
typedef int (*hr_meta_trigger_fn)(void *arg, const hr_meta_trigger_t *t);
int hr_meta_trigger_each(hr_meta_t *m, hr_meta_trigger_fn fn, void *arg);

/* ---- dead letters ---- */

typedef struct hr_meta_dl {
    int64_t id; /* assigned on insert */
    const char *bus;
    const char *trigger;
    uint64_t seq;
    uint64_t time_ns; /* when it was given up */
    uint32_t attempts;
    const char *code;  /* heralderrorcode: "http_400", "timeout", "connection", ... */
    const char *data;  /* heralderrordata: response body or error text (truncated) */
    const char *dest;  /* heralderrordest: the sink */
    const void *event; /* the event's log record (hr_ce_encode) */
    size_t event_len;
} hr_meta_dl_t;

/* One transaction: stores the dead letters `dls` (ids filled in), updates the cursors and
 * counters of `cursors`, and deletes the dead letters `done_ids` (redriven and settled). */
int hr_meta_commit(hr_meta_t *m, hr_meta_dl_t *dls, size_t n_dls, const hr_meta_trigger_t *cursors,
                   size_t n_cursors, const int64_t *done_ids, size_t n_done);

/* Lists dead letters of `bus` (optionally of one trigger, "" = all) with id > after_id and,
 * when seq_to > 0, seq in [seq_from, seq_to], in id order, at most limit. */
typedef int (*hr_meta_dl_fn)(void *arg, const hr_meta_dl_t *dl);
int hr_meta_dl_each(hr_meta_t *m, const char *bus, const char *trigger, int64_t after_id,
                    uint64_t seq_from, uint64_t seq_to, size_t limit, hr_meta_dl_fn fn, void *arg);
/* Counts dead letters of a trigger. */
int hr_meta_dl_count(hr_meta_t *m, const char *bus, const char *trigger, uint64_t *out);

#endif
