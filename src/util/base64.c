/* SPDX-License-Identifier: MIT */
/* Strict standard base64 with padding (see base64.h). Used for data_base64. Any thread. */
#include "util/base64.h"
#include "util/err.h"

#include <stdbool.h>

static const char enc_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns 0-63 for an alphabet character, 64 for '=', 255 for anything else. */
static int sym(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    switch (c) {
    case '+':
        return 62;
    case '/':
        return 63;
    case '=':
        return 64;
    default:
        return 255;
    }
}

size_t hr_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t hr_base64_decoded_max(size_t len)
{
    return len / 4 * 3;
}

int hr_base64_encode(hr_buf_t *out, const void *src, size_t n)
{
    const uint8_t *p = src;
    size_t olen = hr_base64_encoded_len(n);
    if (n > (SIZE_MAX / 4) * 3 - 3) {
        return HR_ENOMEM;
    }
    int rc = hr_buf_reserve(out, olen);
    if (rc != 0) {
        return rc;
    }
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = enc_tab[v >> 18];
        *o++ = enc_tab[(v >> 12) & 63];
        *o++ = enc_tab[(v >> 6) & 63];
        *o++ = enc_tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = enc_tab[v >> 18];
        *o++ = enc_tab[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = enc_tab[v >> 18];
        *o++ = enc_tab[(v >> 12) & 63];
        *o++ = enc_tab[(v >> 6) & 63];
        *o++ = '=';
    }
    out->len += olen;
    out->data[out->len] = '\0';
    return 0;
}

int hr_base64_decode(const char *s, size_t len, uint8_t *dst, size_t *dst_len, size_t *bad_off)
{
    size_t off = 0, o = 0;
    if (len % 4 != 0) {
        off = len - len % 4; /* the incomplete final group */
        goto bad;
    }
    for (size_t i = 0; i < len; i += 4) {
        int a = sym((unsigned char)s[i]), b = sym((unsigned char)s[i + 1]);
        int c = sym((unsigned char)s[i + 2]), d = sym((unsigned char)s[i + 3]);
        bool last = i + 4 == len;
        if (a > 63) {
            off = i;
            goto bad;
        }
        if (b > 63) {
            off = i + 1;
            goto bad;
        }
        if (c > 63 && !(last && c == 64 && d == 64)) {
            off = i + 2;
            goto bad;
        }
        if (d > 63 && !(last && d == 64)) {
            off = i + 3;
            goto bad;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12;
        if (c == 64) {
            if (v & 0xFFFF) { /* non-zero unused bits: not the canonical encoding */
                off = i + 1;
                goto bad;
            }
            dst[o++] = (uint8_t)(v >> 16);
        } else if (d == 64) {
            v |= (uint32_t)c << 6;
            if (v & 0xFF) {
                off = i + 2;
                goto bad;
            }
            dst[o++] = (uint8_t)(v >> 16);
            dst[o++] = (uint8_t)(v >> 8);
        } else {
            v |= (uint32_t)c << 6 | (uint32_t)d;
            dst[o++] = (uint8_t)(v >> 16);
            dst[o++] = (uint8_t)(v >> 8);
            dst[o++] = (uint8_t)v;
        }
    }
    *dst_len = o;
    return 0;
bad:
    if (bad_off != NULL) {
        *bad_off = off;
    }
    return HR_EINVAL;
}
