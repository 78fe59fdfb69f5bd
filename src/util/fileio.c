/* SPDX-License-Identifier: MIT */
/*
 * File I/O helpers (see fileio.h). Short writes and EINTR are handled here, once, so that every
 * writer in the tree gets the same "never leave a partial write behind" behaviour
 * (STYLE.md §3, after Redis aofWrite).
 */
#include "util/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/uio.h>
#include <unistd.h>

static _Atomic int fail_write_err;
static _Atomic int fail_write_after;
static _Atomic int fail_sync_err;
static _Atomic int fail_sync_after;

void hr__fileio_fail_writes(int err, int after)
{
    atomic_store(&fail_write_after, after);
    atomic_store(&fail_write_err, err);
}

void hr__fileio_fail_syncs(int err, int after)
{
    atomic_store(&fail_sync_after, after);
    atomic_store(&fail_sync_err, err);
}

/* Returns the injected error to fail this call with, or 0. */
static int injected(_Atomic int *err, _Atomic int *after)
{
    int e = atomic_load(err);
    if (e == 0) {
        return 0;
    }
    if (atomic_fetch_sub(after, 1) > 0) {
        return 0;
    }
    atomic_store(err, 0);
    return e;
}

int hr_pwritev_all(int fd, const hr_iov_t *iov, size_t n, uint64_t off, int trunc_on_error)
{
    struct iovec v[64];
    uint64_t pos = off;
    size_t i = 0;    /* first iov not fully written */
    size_t skip = 0; /* bytes of iov[i] already written */
    int rc = 0;
    int inj = injected(&fail_write_err, &fail_write_after);
    if (inj != 0) {
        /* Simulate a torn write: put half of the first buffer down, then fail. */
        if (n > 0 && iov[0].len > 1) {
            ssize_t w = pwrite(fd, iov[0].base, iov[0].len / 2, (off_t)off);
            (void)w;
        }
        rc = -inj;
        goto err;
    }
    while (i < n) {
        int cnt = 0;
        for (size_t j = i; j < n && cnt < 64; j++) {
            size_t s = j == i ? skip : 0;
            if (iov[j].len - s == 0) {
                continue;
            }
            v[cnt].iov_base = (void *)(iov[j].base + s);
            v[cnt].iov_len = iov[j].len - s;
            cnt++;
        }
        if (cnt == 0) {
            break;
        }
        ssize_t w = pwritev(fd, v, cnt, (off_t)pos);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            goto err;
        }
        if (w == 0) {
            rc = -EIO;
            goto err;
        }
        pos += (uint64_t)w;
        size_t left = (size_t)w;
        while (i < n && left >= iov[i].len - skip) {
            left -= iov[i].len - skip;
            skip = 0;
            i++;
        }
        skip += left;
    }
    return 0;
err:
    /* Why: a partial record left behind would be mistaken for a torn tail at best and, at
     * worst, be followed by later writes; the caller goes into its failed state either way. */
    if (trunc_on_error) {
        while (ftruncate(fd, (off_t)off) != 0 && errno == EINTR) {
        }
    }
    return rc;
}

int hr_pwrite_all(int fd, const void *p, size_t len, uint64_t off, int trunc_on_error)
{
    hr_iov_t v = {p, len};
    return hr_pwritev_all(fd, &v, 1, off, trunc_on_error);
}

int hr_pread_all(int fd, void *p, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (uint8_t *)p + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *got = done;
            return -errno;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int hr_fdatasync(int fd)
{
    int inj = injected(&fail_sync_err, &fail_sync_after);
    if (inj != 0) {
        return -inj;
    }
    while (fdatasync(fd) != 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

int hr_fsync_dir(int dirfd)
{
    while (fsync(dirfd) != 0) {
        if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}
