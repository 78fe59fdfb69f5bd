/* SPDX-License-Identifier: MIT */
/*
 * RFC 3339 timestamps (the `date-time` production of §5.6): parsing, strictly, to nanoseconds
 * since the Unix epoch, and formatting back. Used for the CloudEvents `time` attribute and for
 * time positions in the API (?from_time=). Pure functions, any thread.
 *
 * Accepted: YYYY-MM-DD "T" hh:mm:ss [.fraction] ("Z" / +hh:mm / -hh:mm), with "t" and "z" in
 * lower case too (RFC 3339 §5.6 NOTE), real calendar dates (leap years per the Gregorian
 * rules), second 60 (a leap second; it converts to the following second), any number of
 * fraction digits (digits past the ninth are truncated). Rejected: everything else, including
 * a space separator, missing seconds, 2-digit years, offsets without a colon.
 */
#ifndef HR_UTIL_RFC3339_H
#define HR_UTIL_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* Size of a buffer that holds any hr_rfc3339_format output plus NUL. */
#define HR_RFC3339_MAX 40

/* Checks that `s` (len bytes, no NUL needed) is an RFC 3339 date-time. Any year 0000-9999 is
 * accepted. Returns 0 or HR_EINVAL. */
int hr_rfc3339_check(const char *s, size_t len);

/* Parses `s` into nanoseconds since 1970-01-01T00:00:00Z (the unit of hr_wall_ns). Returns 0,
 * or HR_EINVAL when `s` is not an RFC 3339 date-time or lies outside the uint64 nanosecond
 * range (before 1970 or after 2554-07-21). */
int hr_rfc3339_parse(const char *s, size_t len, uint64_t *ns_out);

/* Like hr_rfc3339_parse, but a valid time outside that range is clamped instead of refused:
 * before 1970 gives 0, after 2554 gives UINT64_MAX (a position "before everything" or "after
 * everything" for reads, replays and trigger starts). Returns 0, or HR_EINVAL only when `s` is
 * not an RFC 3339 date-time. */
int hr_rfc3339_parse_clamped(const char *s, size_t len, uint64_t *ns_out);

/* Writes `ns` as UTC with nine fraction digits, e.g. "2026-11-29T23:06:06.123456789Z" (30
 * bytes), into `buf` of `cap` bytes (HR_RFC3339_MAX is always enough), NUL-terminated and
 * truncated if cap is smaller. Returns the length of the full text. */
size_t hr_rfc3339_format(uint64_t ns, char *buf, size_t cap);

#endif
