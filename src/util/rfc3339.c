/* SPDX-License-Identifier: MIT */
/*
 * RFC 3339 parsing and formatting (see rfc3339.h). Calendar arithmetic uses the days-from-civil
 * algorithm (proleptic Gregorian), so no libc time functions, time zones or locales are
 * involved. Pure functions, any thread.
 */
#include "util/rfc3339.h"
#include "util/err.h"

#include <stdbool.h>
#include <stdio.h>

typedef struct rfc3339_parts {
    int year, month, day, hour, min, sec;
    int64_t frac_ns;
    int offset_s; /* local time minus UTC */
} rfc3339_parts_t;

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int parse_parts(const char *s, size_t len, rfc3339_parts_t *t)
{
    /* "YYYY-MM-DDThh:mm:ss" is 19 bytes; at least "Z" follows. */
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':') {
        return HR_EINVAL;
    }
    if (!digits(s, 4, &t->year) || !digits(s + 5, 2, &t->month) || !digits(s + 8, 2, &t->day) ||
        !digits(s + 11, 2, &t->hour) || !digits(s + 14, 2, &t->min) ||
        !digits(s + 17, 2, &t->sec)) {
        return HR_EINVAL;
    }
    if (t->month < 1 || t->month > 12 || t->day < 1 || t->day > days_in_month(t->year, t->month) ||
        t->hour > 23 || t->min > 59 || t->sec > 60) {
        return HR_EINVAL;
    }
    size_t i = 19;
    t->frac_ns = 0;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        int64_t scale = 100000000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            t->frac_ns += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start) {
            return HR_EINVAL;
        }
    }
    if (i >= len) {
        return HR_EINVAL;
    }
    if (s[i] == 'Z' || s[i] == 'z') {
        t->offset_s = 0;
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (len - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) ||
            !digits(s + i + 4, 2, &om) || oh > 23 || om > 59) {
            return HR_EINVAL;
        }
        t->offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return HR_EINVAL;
    }
    return i == len ? 0 : HR_EINVAL;
}

int hr_rfc3339_check(const char *s, size_t len)
{
    rfc3339_parts_t t;
    return parse_parts(s, len, &t);
}

int hr_rfc3339_parse(const char *s, size_t len, uint64_t *ns_out)
{
    rfc3339_parts_t t;
    int rc = parse_parts(s, len, &t);
    if (rc != 0) {
        return rc;
    }
    int64_t secs = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.min * 60 +
                   t.sec - t.offset_s;
    /* check the range before multiplying */
    if (secs < 0 || (uint64_t)secs > (UINT64_MAX - (uint64_t)t.frac_ns) / 1000000000u) {
        return HR_EINVAL;
    }
    *ns_out = (uint64_t)secs * 1000000000u + (uint64_t)t.frac_ns;
    return 0;
}

int hr_rfc3339_parse_clamped(const char *s, size_t len, uint64_t *ns_out)
{
    rfc3339_parts_t t;
    int rc = parse_parts(s, len, &t);
    if (rc != 0) {
        return rc;
    }
    int64_t secs = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.min * 60 +
                   t.sec - t.offset_s;
    if (secs < 0) {
        *ns_out = 0; /* the sign after the offset, not the year's digits, decides */
    } else if ((uint64_t)secs > (UINT64_MAX - (uint64_t)t.frac_ns) / 1000000000u) {
        *ns_out = UINT64_MAX;
    } else {
        *ns_out = (uint64_t)secs * 1000000000u + (uint64_t)t.frac_ns;
    }
    return 0;
}

size_t hr_rfc3339_format(uint64_t ns, char *buf, size_t cap)
{
    uint64_t secs = ns / 1000000000u, frac = ns % 1000000000u;
    int64_t days = (int64_t)(secs / 86400);
    uint64_t rem = secs % 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09uZ", y, m, d, (int)(rem / 3600),
                     (int)(rem / 60 % 60), (int)(rem % 60), (unsigned)frac);
    return n < 0 ? 0 : (size_t)n;
}
