/* SPDX-License-Identifier: MIT */
/*
 * Per-event delivery traces: for an event (bus, seq), which triggers matched, every delivery
 * attempt (time, HTTP status, latency, error) and each trigger's outcome. Kept in memory,
 * compactly and bounded: at most `max_events` traced events; the oldest traces are forgotten
 * first, and each (event, trigger) keeps at most HR_TRACE_MAX_ATTEMPTS attempts (later ones
 * are counted, the last is always kept). Traces do not survive a restart.
 *
 * Threads: any (one mutex); calls are short.
 */
#ifndef HR_OBS_TRACE_H
#define HR_OBS_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define HR_TRACE_MAX_ATTEMPTS 16

typedef struct hr_trace hr_trace_t;

typedef enum hr_trace_outcome {
    HR_TRACE_PENDING = 0,
    HR_TRACE_DELIVERED = 1,
    HR_TRACE_DEAD_LETTERED = 2,
    HR_TRACE_DROPPED = 3, /* the trigger was deleted before delivery */
} hr_trace_outcome_t;

void hr_trace_create(size_t max_events, hr_trace_t **out);
void hr_trace_destroy(hr_trace_t *t);

/* Records that `trigger` matched event (bus, seq). `replay` marks a replay or redrive, which
 * is traced as its own entry beside the live delivery's. */
void hr_trace_matched(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger,
                      int replay);
/* Records one attempt. status is the HTTP status, or 0 when there was no response (then
 * `error` says why). */
void hr_trace_attempt(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger, int replay,
                      uint64_t time_ns, int status, uint64_t latency_us, const char *error);
/* Records the outcome of (event, trigger), with a note (reply published, error code...). */
void hr_trace_outcome(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger, int replay,
                      hr_trace_outcome_t outcome, const char *note);

/* Appends {"bus":…,"seq":…,"triggers":[{"trigger":…,"outcome":…,"attempts":[…]}]}.
 * Returns 0, or HR_ENOTFOUND when nothing is known about the event. */
int hr_trace_json(hr_trace_t *t, const char *bus, uint64_t seq, hr_buf_t *out);

#endif
