/* SPDX-License-Identifier: MIT */
/* The trace store: recording, JSON output, the attempt cap and eviction of the oldest events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "obs/trace.h"
#include "util/err.h"

static void test_record_and_json(void **state)
{
    (void)state;
    hr_trace_t *t;
    hr_trace_create(10, &t);
    hr_buf_t out = HR_BUF_INIT;
    assert_int_equal(hr_trace_json(t, "default", 1, &out), HR_ENOTFOUND);
    hr_trace_matched(t, "default", 1, "orders", 0);
    hr_trace_attempt(t, "default", 1, "orders", 0, 1000000000ull, 503, 1500, NULL);
    hr_trace_attempt(t, "default", 1, "orders", 0, 2000000000ull, 0, 10000, "timed out");
    hr_trace_outcome(t, "default", 1, "orders", 0, HR_TRACE_DEAD_LETTERED,
                     "heralderrorcode timeout");
    hr_trace_matched(t, "default", 1, "audit", 1);
    assert_int_equal(hr_trace_json(t, "default", 1, &out), 0);
    const char *s = (const char *)out.data;
    assert_non_null(strstr(s, "\"trigger\":\"orders\""));
    assert_non_null(strstr(s, "\"outcome\":\"dead_lettered\""));
    assert_non_null(strstr(s, "\"status\":503"));
    assert_non_null(strstr(s, "\"error\":\"timed out\""));
    assert_non_null(strstr(s, "\"latency_ms\":1.500"));
    assert_non_null(strstr(s, "\"trigger\":\"audit\",\"replay\":true,\"outcome\":\"pending\""));
    /* another bus with the same seq is a different event */
    hr_buf_reset(&out);
    assert_int_equal(hr_trace_json(t, "other", 1, &out), HR_ENOTFOUND);
    hr_buf_free(&out);
    hr_trace_destroy(t);
}

static void test_attempt_cap(void **state)
{
    (void)state;
    hr_trace_t *t;
    hr_trace_create(4, &t);
    for (int i = 0; i < 40; i++) {
        hr_trace_attempt(t, "b", 7, "x", 0, (uint64_t)i + 1, 500 + i, 1, NULL);
    }
    hr_buf_t out = HR_BUF_INIT;
    assert_int_equal(hr_trace_json(t, "b", 7, &out), 0);
    const char *s = (const char *)out.data;
    assert_non_null(strstr(s, "\"attempts_total\":40"));
    assert_non_null(strstr(s, "\"status\":539")); /* the last attempt is always kept */
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, "\"status\"")) != NULL; p++) {
        n++;
    }
    assert_int_equal(n, HR_TRACE_MAX_ATTEMPTS);
    hr_buf_free(&out);
    hr_trace_destroy(t);
}

static void test_eviction(void **state)
{
    (void)state;
    hr_trace_t *t;
    hr_trace_create(100, &t);
    for (uint64_t seq = 1; seq <= 1000; seq++) {
        hr_trace_matched(t, "b", seq, "x", 0);
    }
    hr_buf_t out = HR_BUF_INIT;
    assert_int_equal(hr_trace_json(t, "b", 900, &out), HR_ENOTFOUND);
    assert_int_equal(hr_trace_json(t, "b", 901, &out), 0);
    hr_buf_reset(&out);
    assert_int_equal(hr_trace_json(t, "b", 1000, &out), 0);
    hr_buf_free(&out);
    hr_trace_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_json),
        cmocka_unit_test(test_attempt_cap),
        cmocka_unit_test(test_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
