/* SPDX-License-Identifier: MIT */
/*
 * The matcher index: many compiled filters, each with an opaque key, indexed so that matching
 * one event costs a hash lookup plus the filters that could match it, not every filter.
 *
 * Each filter is placed by what it requires (hr_filter_required_exact, _prefix): under its
 * exact `type` if it has one, else under the `type` prefix it requires, else under its exact
 * `source`, else in the residual list that every event checks. For an event, the candidates are
 * the filters under its type, under each prefix of its type, under its source, and the
 * residual ones; each candidate's full filter is then evaluated, so the result is
 * exactly what evaluating every filter would give (the index only skips filters that cannot
 * match).
 *
 * A matcher is built, then only read: hr_matcher_match is thread-safe on a matcher nobody
 * modifies. To change the set, build a new matcher and swap (the dispatcher does this).
 */
#ifndef HR_FILTER_MATCHER_H
#define HR_FILTER_MATCHER_H

#include <stddef.h>

#include "ce/event.h"
#include "filter/filter.h"

typedef struct hr_matcher hr_matcher_t;

hr_matcher_t *hr_matcher_create(void);
void hr_matcher_destroy(hr_matcher_t *m);

/* Adds `f` (borrowed: it must outlive the matcher) under `key`. Keys need not be unique. */
void hr_matcher_add(hr_matcher_t *m, void *key, const hr_filter_t *f);

/* Calls fn(arg, key) for every filter that matches `ev`, each once, in insertion order
 * within each index bucket (no global order is promised). Returns how many matched. */
size_t hr_matcher_match(const hr_matcher_t *m, const hr_ce_event_t *ev,
                        void (*fn)(void *arg, void *key), void *arg);

/* Number of filters, and how many are in the residual list (for tests and stats). */
size_t hr_matcher_size(const hr_matcher_t *m);
size_t hr_matcher_residual(const hr_matcher_t *m);

#endif
