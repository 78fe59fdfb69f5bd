/* SPDX-License-Identifier: MIT */
/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800-U+DFFF), nothing above
 * U+10FFFF, no truncated sequences. Pure functions, reentrant, any thread.
 */
#ifndef HR_UTIL_UTF8_H
#define HR_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one code point from `p` (at most `len` bytes, len >= 1). Returns the sequence length
 * (1-4) and sets *cp, or 0 when the bytes at `p` do not start a valid sequence. */
size_t hr_utf8_decode(const uint8_t *p, size_t len, uint32_t *cp);

/* Returns true when all `len` bytes are valid UTF-8. When false and `bad_off` is not NULL,
 * *bad_off is the byte offset of the first invalid sequence. */
bool hr_utf8_valid(const void *p, size_t len, size_t *bad_off);

/* Appends the UTF-8 encoding of `cp` (a Unicode scalar value) to `out` (room for 4 bytes).
 * Returns the number of bytes written, or 0 when `cp` is a surrogate or above U+10FFFF. */
size_t hr_utf8_encode(uint32_t cp, uint8_t *out);

#endif
