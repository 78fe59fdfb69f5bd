/* SPDX-License-Identifier: MIT */
/* fileio: write-all across many iovs, read-all at EOF, and injected failures truncating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fileio.h"

static void test_write_read_and_failure(void **state)
{
    char path[] = "/tmp/hr-fileio-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint8_t data[300];
    hr_iov_t iov[300]; /* more iovs than one pwritev call takes here */
    for (int i = 0; i < 300; i++) {
        data[i] = (uint8_t)i;
        iov[i].base = &data[i];
        iov[i].len = 1;
    }
    iov[7].len = 0;
    assert_int_equal(hr_pwritev_all(fd, iov, 300, 10, 1), 0);
    uint8_t back[400];
    size_t got = 0;
    assert_int_equal(hr_pread_all(fd, back, sizeof(back), 10, &got), 0);
    assert_int_equal(got, 299); /* short only at end of file */
    assert_int_equal(back[6], 6);
    assert_int_equal(back[7], 8);
    /* an injected failure leaves no partial write behind */
    hr__fileio_fail_writes(ENOSPC, 0);
    assert_int_equal(hr_pwrite_all(fd, data, 100, 309, 1), -ENOSPC);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 309);
    assert_int_equal(hr_pwrite_all(fd, data, 100, 309, 1), 0); /* one-shot */
    hr__fileio_fail_syncs(EIO, 1);
    assert_int_equal(hr_fdatasync(fd), 0);
    assert_int_equal(hr_fdatasync(fd), -EIO);
    assert_int_equal(hr_fdatasync(fd), 0);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_and_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
