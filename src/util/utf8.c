/* SPDX-License-Identifier: MIT */
/*
 * Strict UTF-8 validation and decoding (RFC 3629 table 3-7 of Unicode: the valid ranges of
 * the second byte depend on the first, which is what excludes overlongs, surrogates and code
 * points above U+10FFFF). Used by the CloudEvents codecs on the ingest path; ASCII runs take
 * a fast path. Pure functions, any thread.
 */
#include "util/utf8.h"

size_t hr_utf8_decode(const uint8_t *p, size_t len, uint32_t *cp)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
        if (c == 0xE0) {
            lo = 0xA0; /* below is overlong */
        } else if (c == 0xED) {
            hi = 0x9F; /* above is a surrogate */
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
        if (c == 0xF0) {
            lo = 0x90; /* below is overlong */
        } else if (c == 0xF4) {
            hi = 0x8F; /* above is beyond U+10FFFF */
        }
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5-FF */
    }
    if (len < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    v = (v << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return n;
}

bool hr_utf8_valid(const void *s, size_t len, size_t *bad_off)
{
    const uint8_t *p = s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = hr_utf8_decode(p + i, len - i, &cp);
        if (n == 0) {
            if (bad_off != NULL) {
                *bad_off = i;
            }
            return false;
        }
        i += n;
    }
    return true;
}

size_t hr_utf8_encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        return 0;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp <= 0x10FFFF) {
        out[0] = (uint8_t)(0xF0 | (cp >> 18));
        out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (uint8_t)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}
