/* SPDX-License-Identifier: MIT */
/*
 * Trigger filters: compiles a trigger's filter document (the CloudEvents Subscriptions API
 * dialects exact, prefix, suffix, all, any and not, or the legacy Knative
 * {"attributes": {...}} form) into an immutable hr_filter_t, and evaluates it against events.
 *
 * Compiling happens when a trigger is created or updated (HTTP worker threads, `herald apply`,
 * POST /v1/filters/test) and at startup; matching happens on the dispatcher threads for every
 * event of the trigger's bus. A compiled filter is read-only: any number of threads may call
 * hr_filter_match and hr_filter_required_exact on one filter at the same time without locking.
 * Matching never allocates.
 *
 * Semantics (DESIGN.md §5; Subscriptions API §3.2.4; filter.c has the details):
 *   - filters are ANDed; an absent or empty "filters" array matches every event;
 *   - an attribute the event lacks never matches exact, prefix or suffix (so under "not" it
 *     does);
 *   - values compare byte for byte with the attribute's canonical string form (hr_ce_get):
 *     integer and boolean extensions as "42" / "true", time as it was published.
 */
#ifndef HR_FILTER_FILTER_H
#define HR_FILTER_FILTER_H

#include <stdbool.h>

#include <jansson.h>

#include "ce/event.h"

/* Limits that bound compile time, memory and the matcher's recursion. */
#define HR_FILTER_MAX_DEPTH 32   /* filter objects nested inside one another, top level = 1 */
#define HR_FILTER_MAX_NODES 1024 /* filter objects plus attribute conditions, in total */
#define HR_FILTER_ATTR_MAX 64    /* longest attribute name (HR_CE_EXT_NAME_MAX) */

typedef struct hr_filter hr_filter_t;

/* Why a filter document was rejected. Both strings are NUL-terminated, valid UTF-8 and
 * printable (control characters in user keys are shown as '?'; long keys are shortened). */
typedef struct hr_filter_error {
    /* Where: a path into the trigger document, e.g. "filters[1].any[0].exact" or
     * "filter.attributes.Type". */
    char path[128];
    /* What: a full sentence naming the problem and the expected form. */
    char msg[256];
} hr_filter_error_t;

/* Compiles the "filters" member of a trigger document: a JSON array of filter objects, each
 * with exactly one dialect key, all of which must match. `filters` is borrowed (nothing is
 * kept after the call); NULL or JSON null means the trigger has no filters and the result
 * matches every event.
 *
 * Returns 0 and sets *out (free with hr_filter_destroy), or HR_EINVAL with *err filled in
 * (err may be NULL), or HR_ENOMEM; on failure *out is NULL. Reentrant; any thread. */
int hr_filter_compile(const json_t *filters, hr_filter_t **out, hr_filter_error_t *err);

/* Compiles the legacy Knative "filter" member: {"attributes": {"type": "x", "source": ""}}.
 * Every entry must hold: a non-empty value is an exact match, an empty value only requires
 * the attribute to be present. `{}`, `{"attributes": {}}`, `{"attributes": null}`, JSON null and
 * NULL match every event. Ownership, return codes and threading as for hr_filter_compile; paths
 * start at "filter". */
int hr_filter_compile_legacy(const json_t *filter, hr_filter_t **out, hr_filter_error_t *err);

/* True when event `ev` passes filter `f` (both borrowed, neither NULL). Pure and thread-safe;
 * does not allocate. */
bool hr_filter_match(const hr_filter_t *f, const hr_ce_event_t *ev);

/* For the matcher's index: the value that attribute `attr` must equal for `f` to match any
 * event, or NULL when the filter implies none. Sources: a top-level exact, an exact inside a
 * top-level all (at any depth of all), an any whose every branch requires the same value, and
 * a non-empty legacy entry. When the filter requires two different values the result is one
 * of them (the filter then matches nothing, so either is a correct index key). The result is
 * owned by `f` and valid until hr_filter_destroy. Thread-safe. */
const char *hr_filter_required_exact(const hr_filter_t *f, const char *attr);

/* For the matcher's index: a prefix that attribute `attr` must start with for `f` to match (a
 * `prefix` condition at the top level or inside top-level `all`s), or NULL. Sound: never a
 * prefix the filter does not imply. Valid as long as `f`. */
const char *hr_filter_required_prefix(const hr_filter_t *f, const char *attr);

/* True when `f` is exactly "attribute `attr` equals hr_filter_required_exact(f, attr)" and
 * nothing else (one exact condition, in the filters list or the legacy form), so an index that
 * already compared the value may skip evaluating it. */
bool hr_filter_is_exact_only(const hr_filter_t *f, const char *attr);

/* Frees `f`; NULL is a no-op. No other thread may still be using it. */
void hr_filter_destroy(hr_filter_t *f);

#endif
