/* SPDX-License-Identifier: MIT */
/* ISO 8601 durations: a table of valid and invalid forms, and format/parse round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/duration.h"

static void test_valid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t ms;
    } rows[] = {
        {"PT0.2S", 200},        {"PT10M", 600000},      {"P7D", 7 * 86400000ull},
        {"PT1H", 3600000},      {"P1DT12H", 129600000}, {"PT0S", 0},
        {"PT1.5S", 1500},       {"PT0.001S", 1},        {"P2W", 14 * 86400000ull},
        {"PT1H30M5S", 5405000}, {"PT90S", 90000},       {"PT0,5S", 500},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t ms = 12345;
        assert_int_equal(hr_duration_parse(rows[i].s, &ms), 0);
        assert_int_equal(ms, rows[i].ms);
    }
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *rows[] = {"",     "P",     "PT",     "10m",   "PT10",  "PT1.S",
                                 "P1M",  "P1Y",   "PT1S1M", "PT-1S", "P1.5D", "PTS",
                                 "pt1s", "PT1SX", "P1DT",   "PT1M1M"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t ms;
        if (hr_duration_parse(rows[i], &ms) == 0) {
            fail_msg("accepted invalid duration \"%s\"", rows[i]);
        }
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    static const uint64_t rows[] = {
        0, 1, 200, 1000, 60000, 600000, 3600000, 86400000, 7 * 86400000ull, 129600000, 5405123};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[64];
        uint64_t back;
        hr_duration_format(rows[i], buf, sizeof buf);
        assert_int_equal(hr_duration_parse(buf, &back), 0);
        assert_int_equal(back, rows[i]);
    }
    char buf[64];
    hr_duration_format(600000, buf, sizeof buf);
    assert_string_equal(buf, "PT10M");
    hr_duration_format(200, buf, sizeof buf);
    assert_string_equal(buf, "PT0.2S");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
