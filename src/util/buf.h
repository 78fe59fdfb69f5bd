/* SPDX-License-Identifier: MIT */
/*
 * hr_buf_t: a growable byte buffer whose growth is fallible (it holds client-sized data).
 * Byte ranges travel as hr_iov_t (pointer, length) pairs.
 */
#ifndef HR_UTIL_BUF_H
#define HR_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct hr_iov {
    const uint8_t *base;
    size_t len;
} hr_iov_t;

typedef struct hr_buf {
    uint8_t *data; /* owned; NUL-terminated after every successful append (not counted in len) */
    size_t len;
    size_t cap;
} hr_buf_t;

#define HR_BUF_INIT {NULL, 0, 0}

/* Ensures room for `extra` more bytes plus a NUL. Returns 0 or HR_ENOMEM. */
int hr_buf_reserve(hr_buf_t *b, size_t extra);
int hr_buf_append(hr_buf_t *b, const void *p, size_t n);
int hr_buf_puts(hr_buf_t *b, const char *s);
int hr_buf_putc(hr_buf_t *b, char c);
/* printf-style append. Returns 0 or HR_ENOMEM. */
int hr_buf_printf(hr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends `s` (n bytes) as a JSON string literal with quotes, escaping as RFC 8259 requires.
 * The input must be valid UTF-8; it is copied verbatim except for escapes. */
int hr_buf_json_str(hr_buf_t *b, const char *s, size_t n);
void hr_buf_reset(hr_buf_t *b); /* len = 0, keeps memory */
void hr_buf_free(hr_buf_t *b);  /* frees memory, back to HR_BUF_INIT */
/* Takes ownership of the data: returns it (NUL-terminated) and resets `b` to empty. */
char *hr_buf_steal(hr_buf_t *b);

#endif
