/* SPDX-License-Identifier: MIT */
/*
 * The trace store: a hash table from (bus, seq) to a trace record, plus a FIFO of records in
 * creation order for eviction. Bus and trigger names are interned in a small string table so a
 * record costs a few dozen bytes plus its attempts.
 */
#include "obs/trace.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct attempt {
    uint64_t time_ns;
    uint32_t latency_us;
    int16_t status;
    const char *error; /* interned */
} attempt_t;

typedef struct per_trigger {
    const char *trigger; /* interned */
    uint8_t outcome;
    uint8_t replay;
    uint16_t n_att;     /* kept */
    uint32_t total_att; /* made */
    const char *note;   /* interned */
    attempt_t att[HR_TRACE_MAX_ATTEMPTS];
} per_trigger_t;

typedef struct record {
    const char *bus; /* interned */
    uint64_t seq;
    per_trigger_t *pt;
    size_t n_pt;
    struct record *hnext; /* hash chain */
    struct record *fnext; /* FIFO */
} record_t;

typedef struct istr {
    struct istr *next;
    char s[];
} istr_t;

struct hr_trace {
    pthread_mutex_t mu;
    size_t max_events, count;
    record_t **table;
    size_t n_buckets;
    record_t *fhead, *ftail;
    istr_t **strs;
    size_t n_str_buckets, n_strs;
};

static uint64_t hash_str(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    }
    return h;
}

/* Interns a string (error texts are few and repeat; names are few). Bounded: past 65,536
 * distinct strings new ones are stored as "(more)". */
static const char *intern(hr_trace_t *t, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t b = hash_str(s, 0xcbf29ce484222325ULL) % t->n_str_buckets;
    for (istr_t *p = t->strs[b]; p; p = p->next) {
        if (strcmp(p->s, s) == 0) {
            return p->s;
        }
    }
    if (t->n_strs >= 65536) {
        return "(more)";
    }
    size_t n = strlen(s);
    if (n > 300) {
        n = 300;
    }
    istr_t *p = hr_xmalloc(sizeof *p + n + 1);
    memcpy(p->s, s, n);
    p->s[n] = '\0';
    p->next = t->strs[b];
    t->strs[b] = p;
    t->n_strs++;
    return p->s;
}

void hr_trace_create(size_t max_events, hr_trace_t **out)
{
    hr_trace_t *t = hr_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->max_events = max_events ? max_events : 1;
    t->n_buckets = 1;
    while (t->n_buckets < t->max_events) {
        t->n_buckets *= 2;
    }
    t->table = hr_xcalloc(t->n_buckets, sizeof *t->table);
    t->n_str_buckets = 4096;
    t->strs = hr_xcalloc(t->n_str_buckets, sizeof *t->strs);
    *out = t;
}

static void free_record(record_t *r)
{
    free(r->pt);
    free(r);
}

void hr_trace_destroy(hr_trace_t *t)
{
    if (t == NULL) {
        return;
    }
    for (record_t *r = t->fhead, *n; r; r = n) {
        n = r->fnext;
        free_record(r);
    }
    for (size_t i = 0; i < t->n_str_buckets; i++) {
        for (istr_t *p = t->strs[i], *n; p; p = n) {
            n = p->next;
            free(p);
        }
    }
    free(t->strs);
    free(t->table);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static size_t bucket(hr_trace_t *t, const char *bus, uint64_t seq)
{
    return hash_str(bus, seq * 0x9e3779b97f4a7c15ULL) & (t->n_buckets - 1);
}

static void evict_oldest(hr_trace_t *t)
{
    record_t *r = t->fhead;
    t->fhead = r->fnext;
    if (t->fhead == NULL) {
        t->ftail = NULL;
    }
    record_t **pp = &t->table[bucket(t, r->bus, r->seq)];
    while (*pp != r) {
        pp = &(*pp)->hnext;
    }
    *pp = r->hnext;
    free_record(r);
    t->count--;
}

static record_t *find(hr_trace_t *t, const char *bus, uint64_t seq, int create)
{
    size_t b = bucket(t, bus, seq);
    for (record_t *r = t->table[b]; r; r = r->hnext) {
        if (r->seq == seq && strcmp(r->bus, bus) == 0) {
            return r;
        }
    }
    if (!create) {
        return NULL;
    }
    if (t->count >= t->max_events) {
        evict_oldest(t);
        b = bucket(t, bus, seq);
    }
    record_t *r = hr_xcalloc(1, sizeof *r);
    r->bus = intern(t, bus);
    r->seq = seq;
    r->hnext = t->table[b];
    t->table[b] = r;
    if (t->ftail) {
        t->ftail->fnext = r;
    } else {
        t->fhead = r;
    }
    t->ftail = r;
    t->count++;
    return r;
}

static per_trigger_t *find_pt(hr_trace_t *t, record_t *r, const char *trigger, int replay)
{
    const char *name = intern(t, trigger);
    for (size_t i = 0; i < r->n_pt; i++) {
        if (r->pt[i].trigger == name && r->pt[i].replay == (replay != 0)) {
            return &r->pt[i];
        }
    }
    r->pt = hr_xrealloc(r->pt, (r->n_pt + 1) * sizeof *r->pt);
    per_trigger_t *p = &r->pt[r->n_pt++];
    memset(p, 0, sizeof *p);
    p->trigger = name;
    p->replay = (uint8_t)(replay != 0);
    return p;
}

void hr_trace_matched(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger, int replay)
{
    pthread_mutex_lock(&t->mu);
    per_trigger_t *p = find_pt(t, find(t, bus, seq, 1), trigger, replay);
    p->outcome = HR_TRACE_PENDING;
    pthread_mutex_unlock(&t->mu);
}

void hr_trace_attempt(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger, int replay,
                      uint64_t time_ns, int status, uint64_t latency_us, const char *error)
{
    pthread_mutex_lock(&t->mu);
    per_trigger_t *p = find_pt(t, find(t, bus, seq, 1), trigger, replay);
    size_t i = p->n_att < HR_TRACE_MAX_ATTEMPTS ? p->n_att++ : HR_TRACE_MAX_ATTEMPTS - 1;
    p->att[i].time_ns = time_ns;
    p->att[i].status = (int16_t)status;
    p->att[i].latency_us = latency_us > UINT32_MAX ? UINT32_MAX : (uint32_t)latency_us;
    p->att[i].error = intern(t, error);
    p->total_att++;
    pthread_mutex_unlock(&t->mu);
}

void hr_trace_outcome(hr_trace_t *t, const char *bus, uint64_t seq, const char *trigger, int replay,
                      hr_trace_outcome_t outcome, const char *note)
{
    pthread_mutex_lock(&t->mu);
    per_trigger_t *p = find_pt(t, find(t, bus, seq, 1), trigger, replay);
    p->outcome = (uint8_t)outcome;
    p->note = intern(t, note);
    pthread_mutex_unlock(&t->mu);
}

static const char *const outcome_names[] = {"pending", "delivered", "dead_lettered", "dropped"};

int hr_trace_json(hr_trace_t *t, const char *bus, uint64_t seq, hr_buf_t *out)
{
    pthread_mutex_lock(&t->mu);
    record_t *r = find(t, bus, seq, 0);
    if (r == NULL) {
        pthread_mutex_unlock(&t->mu);
        return HR_ENOTFOUND;
    }
    hr_buf_puts(out, "{\"bus\":");
    hr_buf_json_str(out, bus, strlen(bus));
    hr_buf_printf(out, ",\"seq\":%llu,\"triggers\":[", (unsigned long long)seq);
    for (size_t i = 0; i < r->n_pt; i++) {
        per_trigger_t *p = &r->pt[i];
        hr_buf_puts(out, i ? ",{\"trigger\":" : "{\"trigger\":");
        hr_buf_json_str(out, p->trigger, strlen(p->trigger));
        hr_buf_printf(out, ",\"replay\":%s,\"outcome\":\"%s\",\"attempts_total\":%u",
                      p->replay ? "true" : "false", outcome_names[p->outcome], p->total_att);
        if (p->note) {
            hr_buf_puts(out, ",\"note\":");
            hr_buf_json_str(out, p->note, strlen(p->note));
        }
        hr_buf_puts(out, ",\"attempts\":[");
        for (size_t k = 0; k < p->n_att; k++) {
            char ts[HR_RFC3339_MAX];
            hr_rfc3339_format(p->att[k].time_ns, ts, sizeof ts);
            hr_buf_printf(out, "%s{\"time\":\"%s\",\"status\":%d,\"latency_ms\":%.3f", k ? "," : "",
                          ts, p->att[k].status, p->att[k].latency_us / 1000.0);
            if (p->att[k].error) {
                hr_buf_puts(out, ",\"error\":");
                hr_buf_json_str(out, p->att[k].error, strlen(p->att[k].error));
            }
            hr_buf_putc(out, '}');
        }
        hr_buf_puts(out, "]}");
    }
    hr_buf_puts(out, "]}");
    pthread_mutex_unlock(&t->mu);
    return 0;
}
