/* SPDX-License-Identifier: MIT */
/* RFC 3339: a table of valid and invalid timestamps with their instants, and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/rfc3339.h"

#define S 1000000000ull

static void test_valid_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t ns;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00.000000001Z", 1},
        {"1970-01-01T00:00:01.5Z", S + 500000000},
        {"2018-04-05T17:31:00Z", 1522949460 * S},
        {"2018-04-05t17:31:00z", 1522949460 * S}, /* lower case allowed by §5.6 NOTE */
        {"2018-04-05T19:31:00+02:00", 1522949460 * S},
        {"2018-04-05T12:01:00-05:30", 1522949460 * S},
        {"2018-04-05T17:31:00-00:00", 1522949460 * S}, /* unknown local offset */
        {"2026-11-29T23:06:06.123456789Z", 1795993566 * S + 123456789},
        {"2026-11-29T23:06:06.1234567891234Z", 1795993566 * S + 123456789}, /* truncated */
        {"2000-02-29T00:00:00Z", 951782400 * S},                            /* 400-year leap */
        {"2024-02-29T12:00:00Z", 1709208000 * S},
        {"2016-12-31T23:59:60Z", 1483228800 * S}, /* leap second -> next second */
        {"1999-12-31T23:59:59.999Z", 946684799 * S + 999000000},
        {"2100-12-31T00:00:00Z", 4133894400 * S},
        {"1970-01-01T01:00:00+01:00", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t ns = 0;
        int rc = hr_rfc3339_parse(ok[i].in, strlen(ok[i].in), &ns);
        if (rc != 0) {
            fail_msg("%s rejected", ok[i].in);
        }
        if (ns != ok[i].ns) {
            fail_msg("%s: %llu, expected %llu", ok[i].in, (unsigned long long)ns,
                     (unsigned long long)ok[i].ns);
        }
        assert_int_equal(hr_rfc3339_check(ok[i].in, strlen(ok[i].in)), 0);
    }
}

static void test_invalid_table(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2020-13-01T00:00:00Z",      /* month 13 */
        "2020-00-01T00:00:00Z",      /* month 0 */
        "2020-02-30T00:00:00Z",      /* Feb 30 */
        "2019-02-29T00:00:00Z",      /* not a leap year */
        "1900-02-29T00:00:00Z",      /* century, not a leap year */
        "2020-04-31T00:00:00Z",      /* April has 30 days */
        "2020-01-00T00:00:00Z",      /* day 0 */
        "2020-01-01T24:00:00Z",      /* hour 24 */
        "2020-01-01T00:60:00Z",      /* minute 60 */
        "2020-01-01T00:00:61Z",      /* second 61 */
        "2020-01-01T00:00:00",       /* no offset */
        "2020-01-01 00:00:00Z",      /* space separator */
        "2020-01-01",                /* date only */
        "2020-01-01T00:00Z",         /* no seconds */
        "20-01-01T00:00:00Z",        /* 2-digit year */
        "2020-1-01T00:00:00Z",       /* 1-digit month */
        "2020-01-01T00:00:00.Z",     /* empty fraction */
        "2020-01-01T00:00:00,5Z",    /* comma fraction */
        "2020-01-01T00:00:00+0100",  /* offset without colon */
        "2020-01-01T00:00:00+01",    /* short offset */
        "2020-01-01T00:00:00+24:00", /* offset hour 24 */
        "2020-01-01T00:00:00+01:60", /* offset minute 60 */
        "2020-01-01T00:00:00ZZ",     /* trailing garbage */
        "2020-01-01T00:00:00Z ",     /* trailing space */
        " 2020-01-01T00:00:00Z",     /* leading space */
        "2020-01-01T00:00:00UTC",
        "2020/01/01T00:00:00Z",
        "2020-01-01X00:00:00Z",
        "2020-01-01T00:00:00+01:00:00",
        "+2020-01-01T00:00:00Z",
        "2020-01-01T0a:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ns;
        if (hr_rfc3339_check(bad[i], strlen(bad[i])) != HR_EINVAL ||
            hr_rfc3339_parse(bad[i], strlen(bad[i]), &ns) != HR_EINVAL) {
            fail_msg("\"%s\" was accepted", bad[i]);
        }
    }
}

static void test_range(void **state)
{
    (void)state;
    uint64_t ns;
    /* syntactically valid, but not representable as ns since 1970 in 64 bits */
    assert_int_equal(hr_rfc3339_check("1969-12-31T23:59:59Z", 20), 0);
    assert_int_equal(hr_rfc3339_parse("1969-12-31T23:59:59Z", 20, &ns), HR_EINVAL);
    assert_int_equal(hr_rfc3339_parse("1970-01-01T00:00:00+00:01", 25, &ns), HR_EINVAL);
    assert_int_equal(hr_rfc3339_check("0001-01-01T00:00:00Z", 20), 0);
    assert_int_equal(hr_rfc3339_check("9999-12-31T23:59:59Z", 20), 0);
    assert_int_equal(hr_rfc3339_parse("9999-12-31T23:59:59Z", 20, &ns), HR_EINVAL);
    assert_int_equal(hr_rfc3339_parse("2554-07-21T23:34:33Z", 20, &ns), 0);
    assert_int_equal(hr_rfc3339_parse("2554-07-21T23:34:34Z", 20, &ns), HR_EINVAL);
    /* the parser never reads past len */
    assert_int_equal(hr_rfc3339_check("2020-01-01T00:00:00Zjunk", 20), 0);
}

/* Clamping decides by the instant (offset applied), not by the year's digits. */
static void test_clamped(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ns;
    } rows[] = {
        {"1969-12-31T23:59:59Z", 0},
        {"0001-01-01T00:00:00Z", 0},
        {"1970-01-01T00:00:00+01:00", 0},                /* 1969-12-31T23:00:00Z */
        {"1969-12-31T23:30:00-01:00", 1800000000000ull}, /* 1970-01-01T00:30:00Z */
        {"1970-01-01T00:00:01.5Z", 1500000000ull},
        {"2999-01-01T00:00:00Z", UINT64_MAX},
        {"9999-12-31T23:59:59.999999999Z", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t ns = 7;
        assert_int_equal(hr_rfc3339_parse_clamped(rows[i].s, strlen(rows[i].s), &ns), 0);
        if (ns != rows[i].ns) {
            fail_msg("%s: got %llu, expected %llu", rows[i].s, (unsigned long long)ns,
                     (unsigned long long)rows[i].ns);
        }
    }
    uint64_t a, b;
    const char *now = "2026-11-29T23:06:06.123456789+02:00";
    assert_int_equal(hr_rfc3339_parse_clamped(now, strlen(now), &a), 0);
    assert_int_equal(hr_rfc3339_parse(now, strlen(now), &b), 0);
    assert_int_equal(a, b);
    assert_int_equal(hr_rfc3339_parse_clamped("2026-13-01T00:00:00Z", 20, &a), HR_EINVAL);
    assert_int_equal(hr_rfc3339_parse_clamped("soon", 4, &a), HR_EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    char buf[HR_RFC3339_MAX];
    assert_int_equal(hr_rfc3339_format(0, buf, sizeof buf), 30);
    assert_string_equal(buf, "1970-01-01T00:00:00.000000000Z");
    hr_rfc3339_format(1795993566 * S + 123456789, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-29T23:06:06.123456789Z");
    hr_rfc3339_format(951782400 * S + 1, buf, sizeof buf);
    assert_string_equal(buf, "2000-02-29T00:00:00.000000001Z");
    hr_rfc3339_format(UINT64_MAX, buf, sizeof buf);
    assert_string_equal(buf, "2554-07-21T23:34:33.709551615Z");
    char small[11];
    assert_int_equal(hr_rfc3339_format(0, small, sizeof small), 30);
    assert_string_equal(small, "1970-01-01");
    /* format -> parse is the identity over a spread of instants */
    for (uint64_t ns = 7; ns < UINT64_MAX / 3; ns = ns * 3 + 12345) {
        uint64_t back = 0;
        hr_rfc3339_format(ns, buf, sizeof buf);
        assert_int_equal(hr_rfc3339_parse(buf, strlen(buf), &back), 0);
        assert_true(back == ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_table), cmocka_unit_test(test_invalid_table),
        cmocka_unit_test(test_range),       cmocka_unit_test(test_format),
        cmocka_unit_test(test_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
