/* SPDX-License-Identifier: MIT */
/*
 * File I/O helpers shared by the storage modules: positional write-all that retries EINTR and
 * short writes and truncates a failed write away, read-all, fdatasync, and directory fsync.
 * All return 0 or -errno. Thread-safe (they keep no state beyond the fault-injection hooks).
 *
 * Fault injection for tests: hr__fileio_fail_writes(err, after) makes the write helpers fail
 * with `err` once `after` more successful write calls have gone by; hr__fileio_fail_syncs
 * does the same for hr_fdatasync. err == 0 disarms.
 */
#ifndef HR_UTIL_FILEIO_H
#define HR_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

/* Writes all `n` iovs at file offset `off` (pwritev; no file position is used). On failure,
 * truncates the file back to `off` (so no partial write stays behind when `off` was the end of
 * the data) and returns -errno (e.g. -ENOSPC). `trunc_on_error` 0 skips the truncation, for
 * writes into the middle of a file. */
int hr_pwritev_all(int fd, const hr_iov_t *iov, size_t n, uint64_t off, int trunc_on_error);

/* One-buffer form of hr_pwritev_all. */
int hr_pwrite_all(int fd, const void *p, size_t len, uint64_t off, int trunc_on_error);

/* Reads up to `len` bytes at `off`, retrying EINTR and short reads; *got is set to the bytes
 * read (less than len only at end of file). Returns 0 or -errno. */
int hr_pread_all(int fd, void *p, size_t len, uint64_t off, size_t *got);

/* fdatasync with EINTR retry. */
int hr_fdatasync(int fd);

/* fsync of a directory: makes created, renamed and unlinked names in it durable. */
int hr_fsync_dir(int dirfd);

void hr__fileio_fail_writes(int err, int after);
void hr__fileio_fail_syncs(int err, int after);

#endif
