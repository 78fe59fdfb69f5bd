/* SPDX-License-Identifier: MIT */
/* Growable byte buffer with fallible growth. Not thread-safe; owned by one thread at a time. */
#include "util/buf.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hr_buf_reserve(hr_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len) {
        return HR_ENOMEM;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int hr_buf_append(hr_buf_t *b, const void *p, size_t n)
{
    int rc = hr_buf_reserve(b, n);
    if (rc != 0) {
        return rc;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int hr_buf_puts(hr_buf_t *b, const char *s)
{
    return hr_buf_append(b, s, strlen(s));
}

int hr_buf_putc(hr_buf_t *b, char c)
{
    return hr_buf_append(b, &c, 1);
}

int hr_buf_printf(hr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return HR_EINVAL;
    }
    if ((size_t)n < sizeof tmp) {
        return hr_buf_append(b, tmp, (size_t)n);
    }
    int rc = hr_buf_reserve(b, (size_t)n);
    if (rc != 0) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int hr_buf_json_str(hr_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = hr_buf_reserve(b, n + 2);
    if (rc != 0) {
        return rc;
    }
    b->data[b->len++] = '"';
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if ((rc = hr_buf_append(b, s + start, i - start)) != 0) {
            return rc;
        }
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if ((rc = hr_buf_append(b, esc, elen)) != 0) {
            return rc;
        }
        start = i + 1;
    }
    if ((rc = hr_buf_append(b, s + start, n - start)) != 0) {
        return rc;
    }
    return hr_buf_putc(b, '"');
}

void hr_buf_reset(hr_buf_t *b)
{
    b->len = 0;
    if (b->data) {
        b->data[0] = '\0';
    }
}

void hr_buf_free(hr_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *hr_buf_steal(hr_buf_t *b)
{
    if (b->data == NULL && hr_buf_reserve(b, 0) != 0) {
        return NULL;
    }
    char *p = (char *)b->data;
    p[b->len] = '\0';
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
