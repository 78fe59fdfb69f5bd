/* SPDX-License-Identifier: MIT */
/* A small log-linear latency histogram for the bench helpers (header-only, no allocation).
 * Values are microseconds. Below 1024 µs every microsecond has its own bucket; above, each
 * power of two is split into 64 buckets (≤ 1.6% relative error), up to about 2^31 µs. */
#ifndef HERALD_BENCH_HIST_H
#define HERALD_BENCH_HIST_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#define HIST_LINEAR 1024u
#define HIST_SUB 64u
#define HIST_OCTAVES 22u /* 2^10 .. 2^31 µs */
#define HIST_BUCKETS (HIST_LINEAR + HIST_OCTAVES * HIST_SUB)

typedef struct {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t b[HIST_BUCKETS];
} hist_t;

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void hist_init(hist_t *h)
{
    memset(h, 0, sizeof *h);
}

static inline unsigned hist_index(uint64_t us)
{
    if (us < HIST_LINEAR)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us); /* >= 10 */
    unsigned oct = msb - 10u;
    if (oct >= HIST_OCTAVES)
        return HIST_BUCKETS - 1u;
    unsigned sub = (unsigned)((us >> (msb - 6u)) & (HIST_SUB - 1u));
    return HIST_LINEAR + oct * HIST_SUB + sub;
}

/* Lower bound of bucket i, in µs. */
static inline uint64_t hist_value(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned oct = (i - HIST_LINEAR) / HIST_SUB, sub = (i - HIST_LINEAR) % HIST_SUB;
    unsigned msb = oct + 10u;
    return ((uint64_t)1 << msb) + ((uint64_t)sub << (msb - 6u));
}

static inline void hist_add(hist_t *h, uint64_t us)
{
    h->b[hist_index(us)]++;
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

static inline void hist_merge(hist_t *dst, const hist_t *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

/* The value at quantile q (0..1), in µs. */
static inline uint64_t hist_quantile(const hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count)
        rank = h->count - 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank)
            return hist_value(i);
    }
    return h->max_us;
}

#endif
