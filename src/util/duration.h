/* SPDX-License-Identifier: MIT */
/* ISO 8601 durations as Knative writes them ("PT0.2S", "PT10M", "P7D", "P1DT12H"), in ms. */
#ifndef HR_UTIL_DURATION_H
#define HR_UTIL_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses `s` into milliseconds. Accepts P[nD][T[nH][nM][n[.fff]S]] (weeks as nW alone); years
 * and months are refused (their length varies). Returns 0, or HR_EINVAL. */
int hr_duration_parse(const char *s, uint64_t *out_ms);

/* Formats ms as the shortest ISO 8601 duration ("PT0.2S", "PT10M", "P7D", "PT0S"). */
void hr_duration_format(uint64_t ms, char *buf, size_t size);

#endif
