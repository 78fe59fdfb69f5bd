/* SPDX-License-Identifier: MIT */
/*
 * CRC32C. The pre- and post-inversion live here, so callers chain calls by passing the previous
 * result: hr_crc32c(hr_crc32c(0, a, n), b, m) == hr_crc32c(0, a ++ b, n + m).
 *
 * The hardware path uses the SSE4.2 crc32 instruction (8 bytes per instruction); it is picked
 * once, lazily, with __builtin_cpu_supports. The software path is slicing-by-8 over tables
 * built once (pthread_once), so both are safe to call from any thread.
 */
#include "util/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        }
        tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            tab[t][i] = (tab[t - 1][i] >> 8) ^ tab[0][tab[t - 1][i] & 0xff];
        }
    }
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint32_t hr__crc32c_sw(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&tab_once, tab_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint64_t w = load_le64(p) ^ c;
        c = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^ tab[5][(w >> 16) & 0xff] ^
            tab[4][(w >> 24) & 0xff] ^ tab[3][(w >> 32) & 0xff] ^ tab[2][(w >> 40) & 0xff] ^
            tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) {
        c = (c >> 8) ^ tab[0][(c ^ *p++) & 0xff];
    }
    return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* the instruction consumes little-endian words; x86 is LE */
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    }
    return ~c32;
}
#endif

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);
static _Atomic(crc_fn) impl;

uint32_t hr_crc32c(uint32_t crc, const void *p, size_t n)
{
    crc_fn f = atomic_load_explicit(&impl, memory_order_relaxed);
    if (f == NULL) {
        f = hr__crc32c_sw;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("sse4.2")) {
            f = crc32c_hw;
        }
#endif
        atomic_store_explicit(&impl, f, memory_order_relaxed);
    }
    return f(crc, p, n);
}
