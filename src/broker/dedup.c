/* SPDX-License-Identifier: MIT */
/*
 * Dedup window: a FIFO ring of entries in insertion (= seq = time) order, and an open-addressing
 * hash table (linear probing, backward-shift deletion) from key to ring position. Expiry pops
 * the ring's head while it is older than the window. Single-threaded (the commit thread).
 */
#include "broker/dedup.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    hr_dedup_key_t key;
    uint64_t seq;
    uint64_t time_ns;
} entry_t;

struct hr_dedup {
    uint64_t window_ns;
    size_t max_entries;
    /* ring of entries, oldest at head */
    entry_t *ring;
    size_t ring_cap, head, count;
    /* hash table of ring indexes + 1 (0 = empty slot); size is a power of two >= 2 * ring_cap */
    uint32_t *slots;
    size_t n_slots;
};

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* Two independent 64-bit hashes over the bytes (FNV-1a with different bases and primes,
 * each finished with a murmur3 mix), so a false duplicate needs a 128-bit collision. */
static void hash_bytes(const char *s, size_t n, uint64_t *a, uint64_t *b)
{
    uint64_t h1 = *a, h2 = *b;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        h1 = (h1 ^ c) * 0x100000001b3ULL;
        h2 = (h2 ^ c) * 0x9e3779b97f4a7c15ULL;
        h2 ^= h2 >> 29;
    }
    *a = h1;
    *b = h2;
}

hr_dedup_key_t hr_dedup_key(const char *source, const char *id)
{
    uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
    size_t ls = strlen(source), li = strlen(id);
    hash_bytes(source, ls, &a, &b);
    /* the lengths separate ("ab","c") from ("a","bc") */
    char sep[16];
    memcpy(sep, &ls, sizeof ls);
    memcpy(sep + 8, &li, sizeof li);
    hash_bytes(sep, sizeof sep, &a, &b);
    hash_bytes(id, li, &a, &b);
    hr_dedup_key_t k = {fmix64(a), fmix64(b ^ 0x5bd1e9955bd1e995ULL)};
    return k;
}

static size_t slot_of(const hr_dedup_t *d, hr_dedup_key_t k)
{
    return (size_t)(k.h1 ^ (k.h2 >> 7)) & (d->n_slots - 1);
}

static void table_rebuild(hr_dedup_t *d)
{
    memset(d->slots, 0, d->n_slots * sizeof *d->slots);
    for (size_t i = 0; i < d->count; i++) {
        size_t r = (d->head + i) % d->ring_cap;
        size_t s = slot_of(d, d->ring[r].key);
        while (d->slots[s]) {
            s = (s + 1) & (d->n_slots - 1);
        }
        d->slots[s] = (uint32_t)(r + 1);
    }
}

static void grow(hr_dedup_t *d)
{
    size_t cap = d->ring_cap ? d->ring_cap * 2 : 1024;
    if (cap > d->max_entries) {
        cap = d->max_entries;
    }
    entry_t *ring = hr_xmalloc(cap * sizeof *ring);
    for (size_t i = 0; i < d->count; i++) {
        ring[i] = d->ring[(d->head + i) % d->ring_cap];
    }
    free(d->ring);
    d->ring = ring;
    d->ring_cap = cap;
    d->head = 0;
    size_t n = 16;
    while (n < cap * 2) {
        n *= 2;
    }
    free(d->slots);
    d->slots = hr_xcalloc(n, sizeof *d->slots);
    d->n_slots = n;
    table_rebuild(d);
}

void hr_dedup_create(uint64_t window_ms, size_t max_entries, hr_dedup_t **out)
{
    hr_dedup_t *d = hr_xcalloc(1, sizeof *d);
    d->window_ns = window_ms * 1000000ull;
    d->max_entries = max_entries < 1024 ? 1024 : max_entries;
    if (d->max_entries > UINT32_MAX - 1) {
        d->max_entries = UINT32_MAX - 1;
    }
    *out = d;
}

void hr_dedup_destroy(hr_dedup_t *d)
{
    if (d == NULL) {
        return;
    }
    free(d->ring);
    free(d->slots);
    free(d);
}

void hr_dedup_set_window(hr_dedup_t *d, uint64_t window_ms)
{
    d->window_ns = window_ms * 1000000ull;
}

static int key_eq(hr_dedup_key_t a, hr_dedup_key_t b)
{
    return a.h1 == b.h1 && a.h2 == b.h2;
}

int hr_dedup_find(hr_dedup_t *d, hr_dedup_key_t key, uint64_t now_ns, uint64_t *seq)
{
    if (d->count == 0) {
        return 0;
    }
    uint64_t oldest = now_ns > d->window_ns ? now_ns - d->window_ns : 0;
    for (size_t s = slot_of(d, key); d->slots[s]; s = (s + 1) & (d->n_slots - 1)) {
        const entry_t *e = &d->ring[d->slots[s] - 1];
        if (key_eq(e->key, key)) {
            if (e->time_ns < oldest) {
                return 0;
            }
            *seq = e->seq;
            return 1;
        }
    }
    return 0;
}

/* Removes the head entry from the table (backward-shift deletion) and the ring. */
static void pop_head(hr_dedup_t *d)
{
    uint32_t target = (uint32_t)(d->head + 1);
    size_t s = slot_of(d, d->ring[d->head].key);
    while (d->slots[s] != target) {
        HR_ASSERT(d->slots[s] != 0);
        s = (s + 1) & (d->n_slots - 1);
    }
    size_t mask = d->n_slots - 1;
    size_t hole = s;
    for (size_t j = (hole + 1) & mask; d->slots[j]; j = (j + 1) & mask) {
        size_t home = slot_of(d, d->ring[d->slots[j] - 1].key);
        /* move j into the hole if its home is not in (hole, j] cyclically */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            d->slots[hole] = d->slots[j];
            hole = j;
        }
    }
    d->slots[hole] = 0;
    d->head = (d->head + 1) % d->ring_cap;
    d->count--;
}

void hr_dedup_insert(hr_dedup_t *d, hr_dedup_key_t key, uint64_t seq, uint64_t time_ns)
{
    if (d->count == d->ring_cap) {
        if (d->ring_cap < d->max_entries) {
            grow(d);
        } else {
            pop_head(d); /* memory bound reached: the oldest entry leaves early */
        }
    }
    size_t r = (d->head + d->count) % d->ring_cap;
    d->ring[r].key = key;
    d->ring[r].seq = seq;
    d->ring[r].time_ns = time_ns;
    d->count++;
    size_t s = slot_of(d, key);
    while (d->slots[s]) {
        s = (s + 1) & (d->n_slots - 1);
    }
    d->slots[s] = (uint32_t)(r + 1);
}

void hr_dedup_expire(hr_dedup_t *d, uint64_t now_ns)
{
    uint64_t oldest = now_ns > d->window_ns ? now_ns - d->window_ns : 0;
    while (d->count && d->ring[d->head].time_ns < oldest) {
        pop_head(d);
    }
}

size_t hr_dedup_count(const hr_dedup_t *d)
{
    return d->count;
}
