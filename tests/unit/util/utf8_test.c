/* SPDX-License-Identifier: MIT */
/* Strict UTF-8 validation: a table of valid and invalid sequences, and encode/decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/utf8.h"

typedef struct utf8_case {
    const char *bytes;
    size_t len;
    int valid;
    size_t bad_off;
} utf8_case_t;

#define V(s)                                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1, 1, 0                                                                     \
    }
#define X(s, off)                                                                                  \
    {                                                                                              \
        s, sizeof(s) - 1, 0, off                                                                   \
    }

static const utf8_case_t cases[] = {
    V(""),
    V("plain ascii"),
    V("\x7f"),
    V("caf\xc3\xa9"),      /* U+00E9 */
    V("\xc2\x80"),         /* U+0080, smallest 2-byte */
    V("\xdf\xbf"),         /* U+07FF */
    V("\xe0\xa0\x80"),     /* U+0800, smallest 3-byte */
    V("\xe2\x82\xac"),     /* euro sign */
    V("\xed\x9f\xbf"),     /* U+D7FF, just below surrogates */
    V("\xee\x80\x80"),     /* U+E000, just above surrogates */
    V("\xef\xbf\xbf"),     /* U+FFFF (a noncharacter, but valid UTF-8) */
    V("\xf0\x90\x80\x80"), /* U+10000 */
    V("\xf0\x9f\x98\x80"), /* emoji */
    V("\xf4\x8f\xbf\xbf"), /* U+10FFFF, the maximum */
    V("a\x00"
      "b"),                           /* NUL is valid UTF-8 */
    X("\x80", 0),                     /* lone continuation */
    X("ab\xbf", 2),                   /* lone continuation later */
    X("\xc0\x80", 0),                 /* overlong NUL */
    X("\xc1\xbf", 0),                 /* overlong U+007F */
    X("\xc0\xa0", 0),                 /* overlong space (the HTTP binding's example) */
    X("\xe0\x80\x80", 0),             /* overlong 3-byte */
    X("\xe0\x9f\xbf", 0),             /* overlong U+07FF */
    X("\xf0\x80\x80\x80", 0),         /* overlong 4-byte */
    X("\xf0\x8f\xbf\xbf", 0),         /* overlong U+FFFF */
    X("\xed\xa0\x80", 0),             /* U+D800 surrogate */
    X("\xed\xbf\xbf", 0),             /* U+DFFF surrogate */
    X("\xed\xa0\xbd\xed\xb8\x80", 0), /* CESU-8 surrogate pair */
    X("\xf4\x90\x80\x80", 0),         /* U+110000 */
    X("\xf5\x80\x80\x80", 0),         /* F5 lead */
    X("\xff", 0),
    X("\xfe", 0),
    X("x\xc3", 1),         /* truncated 2-byte */
    X("x\xe2\x82", 1),     /* truncated 3-byte */
    X("\xf0\x9f\x98", 0),  /* truncated 4-byte */
    X("\xe2\x28\xa1", 0),  /* bad continuation */
    X("\xc3\xa9\xc3(", 2), /* second char bad */
    X("ok\xf0\x9f\x98\x80\xc3", 6),
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t off = 999;
        int got = hr_utf8_valid(cases[i].bytes, cases[i].len, &off);
        if (got != cases[i].valid) {
            fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
        }
        if (!got && off != cases[i].bad_off) {
            fail_msg("case %zu: bad offset %zu, expected %zu", i, off, cases[i].bad_off);
        }
    }
}

static void test_decode_encode_roundtrip(void **state)
{
    (void)state;
    static const uint32_t cps[] = {0,      0x41,   0x7F,   0x80,    0x7FF,   0x800,   0xD7FF,
                                   0xE000, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        uint8_t b[4];
        size_t n = hr_utf8_encode(cps[i], b);
        assert_true(n >= 1 && n <= 4);
        uint32_t cp = 0;
        assert_int_equal(hr_utf8_decode(b, n, &cp), n);
        assert_int_equal(cp, cps[i]);
        assert_true(hr_utf8_valid(b, n, NULL));
        /* every strict prefix is truncated, hence invalid */
        for (size_t k = 1; k < n; k++) {
            assert_int_equal(hr_utf8_decode(b, k, &cp), 0);
        }
    }
    uint8_t b[4];
    assert_int_equal(hr_utf8_encode(0xD800, b), 0);
    assert_int_equal(hr_utf8_encode(0xDFFF, b), 0);
    assert_int_equal(hr_utf8_encode(0x110000, b), 0);
}

/* Exhaustive over all 2- and 3-byte sequences: compare with a reference definition. */
static void test_exhaustive_against_model(void **state)
{
    (void)state;
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n = hr_utf8_encode(cp, b);
        int ok = !(cp >= 0xD800 && cp <= 0xDFFF);
        assert_int_equal(n != 0, ok);
        if (ok) {
            uint32_t back;
            assert_int_equal(hr_utf8_decode(b, n, &back), n);
            assert_int_equal(back, cp);
        }
    }
    /* every 2-byte pattern: valid iff lead C2-DF and continuation 80-BF */
    for (unsigned a = 0x80; a < 0x100; a++) {
        for (unsigned c = 0; c < 0x100; c++) {
            uint8_t b[2] = {(uint8_t)a, (uint8_t)c};
            int model = a >= 0xC2 && a <= 0xDF && c >= 0x80 && c <= 0xBF;
            assert_int_equal(hr_utf8_valid(b, 2, NULL), model);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_decode_encode_roundtrip),
        cmocka_unit_test(test_exhaustive_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
