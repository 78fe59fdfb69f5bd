/* SPDX-License-Identifier: MIT */
/* Hexadecimal digits, for percent-decoding (URLs, query strings, ce- header values). */
#ifndef HR_UTIL_HEX_H
#define HR_UTIL_HEX_H

/* The value of hex digit c (either case), or -1. */
static inline int hr_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

#endif
