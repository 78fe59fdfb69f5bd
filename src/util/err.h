/* SPDX-License-Identifier: MIT */
/*
 * Error codes. Fallible functions return 0 or a negative code: either one of the HR_E* codes
 * below, or -errno for a failed system call. hr_strerror() names both.
 */
#ifndef HR_UTIL_ERR_H
#define HR_UTIL_ERR_H

#define HR_ERRNO_MAP(X)                                                                            \
    X(NOMEM, -1001, "out of memory")                                                               \
    X(INVAL, -1002, "invalid argument")                                                            \
    X(IO, -1003, "i/o error")                                                                      \
    X(CORRUPT, -1004, "corrupt data")                                                              \
    X(NOTFOUND, -1005, "not found")                                                                \
    X(EXISTS, -1006, "already exists")                                                             \
    X(TOOBIG, -1007, "too large")                                                                  \
    X(FAILED, -1008, "writer is in a failed state")                                                \
    X(CLOSED, -1009, "closed")                                                                     \
    X(NOSPACE, -1010, "disk full")                                                                 \
    X(CONFLICT, -1011, "conflict")                                                                 \
    X(REJECTED, -1012, "rejected")                                                                 \
    X(BUSY, -1013, "busy")                                                                         \
    X(TIMEOUT, -1014, "timed out")

enum {
#define HR_ERR_ENUM(name, val, msg) HR_E##name = (val),
    HR_ERRNO_MAP(HR_ERR_ENUM)
#undef HR_ERR_ENUM
};

/* Returns a static string describing `err` (an HR_E* code or -errno). */
const char *hr_strerror(int err);

#endif
