/* SPDX-License-Identifier: MIT */
/*
 * The compact record encoding: round trips, the documented byte layout, and robustness:
 * every truncation, every single-byte corruption and hostile lengths return HR_ECORRUPT (or
 * decode to some event) without crashing or leaking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ce/event.h"
#include "util/err.h"

static hr_ce_event_t *parse(const char *json)
{
    hr_ce_event_t *ev = NULL;
    hr_ce_error_t err;
    if (hr_ce_from_structured((const uint8_t *)json, strlen(json), &ev, &err) != 0) {
        fail_msg("%s: %s", json, err.msg);
    }
    return ev;
}

static const char *const docs[] = {
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"data\":{ \"a\" : "
    "[1, 2.50, \"x\\u00e9\"] }}",
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"datacontenttype\":"
    "\"text/plain\",\"data\":\"x\\u0000y\"}",
    "{\"specversion\":\"1.0\",\"id\":\"id-\\u00e9\",\"source\":\"https://x/y\",\"type\":\"t\","
    "\"time\":\"2018-04-05T17:31:00Z\",\"subject\":\"s\",\"dataschema\":\"http://s\","
    "\"datacontenttype\":\"application/octet-stream\",\"i\":-5,\"b\":true,\"s\":\"v\","
    "\"data_base64\":\"AAECAw==\"}",
    "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"data_base64\":\"\"}",
};

static void test_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        hr_ce_event_t *ev = parse(docs[i]), *back = NULL;
        hr_buf_t b = HR_BUF_INIT;
        assert_int_equal(hr_buf_puts(&b, "hdr"), 0); /* appends */
        assert_int_equal(hr_ce_encode(ev, &b), 0);
        assert_int_equal(hr_ce_decode(b.data + 3, b.len - 3, &back), 0);
        assert_true(hr_ce_event_equal(ev, back));
        hr_ce_event_free(back);
        /* compact: far smaller than the JSON */
        assert_true(b.len - 3 < strlen(docs[i]));
        hr_buf_free(&b);
        hr_ce_event_free(ev);
    }
}

static void test_layout(void **state)
{
    (void)state;
    hr_ce_event_t *ev = parse("{\"specversion\":\"1.0\",\"id\":\"I\",\"source\":\"S\",\"type\":"
                              "\"T\",\"subject\":\"U\",\"x\":7,\"data\":[]}");
    hr_buf_t b = HR_BUF_INIT;
    assert_int_equal(hr_ce_encode(ev, &b), 0);
    static const uint8_t want[] = {1,   0x04, 1,   3, '1', '.', '0', 1, 'I', 1, 'S', 1,
                                   'T', 1,    'U', 1, 1,   1,   'x', 1, '7', 2, '[', ']'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    hr_buf_free(&b);
    hr_ce_event_free(ev);
}

static void test_truncated_and_corrupt(void **state)
{
    (void)state;
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        hr_ce_event_t *ev = parse(docs[d]), *back;
        hr_buf_t b = HR_BUF_INIT;
        assert_int_equal(hr_ce_encode(ev, &b), 0);
        /* every strict prefix, copied to an exact-size heap block so ASan sees overreads */
        for (size_t len = 0; len < b.len; len++) {
            uint8_t *p = malloc(len ? len : 1);
            memcpy(p, b.data, len);
            back = (hr_ce_event_t *)1;
            assert_int_equal(hr_ce_decode(p, len, &back), HR_ECORRUPT);
            assert_null(back);
            free(p);
        }
        /* trailing garbage */
        uint8_t *p = malloc(b.len + 1);
        memcpy(p, b.data, b.len);
        p[b.len] = 0;
        assert_int_equal(hr_ce_decode(p, b.len + 1, &back), HR_ECORRUPT);
        /* every single-byte corruption: either corrupt, or a (different) decodable event */
        for (size_t i = 0; i < b.len; i++) {
            for (unsigned x = 1; x < 256; x <<= 1) {
                memcpy(p, b.data, b.len);
                p[i] ^= (uint8_t)x;
                back = NULL;
                int rc = hr_ce_decode(p, b.len, &back);
                assert_true(rc == 0 || rc == HR_ECORRUPT);
                if (rc == 0) {
                    hr_ce_event_free(back);
                } else {
                    assert_null(back);
                }
            }
        }
        free(p);
        hr_buf_free(&b);
        hr_ce_event_free(ev);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    hr_ce_event_t *ev;
    static const struct {
        uint8_t b[32];
        size_t len;
    } bad[] = {
        {{2, 0, 0}, 3},    /* unknown version */
        {{1, 0x10, 0}, 3}, /* unknown present bit */
        {{1, 0, 4}, 3},    /* unknown data kind */
        {{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 13}, /* 2^64-1 */
        {{1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 14},
        {{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 13}, /* > 64 bits */
        {{1, 0, 0, 3, '1', 0, '0', 1, 'i', 1, 's', 1, 't', 0}, 14}, /* NUL inside a string */
        /* n_exts huge */
        {{1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 0xff, 0xff, 0xff, 0xff, 0x0f}, 18},
        /* ext kind 3 */
        {{1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 1, 3, 1, 'a', 1, 'v'}, 19},
        /* exts out of order */
        {{1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 2, 0, 1, 'b', 0, 0, 1, 'a', 0}, 22},
        /* duplicate ext */
        {{1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 2, 0, 1, 'a', 0, 0, 1, 'a', 0}, 22},
        /* empty ext name */
        {{1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 1, 0, 0, 0}, 17},
        /* data length beyond the end */
        {{1, 0, 1, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 0, 5, 'a'}, 16},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ev = (hr_ce_event_t *)1;
        if (hr_ce_decode(bad[i].b, bad[i].len, &ev) != HR_ECORRUPT) {
            fail_msg("case %zu decoded", i);
        }
        assert_null(ev);
    }
    /* the minimal well-formed record decodes */
    static const uint8_t ok[] = {1, 0, 0, 3, '1', '.', '0', 1, 'i', 1, 's', 1, 't', 0};
    assert_int_equal(hr_ce_decode(ok, sizeof ok, &ev), 0);
    assert_string_equal(ev->type, "t");
    hr_ce_event_free(ev);
    /* encode refuses an event without its required attributes */
    hr_ce_event_t empty = {0};
    hr_buf_t b = HR_BUF_INIT;
    assert_int_equal(hr_ce_encode(&empty, &b), HR_EINVAL);
    assert_int_equal(b.len, 0);
    hr_buf_free(&b);
}

/* Pseudo-random bytes never crash the decoder. */
static void test_random(void **state)
{
    (void)state;
    uint64_t s = 88172645463325252ull;
    uint8_t buf[64];
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = (size_t)(iter % 64);
        for (size_t i = 0; i < len; i++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            buf[i] = (uint8_t)s;
        }
        if (len > 0) {
            buf[0] = 1;
        }
        if (len > 1) {
            buf[1] &= 0x0f;
        }
        if (len > 2) {
            buf[2] &= 3;
        }
        hr_ce_event_t *ev = NULL;
        int rc = hr_ce_decode(buf, len, &ev);
        assert_true(rc == 0 || rc == HR_ECORRUPT);
        hr_ce_event_free(ev);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
