/* SPDX-License-Identifier: MIT */
/*
 * Aborting allocators for small control structures (never for client-sized memory such as
 * event bodies, which must fail softly with HR_ENOMEM and map to 413/503).
 */
#ifndef HR_UTIL_ALLOC_H
#define HR_UTIL_ALLOC_H

#include <stddef.h>

void *hr_xmalloc(size_t n);
void *hr_xcalloc(size_t n, size_t size);
void *hr_xrealloc(void *p, size_t n);
char *hr_xstrdup(const char *s);
char *hr_xstrndup(const char *s, size_t n);

/* Always-on invariant check for state that protects stored data. */
#define HR_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            hr__assert_fail(#cond, __FILE__, __LINE__);                                            \
        }                                                                                          \
    } while (0)

_Noreturn void hr__assert_fail(const char *expr, const char *file, int line);

#endif
