/* SPDX-License-Identifier: MIT */
/*
 * Matcher index (see matcher.h): two string-keyed hash tables (by exact type, by exact source)
 * of entry lists, and a residual list. Open addressing with linear probing; the tables only
 * grow while the matcher is built.
 *
 * Memory layout matters with 100,000 filters, where every lookup misses the cache: a slot keeps
 * its hash, a short value inline and its first entry within its first 64 bytes, so finding and
 * matching a filter that is nothing but `type = X` touches one cache line of the table.
 */
#include "filter/matcher.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    void *key;
    const hr_filter_t *f; /* NULL: the filter is exactly the bucket's condition (no evaluation) */
} entry_t;

typedef struct list {
    entry_t *v;
    size_t n, cap;
} list_t;

#define INLINE_VALUE 20

/* Exactly one cache line, and the slot array is 64-byte aligned. */
typedef struct slot {
    uint64_t hash;
    uint16_t used;          /* 0 = empty */
    uint16_t len;           /* value length when inline, else 0 */
    char inl[INLINE_VALUE]; /* the value when shorter than INLINE_VALUE, NUL-terminated */
    char *heap;             /* the value otherwise */
    entry_t first;          /* the first entry (most buckets hold one) */
    list_t *rest;           /* further entries, or NULL */
} slot_t;

_Static_assert(sizeof(slot_t) == 64, "a slot is one cache line");

static slot_t *slots_new(size_t cap)
{
    slot_t *s = aligned_alloc(64, cap * sizeof *s);
    HR_ASSERT(s != NULL);
    memset(s, 0, cap * sizeof *s);
    return s;
}

static const char *slot_value(const slot_t *s)
{
    return s->heap ? s->heap : s->inl;
}

typedef struct table {
    slot_t *slots;
    size_t cap, used;
} table_t;

struct hr_matcher {
    table_t by_type, by_source;
    /* filters that require a prefix of `type`, by that prefix; an event looks up each of its
     * type's prefixes whose length is in `prefix_lens` (few distinct lengths in practice) */
    table_t by_type_prefix;
    uint16_t *prefix_lens; /* sorted, distinct */
    size_t n_prefix_lens;
    list_t residual;
    size_t size;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    }
    return h ^ (h >> 31);
}

static void list_push(list_t *l, void *key, const hr_filter_t *f)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 2;
        l->v = hr_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].key = key;
    l->v[l->n].f = f;
    l->n++;
}

static slot_t *table_find(const table_t *t, const char *value, uint64_t h)
{
    if (t->cap == 0) {
        return NULL;
    }
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot_t *s = &t->slots[i];
        if (!s->used) {
            return NULL;
        }
        if (s->hash == h && strcmp(slot_value(s), value) == 0) {
            return s;
        }
    }
}

static void table_grow(table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    slot_t *slots = slots_new(cap);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].used) {
            continue;
        }
        size_t j = t->slots[i].hash & (cap - 1);
        while (slots[j].used) {
            j = (j + 1) & (cap - 1);
        }
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

/* Adds an entry to the bucket of `value`, creating it. */
static void table_add(table_t *t, const char *value, void *key, const hr_filter_t *f)
{
    uint64_t h = hash_str(value);
    slot_t *s = table_find(t, value, h);
    if (s) {
        if (s->rest == NULL) {
            s->rest = hr_xcalloc(1, sizeof *s->rest);
        }
        list_push(s->rest, key, f);
        return;
    }
    if ((t->used + 1) * 2 > t->cap) {
        table_grow(t);
    }
    size_t j = h & (t->cap - 1);
    while (t->slots[j].used) {
        j = (j + 1) & (t->cap - 1);
    }
    s = &t->slots[j];
    s->used = 1;
    s->hash = h;
    size_t n = strlen(value);
    if (n < INLINE_VALUE) {
        memcpy(s->inl, value, n + 1);
        s->len = (uint16_t)n;
    } else {
        s->heap = hr_xstrdup(value);
    }
    s->first.key = key;
    s->first.f = f;
    t->used++;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].heap);
        if (t->slots[i].rest) {
            free(t->slots[i].rest->v);
            free(t->slots[i].rest);
        }
    }
    free(t->slots);
}

hr_matcher_t *hr_matcher_create(void)
{
    return hr_xcalloc(1, sizeof(hr_matcher_t));
}

void hr_matcher_destroy(hr_matcher_t *m)
{
    if (m == NULL) {
        return;
    }
    table_free(&m->by_type);
    table_free(&m->by_source);
    table_free(&m->by_type_prefix);
    free(m->prefix_lens);
    free(m->residual.v);
    free(m);
}

void hr_matcher_add(hr_matcher_t *m, void *key, const hr_filter_t *f)
{
    const char *v;
    if ((v = hr_filter_required_exact(f, "type")) != NULL) {
        /* a filter that is nothing but this type needs no evaluation once the bucket matched:
         * that keeps a match in a large index from chasing the filter's nodes through memory */
        table_add(&m->by_type, v, key, hr_filter_is_exact_only(f, "type") ? NULL : f);
    } else if ((v = hr_filter_required_prefix(f, "type")) != NULL && strlen(v) < 65536) {
        table_add(&m->by_type_prefix, v, key, f);
        uint16_t len = (uint16_t)strlen(v);
        size_t i = 0;
        while (i < m->n_prefix_lens && m->prefix_lens[i] < len) {
            i++;
        }
        if (i == m->n_prefix_lens || m->prefix_lens[i] != len) {
            m->prefix_lens = hr_xrealloc(m->prefix_lens, (m->n_prefix_lens + 1) * sizeof(uint16_t));
            memmove(m->prefix_lens + i + 1, m->prefix_lens + i,
                    (m->n_prefix_lens - i) * sizeof(uint16_t));
            m->prefix_lens[i] = len;
            m->n_prefix_lens++;
        }
    } else if ((v = hr_filter_required_exact(f, "source")) != NULL) {
        table_add(&m->by_source, v, key, hr_filter_is_exact_only(f, "source") ? NULL : f);
    } else {
        list_push(&m->residual, key, f);
    }
    m->size++;
}

static size_t run_one(const entry_t *e, const hr_ce_event_t *ev, void (*fn)(void *, void *),
                      void *arg)
{
    if (e->f == NULL || hr_filter_match(e->f, ev)) {
        fn(arg, e->key);
        return 1;
    }
    return 0;
}

static size_t run(const list_t *l, const hr_ce_event_t *ev, void (*fn)(void *, void *), void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        n += run_one(&l->v[i], ev, fn, arg);
    }
    return n;
}

static size_t run_slot(const slot_t *s, const hr_ce_event_t *ev, void (*fn)(void *, void *),
                       void *arg)
{
    return run_one(&s->first, ev, fn, arg) + (s->rest ? run(s->rest, ev, fn, arg) : 0);
}

size_t hr_matcher_match(const hr_matcher_t *m, const hr_ce_event_t *ev,
                        void (*fn)(void *arg, void *key), void *arg)
{
    size_t n = 0;
    slot_t *s;
    if (ev->type && (s = table_find(&m->by_type, ev->type, hash_str(ev->type))) != NULL) {
        n += run_slot(s, ev, fn, arg);
    }
    if (ev->source && (s = table_find(&m->by_source, ev->source, hash_str(ev->source))) != NULL) {
        n += run_slot(s, ev, fn, arg);
    }
    if (ev->type && m->n_prefix_lens) {
        size_t tlen = strlen(ev->type);
        char buf[256];
        for (size_t i = 0; i < m->n_prefix_lens && m->prefix_lens[i] <= tlen; i++) {
            size_t l = m->prefix_lens[i];
            char *p = l < sizeof buf ? buf : hr_xmalloc(l + 1);
            memcpy(p, ev->type, l);
            p[l] = '\0';
            if ((s = table_find(&m->by_type_prefix, p, hash_str(p))) != NULL) {
                n += run_slot(s, ev, fn, arg);
            }
            if (p != buf) {
                free(p);
            }
        }
    }
    return n + run(&m->residual, ev, fn, arg);
}

size_t hr_matcher_size(const hr_matcher_t *m)
{
    return m->size;
}

size_t hr_matcher_residual(const hr_matcher_t *m)
{
    return m->residual.n;
}
