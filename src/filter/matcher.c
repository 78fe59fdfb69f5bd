/* SPDX-License-Identifier: MIT */
/*
 * Matcher index (see matcher.h): two string-keyed hash tables (by exact type, by exact source)
 * of entry lists, and a residual list. Open addressing with linear probing; the tables only
 * grow while the matcher is built.
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

typedef struct slot {
    char *value; /* NULL = empty */
    uint64_t hash;
    list_t list;
} slot_t;

typedef struct table {
    slot_t *slots;
    size_t cap, used;
} table_t;

struct hr_matcher {
    table_t by_type, by_source;
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
        if (s->value == NULL) {
            return NULL;
        }
        if (s->hash == h && strcmp(s->value, value) == 0) {
            return s;
        }
    }
}

static void table_grow(table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    slot_t *slots = hr_xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].value == NULL) {
            continue;
        }
        size_t j = t->slots[i].hash & (cap - 1);
        while (slots[j].value != NULL) {
            j = (j + 1) & (cap - 1);
        }
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

static list_t *table_get(table_t *t, const char *value)
{
    uint64_t h = hash_str(value);
    slot_t *s = table_find(t, value, h);
    if (s) {
        return &s->list;
    }
    if ((t->used + 1) * 2 > t->cap) {
        table_grow(t);
    }
    size_t j = h & (t->cap - 1);
    while (t->slots[j].value != NULL) {
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j].value = hr_xstrdup(value);
    t->slots[j].hash = h;
    t->used++;
    return &t->slots[j].list;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->slots[i].value);
        free(t->slots[i].list.v);
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
    free(m->residual.v);
    free(m);
}

void hr_matcher_add(hr_matcher_t *m, void *key, const hr_filter_t *f)
{
    const char *v;
    if ((v = hr_filter_required_exact(f, "type")) != NULL) {
        /* a filter that is nothing but this type needs no evaluation once the bucket matched:
         * that keeps a match in a large index from chasing the filter's nodes through memory */
        list_push(table_get(&m->by_type, v), key, hr_filter_is_exact_only(f, "type") ? NULL : f);
    } else if ((v = hr_filter_required_exact(f, "source")) != NULL) {
        list_push(table_get(&m->by_source, v), key, f);
    } else {
        list_push(&m->residual, key, f);
    }
    m->size++;
}

static size_t run(const list_t *l, const hr_ce_event_t *ev, void (*fn)(void *, void *), void *arg)
{
    size_t n = 0;
    for (size_t i = 0; l && i < l->n; i++) {
        if (l->v[i].f == NULL || hr_filter_match(l->v[i].f, ev)) {
            fn(arg, l->v[i].key);
            n++;
        }
    }
    return n;
}

size_t hr_matcher_match(const hr_matcher_t *m, const hr_ce_event_t *ev,
                        void (*fn)(void *arg, void *key), void *arg)
{
    size_t n = 0;
    slot_t *s;
    if (ev->type && (s = table_find(&m->by_type, ev->type, hash_str(ev->type))) != NULL) {
        n += run(&s->list, ev, fn, arg);
    }
    if (ev->source && (s = table_find(&m->by_source, ev->source, hash_str(ev->source))) != NULL) {
        n += run(&s->list, ev, fn, arg);
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
