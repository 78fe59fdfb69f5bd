/* SPDX-License-Identifier: MIT */
/*
 * The dedup window of one bus: remembers which (source, id) pairs were appended in the last
 * `window_ms`, with their seq. Keys are kept as 128-bit hashes (two independent 64-bit
 * hashes), so memory is 40 bytes per remembered event whatever the ids' lengths.
 *
 * Owned by the bus's commit thread (the log's admit hook), which is the only thread that
 * touches it after the bus is open; it is rebuilt from the log at open (DESIGN.md §2.7).
 */
#ifndef HR_BROKER_DEDUP_H
#define HR_BROKER_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hr_dedup hr_dedup_t;

typedef struct hr_dedup_key {
    uint64_t h1, h2;
} hr_dedup_key_t;

/* `max_entries` bounds memory: past it the oldest entries leave the window early. */
void hr_dedup_create(uint64_t window_ms, size_t max_entries, hr_dedup_t **out);
void hr_dedup_destroy(hr_dedup_t *d);
void hr_dedup_set_window(hr_dedup_t *d, uint64_t window_ms);

hr_dedup_key_t hr_dedup_key(const char *source, const char *id);

/* Looks `key` up among entries no older than now_ns - window. Returns 1 and sets *seq when
 * found, else 0. */
int hr_dedup_find(hr_dedup_t *d, hr_dedup_key_t key, uint64_t now_ns, uint64_t *seq);

/* Remembers key → seq at time_ns (times must be non-decreasing across calls). */
void hr_dedup_insert(hr_dedup_t *d, hr_dedup_key_t key, uint64_t seq, uint64_t time_ns);

/* Drops entries older than now_ns - window. */
void hr_dedup_expire(hr_dedup_t *d, uint64_t now_ns);

size_t hr_dedup_count(const hr_dedup_t *d);

#endif
