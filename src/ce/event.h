/* SPDX-License-Identifier: MIT */
/*
 * The CloudEvents 1.0 event model, its validation, and its codecs:
 *   - HTTP binary content mode (ce- headers + body), structured mode
 *     (application/cloudevents+json) and batched mode (application/cloudevents-batch+json);
 *   - the structured JSON encoding used for reads;
 *   - the compact binary record stored in the bus log (never re-parsed JSON).
 *
 * Called by the HTTP ingress (worker threads) and readers; every function is reentrant and
 * keeps no global state. An hr_ce_event_t owns all of its memory (free with hr_ce_event_free).
 *
 * Invariant: what is published is what is read back, byte for byte: attribute values as given
 * (after exactly one percent-decoding in binary mode), JSON data as its exact source text, text
 * data as its bytes, binary data as its bytes (shown as data_base64 in JSON).
 */
#ifndef HR_CE_EVENT_H
#define HR_CE_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* How an extension value was typed by the producer. Binary mode headers are always STRING;
 * structured JSON distinguishes JSON strings, integers and booleans. */
typedef enum hr_ce_kind {
    HR_CE_STRING = 0,
    HR_CE_INT = 1,  /* value is the canonical decimal text, e.g. "-42" (range of int32) */
    HR_CE_BOOL = 2, /* value is "true" or "false" */
} hr_ce_kind_t;

/* Longest extension name accepted. The spec says names SHOULD NOT exceed 20 characters; longer
 * ones are accepted (SDKs send them) up to this hard limit, which bounds header and memory use. */
#define HR_CE_EXT_NAME_MAX 64

typedef struct hr_ce_ext {
    char *name;  /* [a-z0-9]+ (the spec's 20-character limit is a SHOULD, not enforced); owned */
    char *value; /* canonical string form; owned; valid UTF-8 */
    hr_ce_kind_t kind;
} hr_ce_ext_t;

typedef enum hr_ce_data_kind {
    HR_CE_DATA_NONE = 0,   /* the event has no data */
    HR_CE_DATA_JSON = 1,   /* data holds the exact text of one JSON value */
    HR_CE_DATA_TEXT = 2,   /* data holds UTF-8 text (a JSON string's content in structured mode) */
    HR_CE_DATA_BINARY = 3, /* data holds arbitrary bytes (data_base64 in JSON) */
} hr_ce_data_kind_t;

typedef struct hr_ce_event {
    /* Required context attributes (never NULL in a valid event). Owned, NUL-terminated. */
    char *id;
    char *source;
    char *specversion;
    char *type;
    /* Optional context attributes, NULL when absent. Owned. */
    char *datacontenttype;
    char *dataschema;
    char *subject;
    char *time;
    /* Extension attributes, sorted by name, names unique. Owned. */
    hr_ce_ext_t *exts;
    size_t n_exts;
    /* A W3C traceparent herald generated at ingress because the event carried none. Not an
     * attribute: it is stored in the record, sent as the HTTP traceparent header on delivery,
     * and never shown as part of the event. NULL when absent. Owned. */
    char *trace_gen;
    /* A parsed form of the data that a filter may attach (the pattern dialect attaches its
     * jansson tree) so every other filter evaluating this event reuses it. Not part of the
     * event's value: not encoded, compared or cloned; freed with the event by
     * data_cache_free. Not thread-safe: an event is evaluated by one thread at a time. */
    void *data_cache;
    void (*data_cache_free)(void *cache);
    /* Data. Owned; NULL with data_len 0 when data_kind is NONE. */
    hr_ce_data_kind_t data_kind;
    uint8_t *data;
    size_t data_len;
} hr_ce_event_t;

/* Where a decoding or validation error happened, for the user's error message. */
typedef struct hr_ce_error {
    char field[64]; /* the attribute or member at fault, e.g. "source", "ce-time", "data" */
    char msg[256];  /* a full sentence naming the field and the expected form */
    long index;     /* for batches: the 0-based position of the bad event, else -1 */
} hr_ce_error_t;

/* One raw HTTP header as received (name case-insensitive; value not yet percent-decoded). */
typedef struct hr_ce_header {
    const char *name;
    const char *value;
} hr_ce_header_t;

/* Decoding. Each returns 0 and sets *out (caller frees), or a negative HR_E* code
 * (HR_EINVAL for bad input with *err filled in, HR_ENOMEM) and leaves *out NULL. All validate. */

/* Binary content mode. `hdrs` are all request headers; only ce-* ones are used, each value
 * percent-decoded exactly once and required to be valid UTF-8. `content_type` (may be NULL)
 * becomes datacontenttype. The body (borrowed) becomes data: JSON kind when the content type
 * is JSON (application/json, text/json or any +json; then the body must be valid JSON), TEXT
 * when its media type is text (text/plain etc.) and it is valid UTF-8, otherwise BINARY; no data
 * when len == 0. */
int hr_ce_from_binary(const hr_ce_header_t *hdrs, size_t n_hdrs, const char *content_type,
                      const uint8_t *body, size_t len, hr_ce_event_t **out, hr_ce_error_t *err);

/* Structured content mode: one JSON object per the CloudEvents JSON format. `data` and
 * `data_base64` are mutually exclusive; `data` keeps its exact source text (JSON kind) when
 * datacontenttype is absent or JSON; a JSON string `data` with a non-JSON content type is TEXT. */
int hr_ce_from_structured(const uint8_t *body, size_t len, hr_ce_event_t **out, hr_ce_error_t *err);

/* Batched mode: a JSON array of structured events. On error no event is returned and
 * err->index names the bad element. An empty array is valid (n = 0). *out is an array of
 * `*n` events; free with hr_ce_events_free. */
int hr_ce_from_batch(const uint8_t *body, size_t len, hr_ce_event_t ***out, size_t *n,
                     hr_ce_error_t *err);

/* Checks every rule of the CloudEvents 1.0 type system: required attributes non-empty,
 * specversion "1.0", source a URI-reference, dataschema an absolute URI, time RFC 3339,
 * extension names [a-z0-9]+ and not a reserved name, string values made of allowable Unicode
 * characters (valid UTF-8 without control characters, surrogates or noncharacters), integer
 * extensions in int32 canonical form, booleans "true"/"false", TEXT data valid UTF-8 and JSON
 * data one valid JSON value. On failure returns HR_EINVAL and fills *err (err may be NULL). */
int hr_ce_validate(const hr_ce_event_t *ev, hr_ce_error_t *err);

/* Structured JSON encoding (one object, compact, attributes first in a fixed order then
 * extensions by name, then data / data_base64). Appends to `out`. */
int hr_ce_to_json(const hr_ce_event_t *ev, hr_buf_t *out);

/* Binary-mode headers for delivery: calls `fn` once per header with the ce-* name and the
 * percent-encoded value (and Content-Type for datacontenttype). Strings are valid only during
 * the call. */
typedef int (*hr_ce_header_fn)(void *arg, const char *name, const char *value);
int hr_ce_to_headers(const hr_ce_event_t *ev, hr_ce_header_fn fn, void *arg);

/* Compact record encoding stored in the log (layout documented in record.c). Appends. */
int hr_ce_encode(const hr_ce_event_t *ev, hr_buf_t *out);
/* Decodes a record made by hr_ce_encode. Returns 0, HR_ECORRUPT or HR_ENOMEM. */
int hr_ce_decode(const uint8_t *p, size_t len, hr_ce_event_t **out);

/* Looks up any attribute by name (context attributes and extensions) and returns its string
 * form, or NULL when absent. Valid as long as `ev` is. */
const char *hr_ce_get(const hr_ce_event_t *ev, const char *name);
/* The extension named `name` (binary search: exts are sorted by name), or NULL. */
const hr_ce_ext_t *hr_ce_find_ext(const hr_ce_event_t *ev, const char *name);

void hr_ce_event_free(hr_ce_event_t *ev);
void hr_ce_events_free(hr_ce_event_t **evs, size_t n);

/* Helpers for modules that build or compare events (replies, dead letters, tests). */

/* Deep copy. Returns 0 or HR_ENOMEM (then *out is NULL). */
int hr_ce_event_clone(const hr_ce_event_t *ev, hr_ce_event_t **out);

/* True when both events have the same attributes (extension kinds included) and data. */
int hr_ce_event_equal(const hr_ce_event_t *a, const hr_ce_event_t *b);

/* Sets extension `name` (copied) to `value` (copied) with `kind`, replacing an existing one and
 * keeping exts sorted. Does not validate (call hr_ce_validate). Returns 0 or HR_ENOMEM. */
int hr_ce_set_ext(hr_ce_event_t *ev, const char *name, const char *value, hr_ce_kind_t kind);

/* True when the media type (parameters ignored, case-insensitive) declares JSON content:
 * subtype "json" or a subtype ending in "+json" (JSON format 3.1.1). NULL is not JSON. */
int hr_ce_content_type_is_json(const char *content_type);

/* The HTTP content mode a request's Content-Type selects (HTTP binding §3). */
typedef enum hr_ce_mode {
    HR_CE_MODE_BINARY = 0,     /* anything that is not application/cloudevents... */
    HR_CE_MODE_STRUCTURED = 1, /* application/cloudevents+json */
    HR_CE_MODE_BATCH = 2,      /* application/cloudevents-batch+json */
    HR_CE_MODE_UNSUPPORTED = 3 /* a CloudEvents format other than JSON, e.g. +avro (415) */
} hr_ce_mode_t;
hr_ce_mode_t hr_ce_detect_mode(const char *content_type);

#endif
