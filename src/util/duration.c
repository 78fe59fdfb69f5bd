/* SPDX-License-Identifier: MIT */
/* ISO 8601 duration parsing and formatting. Pure functions; thread-safe. */
#include "util/duration.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* Reads digits with an optional fraction (only allowed for seconds). Returns chars consumed. */
static size_t read_number(const char *s, uint64_t *whole, uint64_t *frac_ms, int allow_frac)
{
    size_t i = 0;
    uint64_t v = 0;
    while (s[i] >= '0' && s[i] <= '9') {
        if (v > UINT64_MAX / 100) {
            return 0;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (i == 0) {
        return 0;
    }
    *whole = v;
    *frac_ms = 0;
    if (allow_frac && (s[i] == '.' || s[i] == ',')) {
        size_t j = i + 1;
        uint64_t f = 0, scale = 100;
        while (s[j] >= '0' && s[j] <= '9') {
            f += (uint64_t)(s[j] - '0') * scale;
            scale /= 10;
            j++;
        }
        if (j == i + 1) {
            return 0;
        }
        *frac_ms = f;
        i = j;
    }
    return i;
}

int hr_duration_parse(const char *s, uint64_t *out_ms)
{
    if (s == NULL || s[0] != 'P' || s[1] == '\0') {
        return HR_EINVAL;
    }
    const char *p = s + 1;
    uint64_t total = 0;
    int in_time = 0, any = 0;
    /* Designators must appear in this order; `last` tracks the rank of the previous one. */
    static const char date_order[] = "WD", time_order[] = "HMS";
    int last = -1;
    while (*p) {
        if (*p == 'T') {
            if (in_time || p[1] == '\0') {
                return HR_EINVAL;
            }
            in_time = 1;
            last = -1;
            p++;
            continue;
        }
        uint64_t v, frac;
        size_t n = read_number(p, &v, &frac, 1);
        if (n == 0) {
            return HR_EINVAL;
        }
        char d = p[n];
        const char *order = in_time ? time_order : date_order;
        const char *pos = d ? strchr(order, d) : NULL;
        if (pos == NULL || (int)(pos - order) <= last) {
            return HR_EINVAL;
        }
        if (frac && !(in_time && d == 'S')) {
            return HR_EINVAL;
        }
        last = (int)(pos - order);
        uint64_t unit_ms;
        switch (in_time ? d : (char)(d + 32)) {
        case 'w':
            unit_ms = 7ull * 86400000;
            break;
        case 'd':
            unit_ms = 86400000;
            break;
        case 'H':
            unit_ms = 3600000;
            break;
        case 'M':
            unit_ms = 60000;
            break;
        default:
            unit_ms = 1000;
            break;
        }
        if (v > (UINT64_MAX - total) / unit_ms) {
            return HR_EINVAL;
        }
        total += v * unit_ms + frac;
        any = 1;
        p += n + 1;
    }
    if (!any) {
        return HR_EINVAL;
    }
    *out_ms = total;
    return 0;
}

void hr_duration_format(uint64_t ms, char *buf, size_t size)
{
    if (ms == 0) {
        snprintf(buf, size, "PT0S");
        return;
    }
    uint64_t days = ms / 86400000, rest = ms % 86400000;
    uint64_t h = rest / 3600000, m = rest / 60000 % 60, s = rest / 1000 % 60, f = rest % 1000;
    size_t n = (size_t)snprintf(buf, size, "P");
    if (days && n < size) {
        n += (size_t)snprintf(buf + n, size - n, "%lluD", (unsigned long long)days);
    }
    if (rest && n < size) {
        n += (size_t)snprintf(buf + n, size - n, "T");
        if (h && n < size) {
            n += (size_t)snprintf(buf + n, size - n, "%lluH", (unsigned long long)h);
        }
        if (m && n < size) {
            n += (size_t)snprintf(buf + n, size - n, "%lluM", (unsigned long long)m);
        }
        if ((s || f) && n < size) {
            if (f == 0) {
                snprintf(buf + n, size - n, "%lluS", (unsigned long long)s);
            } else {
                char fr[8];
                snprintf(fr, sizeof fr, "%03llu", (unsigned long long)f);
                for (int i = 2; i > 0 && fr[i] == '0'; i--) {
                    fr[i] = '\0';
                }
                snprintf(buf + n, size - n, "%llu.%sS", (unsigned long long)s, fr);
            }
        }
    }
}
