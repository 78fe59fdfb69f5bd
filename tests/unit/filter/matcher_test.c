/* SPDX-License-Identifier: MIT */
/*
 * Model-based test of the matcher index: random filter documents (exact, prefix, suffix, all,
 * any, not over type, source, subject and an extension) and random events; the index must
 * return exactly the set that evaluating every filter returns. Plus a scale check that an
 * index of 100,000 exact-type filters puts none in the residual list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ce/event.h"
#include "filter/filter.h"
#include "filter/matcher.h"

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *const attrs[] = {"type", "source", "subject", "region"};
static const char *const values[] = {"a", "ab", "b", "ba", "abc"};

/* A CESQL or content-pattern filter over the same vocabulary, so the index is checked with
 * every dialect (both can imply an exact type or source, which the index uses). */
static json_t *rand_expr_filter(void)
{
    char buf[256];
    json_t *f = json_object();
    if (rnd(2)) {
        static const char *const ops[] = {"AND", "OR"};
        snprintf(buf, sizeof buf, "%s = '%s' %s (subject LIKE '%s%%' OR NOT EXISTS region)",
                 attrs[rnd(2)], values[rnd(5)], ops[rnd(2)], values[rnd(5)]);
        json_object_set_new(f, "cesql", json_string(buf));
    } else {
        json_t *p = json_object();
        json_object_set_new(p, attrs[rnd(2)], json_pack("[s]", values[rnd(5)]));
        if (rnd(2)) {
            json_object_set_new(p, "subject", json_pack("[{s:s}]", "prefix", values[rnd(5)]));
        }
        json_object_set_new(f, "pattern", p);
    }
    return f;
}

static json_t *rand_filter(int depth)
{
    if (rnd(5) == 0) {
        return rand_expr_filter();
    }
    int k = depth > 2 ? rnd(3) : rnd(6);
    if (k < 3) {
        static const char *const d[] = {"exact", "prefix", "suffix"};
        json_t *inner = json_object();
        json_object_set_new(inner, attrs[rnd(4)], json_string(values[rnd(5)]));
        if (rnd(4) == 0) {
            json_object_set_new(inner, attrs[rnd(4)], json_string(values[rnd(5)]));
        }
        json_t *f = json_object();
        json_object_set_new(f, d[k], inner);
        return f;
    }
    json_t *f = json_object();
    if (k == 5) {
        json_object_set_new(f, "not", rand_filter(depth + 1));
        return f;
    }
    json_t *arr = json_array();
    for (unsigned i = 0, n = 1 + rnd(3); i < n; i++) {
        json_array_append_new(arr, rand_filter(depth + 1));
    }
    json_object_set_new(f, k == 3 ? "all" : "any", arr);
    return f;
}

static hr_ce_event_t *rand_event(void)
{
    char json[512];
    int n = snprintf(json, sizeof json,
                     "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"%s\","
                     "\"type\":\"%s\"",
                     values[rnd(5)], values[rnd(5)]);
    if (rnd(2)) {
        n += snprintf(json + n, sizeof json - (size_t)n, ",\"subject\":\"%s\"", values[rnd(5)]);
    }
    if (rnd(2)) {
        n += snprintf(json + n, sizeof json - (size_t)n, ",\"region\":\"%s\"", values[rnd(5)]);
    }
    snprintf(json + n, sizeof json - (size_t)n, "}");
    hr_ce_event_t *ev;
    assert_int_equal(hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, NULL), 0);
    return ev;
}

static void mark(void *arg, void *key)
{
    unsigned char *hits = arg;
    hits[(uintptr_t)key]++;
}

static void test_model(void **state)
{
    (void)state;
    enum { FILTERS = 400, EVENTS = 3000 };
    hr_filter_t **fs = calloc(FILTERS, sizeof *fs);
    hr_matcher_t *m = hr_matcher_create();
    for (uintptr_t i = 0; i < FILTERS; i++) {
        json_t *arr = json_array();
        for (unsigned k = 0, n = rnd(3); k < n; k++) {
            json_array_append_new(arr, rand_filter(0));
        }
        hr_filter_error_t err;
        if (hr_filter_compile(arr, &fs[i], &err) != 0) {
            fail_msg("filter %lu did not compile: %s: %s", (unsigned long)i, err.path, err.msg);
        }
        json_decref(arr);
        hr_matcher_add(m, (void *)i, fs[i]);
    }
    assert_int_equal(hr_matcher_size(m), FILTERS);
    assert_true(hr_matcher_residual(m) < FILTERS); /* the index does index something */
    unsigned char *hits = calloc(FILTERS, 1);
    size_t total = 0;
    for (int e = 0; e < EVENTS; e++) {
        hr_ce_event_t *ev = rand_event();
        memset(hits, 0, FILTERS);
        size_t n = hr_matcher_match(m, ev, mark, hits);
        size_t want = 0;
        for (size_t i = 0; i < FILTERS; i++) {
            bool brute = hr_filter_match(fs[i], ev);
            want += brute;
            if (hits[i] != (brute ? 1 : 0)) {
                fail_msg("filter %zu: index says %u, brute force %d (type %s source %s)", i,
                         hits[i], brute, ev->type, ev->source);
            }
        }
        assert_int_equal(n, want);
        total += n;
        hr_ce_event_free(ev);
    }
    assert_true(total > 0);
    hr_matcher_destroy(m);
    for (size_t i = 0; i < FILTERS; i++) {
        hr_filter_destroy(fs[i]);
    }
    free(fs);
    free(hits);
}

static void test_many_exact_types(void **state)
{
    (void)state;
    enum { N = 100000 };
    hr_filter_t **fs = calloc(N, sizeof *fs);
    hr_matcher_t *m = hr_matcher_create();
    for (uintptr_t i = 0; i < N; i++) {
        char doc[96];
        snprintf(doc, sizeof doc, "[{\"exact\":{\"type\":\"com.example.t%lu\"}}]",
                 (unsigned long)i);
        json_t *j = json_loads(doc, 0, NULL);
        hr_filter_error_t err;
        assert_int_equal(hr_filter_compile(j, &fs[i], &err), 0);
        json_decref(j);
        hr_matcher_add(m, (void *)i, fs[i]);
    }
    assert_int_equal(hr_matcher_residual(m), 0);
    const char *json = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
                       "\"type\":\"com.example.t77777\"}";
    hr_ce_event_t *ev;
    assert_int_equal(hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, NULL), 0);
    unsigned char *hits = calloc(N, 1);
    assert_int_equal(hr_matcher_match(m, ev, mark, hits), 1);
    assert_int_equal(hits[77777], 1);
    hr_ce_event_free(ev);
    hr_matcher_destroy(m);
    for (size_t i = 0; i < N; i++) {
        hr_filter_destroy(fs[i]);
    }
    free(fs);
    free(hits);
}

static void test_prefix_index(void **state)
{
    (void)state;
    enum { N = 1000 };
    hr_filter_t **fs = calloc(N, sizeof *fs);
    hr_matcher_t *m = hr_matcher_create();
    for (uintptr_t i = 0; i < N; i++) {
        char doc[128];
        /* prefixes of different lengths: "com.example.p7." and "com.example.p7.x" ... */
        snprintf(doc, sizeof doc, "[{\"prefix\":{\"type\":\"com.example.p%lu.%s\"}}]",
                 (unsigned long)(i / 2), i % 2 ? "x" : "");
        json_t *j = json_loads(doc, 0, NULL);
        hr_filter_error_t err;
        assert_int_equal(hr_filter_compile(j, &fs[i], &err), 0);
        json_decref(j);
        hr_matcher_add(m, (void *)i, fs[i]);
    }
    assert_int_equal(hr_matcher_residual(m), 0);
    const char *json = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
                       "\"type\":\"com.example.p42.xyz\"}";
    hr_ce_event_t *ev;
    assert_int_equal(hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, NULL), 0);
    unsigned char *hits = calloc(N, 1);
    assert_int_equal(hr_matcher_match(m, ev, mark, hits), 2);
    assert_int_equal(hits[84], 1); /* "com.example.p42." */
    assert_int_equal(hits[85], 1); /* "com.example.p42.x" */
    hr_ce_event_free(ev);
    hr_matcher_destroy(m);
    for (size_t i = 0; i < N; i++) {
        hr_filter_destroy(fs[i]);
    }
    free(fs);
    free(hits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_many_exact_types),
        cmocka_unit_test(test_prefix_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
