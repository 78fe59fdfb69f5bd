/* SPDX-License-Identifier: MIT */
/*
 * Metadata store: buses (and later triggers, cursors, tokens) in one SQLite database in WAL
 * mode at <data>/herald.db. Documents are stored as JSON text. A mutex serializes access, so
 * any thread may call in; calls are short (one statement or one transaction).
 */
#ifndef HR_META_META_H
#define HR_META_META_H

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

#endif
