/* SPDX-License-Identifier: MIT */
/* Clocks: wall time in ns since the Unix epoch, and a monotonic clock in ns. */
#ifndef HR_UTIL_CLOCK_H
#define HR_UTIL_CLOCK_H

#include <stdint.h>

uint64_t hr_wall_ns(void);
uint64_t hr_mono_ns(void);

#endif
