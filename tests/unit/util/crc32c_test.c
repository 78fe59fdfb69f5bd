/* SPDX-License-Identifier: MIT */
/* CRC32C: RFC 3720 B.4 test vectors, both implementations, and chaining. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/crc32c.h"

static void test_rfc3720_vectors(void **state)
{
    uint8_t buf[48];
    memset(buf, 0, 32);
    assert_int_equal(hr_crc32c(0, buf, 32), 0x8A9136AA);
    assert_int_equal(hr__crc32c_sw(0, buf, 32), 0x8A9136AA);
    memset(buf, 0xff, 32);
    assert_int_equal(hr_crc32c(0, buf, 32), 0x62A8AB43);
    assert_int_equal(hr__crc32c_sw(0, buf, 32), 0x62A8AB43);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    assert_int_equal(hr_crc32c(0, buf, 32), 0x46DD794E);
    assert_int_equal(hr__crc32c_sw(0, buf, 32), 0x46DD794E);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(hr_crc32c(0, buf, 32), 0x113FDB5C);
    assert_int_equal(hr__crc32c_sw(0, buf, 32), 0x113FDB5C);
    /* An iSCSI SCSI Read (10) command PDU. */
    static const uint8_t pdu[48] = {0x01, 0xc0, 0, 0,    0,    0, 0, 0,    0,    0, 0,    0,
                                    0,    0,    0, 0,    0x14, 0, 0, 0,    0,    0, 0x04, 0,
                                    0,    0,    0, 0x14, 0,    0, 0, 0x18, 0x28, 0, 0,    0,
                                    0,    0,    0, 0,    0x02, 0, 0, 0,    0,    0, 0,    0};
    assert_int_equal(hr_crc32c(0, pdu, 48), 0xD9963A56);
    assert_int_equal(hr__crc32c_sw(0, pdu, 48), 0xD9963A56);
    assert_int_equal(hr_crc32c(0, "123456789", 9), 0xE3069283);
    assert_int_equal(hr_crc32c(0, "", 0), 0);
}

static void test_chaining_and_alignment(void **state)
{
    uint8_t buf[1031];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    uint32_t whole = hr__crc32c_sw(0, buf, sizeof(buf));
    for (size_t off = 0; off < 16; off++) {
        for (size_t split = 0; split < sizeof(buf) - off; split += 97) {
            size_t n = sizeof(buf) - off;
            uint32_t ref = hr__crc32c_sw(0, buf + off, n);
            uint32_t a = hr_crc32c(hr_crc32c(0, buf + off, split), buf + off + split, n - split);
            assert_int_equal(a, ref);
            uint32_t b =
                hr__crc32c_sw(hr__crc32c_sw(0, buf + off, split), buf + off + split, n - split);
            assert_int_equal(b, ref);
        }
    }
    assert_int_equal(hr_crc32c(0, buf, sizeof(buf)), whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_chaining_and_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
