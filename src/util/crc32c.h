/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78) as used by iSCSI (RFC 3720),
 * ext4 and Kafka. Uses the SSE4.2 crc32 instruction when the CPU has it, else a slicing-by-8
 * table. Thread-safe; callable from any thread.
 */
#ifndef HR_UTIL_CRC32C_H
#define HR_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (the value returned by an earlier call, or 0 to start) over `n` bytes at `p`
 * and returns the new CRC. hr_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t hr_crc32c(uint32_t crc, const void *p, size_t n);

/* The portable table-driven version (exposed so tests can compare both paths). */
uint32_t hr__crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
