/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the CloudEvents codecs (event.c, http.c, json.c, record.c). Not for
 * other modules: use event.h.
 */
#ifndef HR_CE_EVENT_INT_H
#define HR_CE_EVENT_INT_H

#include "ce/event.h"

#include <stdbool.h>

/* Deepest JSON nesting accepted in data (jansson's default limit is 2048). */
#define HR_CE_JSON_MAX_DEPTH 512

/* The context attributes that have their own struct member, in hr_ce_to_json order. */
enum {
    HR_CE_A_SPECVERSION,
    HR_CE_A_ID,
    HR_CE_A_SOURCE,
    HR_CE_A_TYPE,
    HR_CE_A_DATACONTENTTYPE,
    HR_CE_A_DATASCHEMA,
    HR_CE_A_SUBJECT,
    HR_CE_A_TIME,
    HR_CE_A_COUNT
};
extern const char *const hr__ce_attr_names[HR_CE_A_COUNT];

/* The struct member of attribute `idx`. */
char **hr__ce_attr_slot(hr_ce_event_t *ev, int idx);
/* The index of a context attribute named by (name, len), or -1 for an extension name. */
int hr__ce_attr_index(const char *name, size_t len);

/* Fills *err (if not NULL) with `field` and a printf-formatted sentence; returns HR_EINVAL. */
int hr__ce_fail(hr_ce_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes `s` (len bytes) into `dst` as a double-quoted, shortened, printable excerpt for error
 * messages (non-printable bytes as \xNN, long values cut with "..."). */
void hr__ce_quote(char *dst, size_t cap, const char *s, size_t len);

/* Fallible strndup for client-sized strings; NULL on ENOMEM. */
char *hr__ce_strndup(const char *s, size_t n);
/* qsort comparator for hr_ce_ext_t by name. */
int hr__ce_ext_cmp(const void *a, const void *b);
/* True when (name, len) matches [a-z0-9]+. */
bool hr__ce_ext_name_ok(const char *name, size_t len);

/* Validates everything but the data (the decoders check data as they build it). */
int hr__ce_validate_attrs(const hr_ce_event_t *ev, hr_ce_error_t *err);

/* Checks that (p, len) is exactly one JSON value, optionally surrounded by whitespace. */
bool hr__ce_json_valid(const uint8_t *p, size_t len);

#endif
