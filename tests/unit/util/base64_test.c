/* SPDX-License-Identifier: MIT */
/* Strict base64: RFC 4648 test vectors, a table of rejected inputs, and round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/base64.h"
#include "util/err.h"

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    static const char *const v[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hr_buf_t b = HR_BUF_INIT;
        assert_int_equal(hr_base64_encode(&b, v[i][0], strlen(v[i][0])), 0);
        assert_int_equal(b.len, strlen(v[i][1]));
        assert_memory_equal(b.data, v[i][1], b.len);
        assert_int_equal(hr_base64_encoded_len(strlen(v[i][0])), b.len);
        uint8_t out[16];
        size_t n = 99;
        assert_int_equal(hr_base64_decode(v[i][1], strlen(v[i][1]), out, &n, NULL), 0);
        assert_int_equal(n, strlen(v[i][0]));
        assert_memory_equal(out, v[i][0], n);
        hr_buf_free(&b);
    }
}

static void test_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t off;
    } bad[] = {
        {"Zg=", 0},      /* length not a multiple of 4 */
        {"Zg", 0},       /* missing padding */
        {"Zm9vY", 4},    /* 5 chars */
        {"Zg==Zg==", 2}, /* padding in the middle */
        {"Z===", 1},     /* too much padding */
        {"====", 0},     /* only padding */
        {"Zm=v", 2},     /* '=' then data */
        {"Zm9v\n", 4},   /* whitespace */
        {"Zm 9v", 4},    /* space inside (length 5) */
        {"Zm9-", 3},     /* URL-safe alphabet */
        {"Zm9_", 3},     /* URL-safe alphabet */
        {"Zh==", 1},     /* non-zero unused bits ("Zg==" is canonical) */
        {"Zm9=", 2},     /* non-zero unused bits ("Zm8=" is canonical) */
        {"Zm9v\x80\x80\x80\x80", 4},
        {"Zm9vYg=\x00", 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t out[16];
        size_t n = 0, off = 999;
        size_t len = i == 14 ? 8 : strlen(bad[i].in);
        if (hr_base64_decode(bad[i].in, len, out, &n, &off) != HR_EINVAL) {
            fail_msg("case %zu (%s) was accepted", i, bad[i].in);
        }
        if (off != bad[i].off) {
            fail_msg("case %zu (%s): offset %zu, expected %zu", i, bad[i].in, off, bad[i].off);
        }
    }
}

static void test_roundtrip_all_lengths(void **state)
{
    (void)state;
    uint8_t src[300], dst[300];
    for (size_t i = 0; i < sizeof src; i++) {
        src[i] = (uint8_t)(i * 37 + 11);
    }
    for (size_t len = 0; len <= sizeof src; len++) {
        hr_buf_t b = HR_BUF_INIT;
        assert_int_equal(hr_base64_encode(&b, src, len), 0);
        assert_int_equal(b.len % 4, 0);
        assert_true(hr_base64_decoded_max(b.len) >= len);
        size_t n = 0;
        assert_int_equal(hr_base64_decode((const char *)b.data, b.len, dst, &n, NULL), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dst, src, len);
        hr_buf_free(&b);
    }
}

static void test_encode_appends(void **state)
{
    (void)state;
    hr_buf_t b = HR_BUF_INIT;
    assert_int_equal(hr_buf_puts(&b, "x="), 0);
    assert_int_equal(hr_base64_encode(&b, "\xff\xfe", 2), 0);
    assert_string_equal((char *)b.data, "x=//4=");
    hr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_roundtrip_all_lengths),
        cmocka_unit_test(test_encode_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
