/* SPDX-License-Identifier: MIT */
/*
 * Standard base64 (RFC 4648 §4, alphabet A-Z a-z 0-9 + /, with '=' padding). Decoding is
 * strict: length a multiple of 4, padding only at the end, no whitespace, no URL-safe
 * alphabet, and the unused bits of the last symbol must be zero (so every byte string has
 * exactly one accepted encoding). Pure functions, any thread.
 */
#ifndef HR_UTIL_BASE64_H
#define HR_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Length of the encoding of `n` bytes (without NUL). */
size_t hr_base64_encoded_len(size_t n);
/* Upper bound of the decoded length of `len` encoded characters. */
size_t hr_base64_decoded_max(size_t len);

/* Appends the base64 encoding of `n` bytes at `p` to `out`. Returns 0 or HR_ENOMEM. */
int hr_base64_encode(hr_buf_t *out, const void *p, size_t n);

/* Decodes `len` characters at `s` into `dst` (room for hr_base64_decoded_max(len) bytes) and
 * sets *dst_len. Returns 0, or HR_EINVAL for anything but canonical padded base64; then
 * *bad_off (if not NULL) is the offset of the first offending character. */
int hr_base64_decode(const char *s, size_t len, uint8_t *dst, size_t *dst_len, size_t *bad_off);

#endif
