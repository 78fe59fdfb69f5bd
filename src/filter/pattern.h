/* SPDX-License-Identifier: MIT */
/*
 * EventBridge-style content patterns (DESIGN.md §5, the "pattern" filter dialect): compiles a
 * JSON pattern such as
 *
 *     {"type": ["com.example.order"],
 *      "data": {"price": [{"numeric": [">", 0, "<=", 100]}], "tags": ["urgent"]}}
 *
 * into an immutable hr_pattern_t and matches it against CloudEvents (top-level keys are
 * attributes, "data" reaches into JSON data) or against plain JSON documents (top-level keys
 * are members; used by the event-ruler conformance tests and the benchmark).
 *
 * Compiling happens when a trigger is created (HTTP worker threads, `herald apply`) and matching
 * on the dispatcher threads; a compiled pattern is read-only, so any number of threads may match
 * it at once without locking. Matching a pattern that looks into "data" parses the event's JSON
 * data once per call (this allocates; on allocation failure the data counts as absent). The
 * semantics, and where they differ from aws/event-ruler, are listed in pattern.c.
 */
#ifndef HR_FILTER_PATTERN_H
#define HR_FILTER_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "ce/event.h"

typedef struct hr_pattern hr_pattern_t;

/* Compiles `pattern` (a JSON object; borrowed, nothing is kept after the call) with
 * EventBridge syntax: top-level keys may be any member name, as in event-ruler's fixtures.
 * (The "pattern" filter dialect is stricter: its top-level keys must be CloudEvents attribute
 * names, "data" or "$or".)
 *
 * Returns 0 and sets *out (free with hr_pattern_destroy), or HR_EINVAL with a full-sentence
 * message in err[errsz] and the location in path[pathsz], relative to the pattern (e.g.
 * "data.price" or "$or[1].source"; "" is the pattern itself), or HR_ENOMEM. err and path may be
 * NULL when their size is 0; both are NUL-terminated and truncated to fit. On failure *out is
 * NULL. Reentrant; any thread. */
int hr_pattern_compile(const json_t *pattern, hr_pattern_t **out, char *err, size_t errsz,
                       char *path, size_t pathsz);

/* True when CloudEvent `ev` matches `p` (both borrowed). Attributes are read with hr_ce_get;
 * integer and boolean extensions also match numeric and boolean patterns. "data" is parsed once
 * per call, only when the pattern needs it and the attributes did not already decide. Thread-safe
 * on a shared `p`. */
bool hr_pattern_match(const hr_pattern_t *p, const hr_ce_event_t *ev);

/* As hr_pattern_match, with the event's data already parsed: `data` (borrowed) is the JSON
 * value of ev->data, or NULL when the event has no JSON data. Lets a caller that evaluates many
 * patterns against one event parse its data once for all of them. Does not allocate. */
bool hr_pattern_match_data(const hr_pattern_t *p, const hr_ce_event_t *ev, const json_t *data);

/* True when the JSON document `doc` (borrowed; normally an object) matches `p`: top-level keys
 * are members of `doc`, with the same array and value rules as inside "data". Thread-safe;
 * does not allocate. */
bool hr_pattern_match_json(const hr_pattern_t *p, const json_t *doc);

/* For the matcher's index: the string that attribute `attr` (not "data") must equal for `p` to
 * match any event, or NULL when the pattern implies none. Sources: a top-level leaf whose values
 * are all the same plain string, or a top-level "$or" whose every branch requires the same
 * value. Sound: whenever `p` matches `ev`, hr_ce_get(ev, attr) equals the result. Owned by `p`,
 * valid until hr_pattern_destroy. Thread-safe. */
const char *hr_pattern_required_exact(const hr_pattern_t *p, const char *attr);

/* Frees `p`; NULL is a no-op. No other thread may still be using it. */
void hr_pattern_destroy(hr_pattern_t *p);

#endif
