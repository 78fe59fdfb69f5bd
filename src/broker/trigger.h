/* SPDX-License-Identifier: MIT */
/*
 * The trigger document (DESIGN.md §6): parsing and validating a PUT /v1/triggers/{name} body
 * into an hr_trigger_spec_t, and writing it back as JSON. A spec is immutable once built and
 * shared by reference count, so the dispatcher and the delivery loop can keep using an old
 * spec while an update swaps in a new one.
 */
#ifndef HR_BROKER_TRIGGER_H
#define HR_BROKER_TRIGGER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filter/filter.h"
#include "util/buf.h"

typedef enum hr_backoff { HR_BACKOFF_EXPONENTIAL = 0, HR_BACKOFF_LINEAR = 1 } hr_backoff_t;
typedef enum hr_format { HR_FORMAT_BINARY = 0, HR_FORMAT_STRUCTURED = 1 } hr_format_t;
typedef enum hr_ordering { HR_ORDERING_NONE = 0, HR_ORDERING_KEY = 1 } hr_ordering_t;
typedef enum hr_start_kind {
    HR_START_LATEST = 0,
    HR_START_EARLIEST = 1,
    HR_START_SEQ = 2,
    HR_START_TIME = 3
} hr_start_kind_t;

typedef struct hr_header_kv {
    char *name;
    char *value;
} hr_header_kv_t;

typedef struct hr_trigger_spec {
    char *name;
    char *bus;
    char *sink;
    hr_filter_t *filter; /* compiled filters (legacy form included) */
    char *filters_json;  /* the filters exactly as given ("filters" array or legacy object) */
    bool legacy_filter;
    /* delivery */
    uint32_t retry; /* retries after the first attempt */
    hr_backoff_t backoff;
    uint64_t backoff_delay_ms;
    uint64_t max_backoff_ms;
    uint64_t timeout_ms; /* per attempt */
    uint64_t retry_after_max_ms;
    uint64_t max_age_ms;    /* 0 = no limit; measured from the first attempt */
    char *dead_letter_sink; /* NULL = none */
    uint32_t pipeline;      /* requests one sink connection may carry at once (HTTP/1.1
                             * pipelining); 1 = none, the default */
    hr_format_t format;
    hr_ordering_t ordering;
    uint32_t max_in_flight;
    double rate_limit; /* events/s; 0 = none */
    hr_start_kind_t start;
    uint64_t start_value; /* seq or time in ns for SEQ / TIME */
    char *start_text;     /* as given */
    char *reply_bus;      /* NULL = the trigger's bus */
    hr_header_kv_t *headers;
    size_t n_headers;
    /* internal */
    atomic_int refs;
} hr_trigger_spec_t;

/* Parses a trigger document. `name` is the trigger's name from the path. Returns 0 and a spec
 * with one reference, or HR_EINVAL with a sentence in err and the JSON path of the fault in
 * path (e.g. "delivery.backoff_delay", "filters[1].exact"). */
int hr_trigger_parse(const char *name, const char *json, size_t len, hr_trigger_spec_t **out,
                     char *err, size_t errsz, char *path, size_t pathsz);

/* Appends the spec as a JSON object (the document as the user would PUT it, with defaults). */
int hr_trigger_spec_to_json(const hr_trigger_spec_t *s, hr_buf_t *out);

/* Checks a trigger name: the same rule as bus names, ^[a-z0-9][a-z0-9._-]{0,62}$. */
bool hr_trigger_name_valid(const char *name);

hr_trigger_spec_t *hr_trigger_spec_ref(hr_trigger_spec_t *s);
void hr_trigger_spec_unref(hr_trigger_spec_t *s);

#endif
