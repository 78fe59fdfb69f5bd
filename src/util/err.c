/* SPDX-License-Identifier: MIT */
/* hr_strerror: names HR_E* codes and negative errno values. Thread-safe. */
#include "util/err.h"

#include <string.h>

const char *hr_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
#define HR_ERR_CASE(name, val, msg)                                                                \
    case HR_E##name:                                                                               \
        return msg;
        HR_ERRNO_MAP(HR_ERR_CASE)
#undef HR_ERR_CASE
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        return strerror(-err); /* glibc's strerror is thread-safe for known codes */
    }
    return "unknown error";
}
