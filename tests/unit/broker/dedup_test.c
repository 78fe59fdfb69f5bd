/* SPDX-License-Identifier: MIT */
/* Dedup window: a model-based test against a trivially correct reference, plus edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/dedup.h"

static void test_find_insert_expire(void **state)
{
    (void)state;
    hr_dedup_t *d;
    hr_dedup_create(1000, 1 << 20, &d); /* 1 s window */
    hr_dedup_key_t a = hr_dedup_key("/src", "1"), b = hr_dedup_key("/src", "2");
    uint64_t seq = 0, t0 = 5000000000ull;
    assert_int_equal(hr_dedup_find(d, a, t0, &seq), 0);
    hr_dedup_insert(d, a, 7, t0);
    assert_int_equal(hr_dedup_find(d, a, t0, &seq), 1);
    assert_int_equal(seq, 7);
    assert_int_equal(hr_dedup_find(d, b, t0, &seq), 0);
    /* still inside the window at exactly t0 + 1 s */
    assert_int_equal(hr_dedup_find(d, a, t0 + 1000000000ull, &seq), 1);
    /* past the window: not found, and expire drops it */
    assert_int_equal(hr_dedup_find(d, a, t0 + 1000000001ull, &seq), 0);
    hr_dedup_expire(d, t0 + 1000000001ull);
    assert_int_equal(hr_dedup_count(d), 0);
    hr_dedup_destroy(d);
}

static void test_key_separates_fields(void **state)
{
    (void)state;
    hr_dedup_key_t k1 = hr_dedup_key("ab", "c"), k2 = hr_dedup_key("a", "bc");
    assert_false(k1.h1 == k2.h1 && k1.h2 == k2.h2);
    hr_dedup_key_t k3 = hr_dedup_key("ab", "c");
    assert_true(k1.h1 == k3.h1 && k1.h2 == k3.h2);
}

/* Reference model: a plain array scanned linearly. */
typedef struct ref {
    char src[16], id[16];
    uint64_t seq, t;
} ref_t;

static void test_model(void **state)
{
    (void)state;
    enum { N = 60000, WINDOW_MS = 50, IDS = 3000 };
    ref_t *model = calloc(N, sizeof *model);
    size_t nm = 0;
    hr_dedup_t *d;
    hr_dedup_create(WINDOW_MS, 1 << 20, &d);
    uint64_t t = 1000000000ull, next_seq = 1;
    srand(42);
    for (int i = 0; i < N; i++) {
        t += (uint64_t)(rand() % 200) * 1000; /* up to 0.2 ms per step */
        char src[16], id[16];
        snprintf(src, sizeof src, "/s%d", rand() % 3);
        snprintf(id, sizeof id, "%d", rand() % IDS);
        /* reference: newest matching entry within the window */
        uint64_t want = 0;
        for (size_t j = nm; j-- > 0;) {
            if (model[j].t + WINDOW_MS * 1000000ull < t) {
                break;
            }
            if (strcmp(model[j].src, src) == 0 && strcmp(model[j].id, id) == 0) {
                want = model[j].seq;
                break;
            }
        }
        if (rand() % 4 == 0) {
            hr_dedup_expire(d, t);
        }
        uint64_t got = 0;
        int found = hr_dedup_find(d, hr_dedup_key(src, id), t, &got);
        assert_int_equal(found, want != 0);
        if (found) {
            assert_int_equal(got, want);
            continue;
        }
        hr_dedup_insert(d, hr_dedup_key(src, id), next_seq, t);
        snprintf(model[nm].src, sizeof model[nm].src, "%s", src);
        snprintf(model[nm].id, sizeof model[nm].id, "%s", id);
        model[nm].seq = next_seq++;
        model[nm].t = t;
        nm++;
    }
    hr_dedup_destroy(d);
    free(model);
}

static void test_memory_bound(void **state)
{
    (void)state;
    hr_dedup_t *d;
    hr_dedup_create(3600 * 1000, 1024, &d);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "%d", i);
        hr_dedup_insert(d, hr_dedup_key("/s", id), (uint64_t)i + 1, 1000 + (uint64_t)i);
    }
    assert_int_equal(hr_dedup_count(d), 1024);
    uint64_t seq;
    /* the newest are remembered, the oldest left early */
    assert_int_equal(hr_dedup_find(d, hr_dedup_key("/s", "4999"), 6000, &seq), 1);
    assert_int_equal(seq, 5000);
    assert_int_equal(hr_dedup_find(d, hr_dedup_key("/s", "0"), 6000, &seq), 0);
    hr_dedup_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_insert_expire),
        cmocka_unit_test(test_key_separates_fields),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_memory_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
