/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark of trigger filtering, on one thread, everything in one run (bench/README.md,
 * "Matcher micro-benchmark"; run it with bench/matcher.sh):
 *
 *   [1] hr_matcher_match: events/s with 10, 1,000 and 100,000 exact-type triggers, and with
 *       1,000 mixed triggers (exact, prefix, CESQL, pattern); each event matches one trigger,
 *       or none. Target (issue): rate(100,000) >= 0.5 x rate(10).
 *   [2] CESQL: ns per event of hr_filter_match on {"cesql": ...} next to the equivalent
 *       exact/prefix/any filter.
 *   [3] Patterns: a 1 KiB JSON event and event-ruler's 250 KiB bigEvent.json, matched three
 *       ways: parse + match, pre-parsed data, and jansson's parse alone for reference.
 *
 * Every measurement runs a case for at least BENCH_MIN_SECONDS (0.2 s) of CLOCK_MONOTONIC
 * time; all cases run once per round, BENCH_ROUNDS (5) rounds, so the cases of one round are
 * side by side. Tables show the median over rounds; ratios are the median of per-round ratios.
 *
 * Usage: matcher_bench [EVENT_RULER_DATA_DIR]   (the directory holding bigEvent.json)
 * Exit status 0 whatever the figures; 1 when a case could not be set up or returned a wrong
 * answer; 2 when the event-ruler fixtures were not found (the bigEvent rows are skipped).
 *
 * BENCH_CALLGRIND=1 (set by matcher.sh under valgrind): no timing; each case runs a fixed
 * number of operations between CALLGRIND_ZERO_STATS and CALLGRIND_DUMP_STATS_AT(case name), so
 * the script can print instructions per operation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ce/event.h"
#include "filter/cesql.h"
#include "filter/filter.h"
#include "filter/matcher.h"
#include "filter/pattern.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(s) ((void)(s))
#endif

#define MAX_ROUNDS 50
#define MAX_CASES 64
#define TYPE_STREAM (1u << 16) /* type strings per exact-type stream */
#define MIX_EVENTS 1024u       /* decoded events in a mixed stream */

/* ---------------------------------------------------------------- helpers */

static volatile size_t g_sink; /* keeps results alive */
static int g_failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "matcher_bench: %s\n", what);
    exit(1);
}

static void fail(const char *fmt, const char *a)
{
    fprintf(stderr, "matcher_bench: WRONG: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    g_failed = 1;
}

/* Deterministic PRNG (splitmix64), so every run draws the same streams. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static hr_filter_t *compile_filters(const char *json_text)
{
    json_error_t jerr;
    json_t *doc = json_loads(json_text, 0, &jerr);
    if (doc == NULL) {
        fprintf(stderr, "matcher_bench: bad JSON in the bench itself: %s: %s\n", jerr.text,
                json_text);
        exit(1);
    }
    hr_filter_t *f;
    hr_filter_error_t err;
    if (hr_filter_compile(doc, &f, &err) != 0) {
        fprintf(stderr, "matcher_bench: filter rejected: %s: %s (%s)\n", json_text, err.msg,
                err.path);
        exit(1);
    }
    json_decref(doc);
    return f;
}

/* A structured event; myint < -1000 means "no myint extension"; data_json may be NULL. */
static hr_ce_event_t *make_event(const char *type, const char *source, const char *subject,
                                 long myint, const char *data_json)
{
    size_t cap = 512 + (data_json ? strlen(data_json) : 0);
    char *body = malloc(cap);
    char ext[64] = "";
    if (body == NULL) {
        die("out of memory");
    }
    if (myint >= -1000) {
        snprintf(ext, sizeof ext, ",\"myint\":%ld", myint);
    }
    int n = snprintf(body, cap,
                     "{\"specversion\":\"1.0\",\"id\":\"bench-1\",\"source\":\"%s\",\"type\":\"%s\","
                     "\"subject\":\"%s\",\"time\":\"2024-05-01T12:00:00Z\"%s%s%s%s}",
                     source, type, subject, ext, data_json ? ",\"datacontenttype\":"
                                                             "\"application/json\",\"data\":"
                                                           : "",
                     data_json ? data_json : "", "");
    if (n < 0 || (size_t)n >= cap) {
        die("event too long");
    }
    hr_ce_event_t *ev;
    hr_ce_error_t err;
    if (hr_ce_from_structured((const uint8_t *)body, (size_t)n, &ev, &err) != 0) {
        fprintf(stderr, "matcher_bench: event rejected: %s: %s\n", err.field, err.msg);
        exit(1);
    }
    free(body);
    return ev;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    if (buf == NULL) {
        die("out of memory");
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* 1234567 -> "1,234,567" (one of 8 rotating static buffers). */
static const char *commas(double v)
{
    static char bufs[8][32];
    static int k;
    char *out = bufs[k++ & 7];
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len; i++) {
        out[o++] = tmp[i];
        if (tmp[i] != '-' && (len - i - 1) % 3 == 0 && i + 1 < len) {
            out[o++] = ',';
        }
    }
    out[o] = '\0';
    return out;
}

/* A ratio as "0.52x", with a third decimal below 0.1 (one of 8 rotating static buffers). */
static const char *ratio(double v)
{
    static char bufs[8][32];
    static int k;
    char *out = bufs[k++ & 7];
    snprintf(out, 32, v < 0.1 ? "%.3fx" : "%.2fx", v);
    return out;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double t[MAX_ROUNDS];
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* ---------------------------------------------------------------- cases */

/* One case: run(ctx, start, n) performs operations start .. start+n-1 of its stream. */
typedef struct bcase {
    const char *name; /* unique; also the callgrind dump name */
    void (*run)(void *ctx, size_t start, size_t n);
    void *ctx;
    size_t cg_ops; /* operations per callgrind dump */
    double ns[MAX_ROUNDS];
} bcase_t;

static bcase_t g_cases[MAX_CASES];
static int g_ncases;

static bcase_t *add_case(const char *name, void (*run)(void *, size_t, size_t), void *ctx,
                         size_t cg_ops)
{
    if (g_ncases == MAX_CASES) {
        die("too many cases");
    }
    bcase_t *c = &g_cases[g_ncases++];
    c->name = name;
    c->run = run;
    c->ctx = ctx;
    c->cg_ops = cg_ops;
    return c;
}

static double measure(const bcase_t *c, double min_s)
{
    size_t chunk = 1, done = 0;
    double t0 = now_s(), t;
    for (;;) {
        c->run(c->ctx, done, chunk);
        done += chunk;
        t = now_s() - t0;
        if (t >= min_s) {
            break;
        }
        if (t < min_s / 16) {
            chunk *= 2;
        }
    }
    return t / (double)done * 1e9;
}

static double med_ns(const bcase_t *c, int rounds)
{
    return median(c->ns, rounds);
}

/* Median over rounds of a->ns / b->ns, i.e. rate(b)/rate(a) ... expressed as rate(a)/rate(b). */
static double med_rate_ratio(const bcase_t *a, const bcase_t *b, int rounds)
{
    double r[MAX_ROUNDS];
    for (int i = 0; i < rounds; i++) {
        r[i] = b->ns[i] / a->ns[i];
    }
    return median(r, rounds);
}

/* Median over rounds of time(a)/time(b). */
static double med_time_ratio(const bcase_t *a, const bcase_t *b, int rounds)
{
    double r[MAX_ROUNDS];
    for (int i = 0; i < rounds; i++) {
        r[i] = a->ns[i] / b->ns[i];
    }
    return median(r, rounds);
}

/* ---------------------------------------------------------------- [1] matcher */

static void on_match(void *arg, void *key)
{
    (void)key;
    (*(size_t *)arg)++;
}

/* Exact-type sets: one decoded event whose `type` is pointed, per match, at the next string of
 * a pre-generated stream (contiguous pool). The event stays hot in cache, as a freshly decoded
 * event does in the dispatcher, while the index sees TYPE_STREAM different lookups. */
typedef struct exact_ctx {
    hr_matcher_t *m;
    hr_ce_event_t *ev;
    char **types; /* TYPE_STREAM entries */
    size_t n_triggers, n_residual;
    double matches_per_event;
} exact_ctx_t;

static void run_exact(void *vctx, size_t start, size_t n)
{
    exact_ctx_t *x = vctx;
    char *saved = x->ev->type;
    size_t hits = 0;
    for (size_t i = start; i < start + n; i++) {
        x->ev->type = x->types[i & (TYPE_STREAM - 1)];
        hr_matcher_match(x->m, x->ev, on_match, &hits);
    }
    x->ev->type = saved;
    g_sink += hits;
}

/* TYPE_STREAM type strings fmt % K, K uniform in [0, range) times `stride`. */
static char **type_stream(const char *fmt, size_t range, size_t stride)
{
    char **v = malloc(TYPE_STREAM * sizeof *v);
    char *pool = malloc(TYPE_STREAM * 32);
    if (v == NULL || pool == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < TYPE_STREAM; i++) {
        v[i] = pool + i * 32;
        snprintf(v[i], 32, fmt, (unsigned)(rnd() % range * stride));
    }
    return v;
}

static double count_matches(void (*run)(void *, size_t, size_t), void *ctx, size_t n)
{
    size_t before = g_sink;
    run(ctx, 0, n);
    return (double)(g_sink - before) / (double)n;
}

static hr_matcher_t *exact_matcher(size_t n, hr_filter_t ***filters_out)
{
    hr_matcher_t *m = hr_matcher_create();
    hr_filter_t **fs = malloc(n * sizeof *fs);
    if (m == NULL || fs == NULL) {
        die("out of memory");
    }
    for (size_t k = 0; k < n; k++) {
        char text[96];
        snprintf(text, sizeof text, "[{\"exact\":{\"type\":\"com.example.t%zu\"}}]", k);
        fs[k] = compile_filters(text);
        hr_matcher_add(m, (void *)(uintptr_t)(k + 1), fs[k]);
    }
    *filters_out = fs;
    return m;
}

/* Mixed set of 1,000 triggers; each generator also knows how to make an event that matches
 * exactly it. Events: MIX_EVENTS decoded events cycled through. */
typedef struct mix_ctx {
    hr_matcher_t *m;
    hr_ce_event_t **evs;
    size_t n_triggers, n_residual;
    double matches_per_event;
} mix_ctx_t;

static void run_mix(void *vctx, size_t start, size_t n)
{
    mix_ctx_t *x = vctx;
    size_t hits = 0;
    for (size_t i = start; i < start + n; i++) {
        hr_matcher_match(x->m, x->evs[i & (MIX_EVENTS - 1)], on_match, &hits);
    }
    g_sink += hits;
}

#define MIX_N 1000
#define DEF_SOURCE "urn:bench:src"
#define DEF_SUBJECT "na/orders/1"
#define DEF_DATA "{\"region\":\"na\",\"amount\":5,\"status\":\"new\",\"id\":\"o-1\"}"
#define HIT_DATA "{\"region\":\"eu\",\"amount\":12,\"status\":\"paid\",\"id\":\"o-2\"}"

/* Trigger k of the mix (k < MIX_N): its filter text into `f`, and a matching event's
 * attributes. The shares: 40% exact type, 20% prefix (type, subject), 20% CESQL, 20% pattern. */
static void mix_trigger(size_t k, char *f, size_t fsz, char *type, char *source, char *subject,
                        long *myint, const char **data)
{
    size_t j;
    snprintf(type, 64, "com.example.other");
    snprintf(source, 64, DEF_SOURCE);
    snprintf(subject, 64, DEF_SUBJECT);
    *myint = -1;
    *data = DEF_DATA;
    if (k < 400) { /* exact type: indexed by type */
        snprintf(f, fsz, "[{\"exact\":{\"type\":\"com.example.t%zu\"}}]", k);
        snprintf(type, 64, "com.example.t%zu", k);
    } else if (k < 500) { /* prefix on type: residual */
        j = k - 400;
        snprintf(f, fsz, "[{\"prefix\":{\"type\":\"com.example.p%zu.\"}}]", j);
        snprintf(type, 64, "com.example.p%zu.created", j);
    } else if (k < 600) { /* prefix on subject: residual */
        j = k - 500;
        snprintf(f, fsz, "[{\"prefix\":{\"subject\":\"s%zu/\"}}]", j);
        snprintf(subject, 64, "s%zu/item", j);
    } else if (k < 650) { /* CESQL with an exact type: indexed by type */
        j = k - 600;
        snprintf(f, fsz,
                 "[{\"cesql\":\"type = 'com.example.c%zu' AND subject LIKE 'eu/%%'\"}]", j);
        snprintf(type, 64, "com.example.c%zu", j);
        snprintf(subject, 64, "eu/orders/7");
    } else if (k < 700) { /* CESQL integer range: residual */
        j = k - 650;
        snprintf(f, fsz, "[{\"cesql\":\"myint > %zu AND myint <= %zu\"}]", 100000 + 1000 * j,
                 100000 + 1000 * (j + 1));
        *myint = (long)(100000 + 1000 * j + 500);
    } else if (k < 750) { /* CESQL with an exact source: indexed by source */
        j = k - 700;
        snprintf(f, fsz, "[{\"cesql\":\"source = 'urn:c:%zu' AND myint > 10\"}]", j);
        snprintf(source, 64, "urn:c:%zu", j);
        *myint = 42;
    } else if (k < 800) { /* CESQL with IN and LIKE: residual */
        j = k - 750;
        snprintf(f, fsz,
                 "[{\"cesql\":\"subject LIKE 'eu/%%' AND type IN ('com.example.i%zua', "
                 "'com.example.i%zub')\"}]",
                 j, j);
        snprintf(type, 64, "com.example.i%zub", j);
        snprintf(subject, 64, "eu/orders/9");
    } else if (k < 900) { /* pattern with a type and data fields: indexed by type */
        j = k - 800;
        snprintf(f, fsz,
                 "[{\"pattern\":{\"type\":[\"com.example.q%zu\"],\"data\":{\"region\":[\"eu\"],"
                 "\"amount\":[{\"numeric\":[\">\",10]}]}}}]",
                 j);
        snprintf(type, 64, "com.example.q%zu", j);
        *data = HIT_DATA;
    } else { /* pattern with a source prefix and a data field: residual */
        j = k - 900;
        snprintf(f, fsz,
                 "[{\"pattern\":{\"source\":[{\"prefix\":\"urn:pat:%zu/\"}],"
                 "\"data\":{\"status\":[\"paid\"]}}}]",
                 j);
        snprintf(source, 64, "urn:pat:%zu/shop", j);
        *data = HIT_DATA;
    }
}

static mix_ctx_t *mix_build(hr_matcher_t *m, size_t n_residual, int none)
{
    mix_ctx_t *x = calloc(1, sizeof *x);
    x->evs = malloc(MIX_EVENTS * sizeof *x->evs);
    if (x == NULL || x->evs == NULL) {
        die("out of memory");
    }
    x->m = m;
    x->n_triggers = MIX_N;
    x->n_residual = n_residual;
    char f[512], type[64], source[64], subject[64];
    long myint;
    const char *data;
    for (size_t i = 0; i < MIX_EVENTS; i++) {
        mix_trigger(rnd() % MIX_N, f, sizeof f, type, source, subject, &myint, &data);
        if (none) { /* the default attributes with an unknown type: matches nothing */
            snprintf(type, sizeof type, "com.example.u%u", (unsigned)(rnd() % 100000));
            snprintf(source, sizeof source, DEF_SOURCE);
            snprintf(subject, sizeof subject, DEF_SUBJECT);
            myint = -1;
            data = DEF_DATA;
        }
        x->evs[i] = make_event(type, source, subject, myint, data);
    }
    return x;
}

/* ---------------------------------------------------------------- [2] CESQL */

typedef struct filt_ctx {
    const hr_filter_t *f;
    hr_ce_event_t *evs[2]; /* alternated: the first matches, the second does not */
} filt_ctx_t;

static void run_filter(void *vctx, size_t start, size_t n)
{
    filt_ctx_t *x = vctx;
    size_t hits = 0;
    for (size_t i = start; i < start + n; i++) {
        hits += hr_filter_match(x->f, x->evs[i & 1]);
    }
    g_sink += hits;
}

typedef struct cesql_row {
    const char *expr;
    const char *equiv; /* filters JSON, or NULL */
    bcase_t *c_sql, *c_eq;
} cesql_row_t;

static cesql_row_t g_cesql[] = {
    {"type = 'com.example.t1'", "[{\"exact\":{\"type\":\"com.example.t1\"}}]", NULL, NULL},
    {"subject LIKE 'eu/%'", "[{\"prefix\":{\"subject\":\"eu/\"}}]", NULL, NULL},
    {"type = 'com.example.t1' AND subject LIKE 'eu/%'",
     "[{\"exact\":{\"type\":\"com.example.t1\"}},{\"prefix\":{\"subject\":\"eu/\"}}]", NULL, NULL},
    {"source IN ('urn:a', 'urn:b', 'urn:c')",
     "[{\"any\":[{\"exact\":{\"source\":\"urn:a\"}},{\"exact\":{\"source\":\"urn:b\"}},"
     "{\"exact\":{\"source\":\"urn:c\"}}]}]",
     NULL, NULL},
    {"myint > 10", NULL, NULL, NULL},
    {"LOWER(subject) LIKE 'eu/%' AND myint > 10", NULL, NULL, NULL},
};
#define N_CESQL (sizeof g_cesql / sizeof g_cesql[0])

/* ---------------------------------------------------------------- [3] patterns */

typedef struct pat_ctx {
    const hr_pattern_t *p;     /* for the CloudEvent: {"type"?, "data": rule} */
    const hr_pattern_t *p_doc; /* the bare rule, for hr_pattern_match_json (may be NULL) */
    hr_ce_event_t *ev;
    json_t *doc; /* ev's data, parsed once */
} pat_ctx_t;

static void run_pat_parse_match(void *vctx, size_t start, size_t n)
{
    pat_ctx_t *x = vctx;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        hits += hr_pattern_match(x->p, x->ev);
    }
    g_sink += hits + start;
}

static void run_pat_preparsed(void *vctx, size_t start, size_t n)
{
    pat_ctx_t *x = vctx;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        hits += hr_pattern_match_data(x->p, x->ev, x->doc);
    }
    g_sink += hits + start;
}

static void run_pat_json(void *vctx, size_t start, size_t n)
{
    pat_ctx_t *x = vctx;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        hits += hr_pattern_match_json(x->p_doc, x->doc);
    }
    g_sink += hits + start;
}

static void run_jansson_parse(void *vctx, size_t start, size_t n)
{
    pat_ctx_t *x = vctx;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        /* The flags hr_pattern_match uses (pattern.c). */
        json_t *d = json_loadb((const char *)x->ev->data, x->ev->data_len,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        ok += d != NULL;
        json_decref(d);
    }
    g_sink += ok + start;
}

typedef struct pat_row {
    const char *label;
    size_t bytes;
    pat_ctx_t *x;
    bcase_t *c_pm, *c_pre, *c_json, *c_parse;
} pat_row_t;

/* A ~1 KiB order with nested objects and an array of items. */
static char *order_json(void)
{
    char *s = malloc(2048);
    if (s == NULL) {
        die("out of memory");
    }
    int n = snprintf(s, 2048,
                     "{\"orderId\":\"ord-2024-000123\",\"status\":\"paid\",\"currency\":\"EUR\","
                     "\"total\":249.9,\"createdAt\":\"2024-05-01T12:00:00Z\","
                     "\"customer\":{\"id\":\"c-998877\",\"name\":\"Erika Mustermann\","
                     "\"email\":\"erika@example.org\",\"tier\":\"gold\","
                     "\"address\":{\"street\":\"Hauptstrasse 1\",\"city\":\"Berlin\","
                     "\"zip\":\"10115\",\"country\":\"DE\"}},"
                     "\"items\":[");
    for (int i = 0; i < 6; i++) {
        n += snprintf(s + n, 2048 - (size_t)n,
                      "%s{\"sku\":\"%s-%04d\",\"name\":\"Item number %d\",\"qty\":%d,"
                      "\"price\":%d.5,\"tags\":[\"t%d\",\"sale\"]}",
                      i ? "," : "", i == 4 ? "AB" : "ZZ", 100 + i, i, 1 + i % 3, 10 + 7 * i, i);
    }
    n += snprintf(s + n, 2048 - (size_t)n,
                  "],\"shipping\":{\"method\":\"express\",\"carrier\":\"DHL\",\"cost\":4.9},"
                  "\"notes\":\"");
    while (n < 1024 - 3) {
        s[n++] = 'x';
    }
    s[n++] = '"';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

static pat_row_t *pattern_row(const char *label, const char *data_text, size_t data_len,
                              json_t *rule, json_t *wrapped)
{
    pat_row_t *r = calloc(1, sizeof *r);
    pat_ctx_t *x = calloc(1, sizeof *x);
    if (r == NULL || x == NULL) {
        die("out of memory");
    }
    char err[256], path[128];
    hr_pattern_t *p, *pd = NULL;
    if (hr_pattern_compile(wrapped, &p, err, sizeof err, path, sizeof path) != 0) {
        fprintf(stderr, "matcher_bench: pattern rejected at %s: %s\n", path, err);
        exit(1);
    }
    if (rule && hr_pattern_compile(rule, &pd, err, sizeof err, path, sizeof path) != 0) {
        fprintf(stderr, "matcher_bench: pattern rejected at %s: %s\n", path, err);
        exit(1);
    }
    /* The event: structured mode, data is the document's exact text. */
    const char *type = "com.example.order";
    size_t cap = data_len + 512;
    char *body = malloc(cap);
    if (body == NULL) {
        die("out of memory");
    }
    int n = snprintf(body, cap,
                     "{\"specversion\":\"1.0\",\"id\":\"p-1\",\"source\":\"urn:shop\","
                     "\"type\":\"%s\",\"datacontenttype\":\"application/json\",\"data\":",
                     type);
    memcpy(body + n, data_text, data_len);
    n += (int)data_len;
    body[n++] = '}';
    hr_ce_error_t cerr;
    if (hr_ce_from_structured((const uint8_t *)body, (size_t)n, &x->ev, &cerr) != 0) {
        fprintf(stderr, "matcher_bench: %s event rejected: %s: %s\n", label, cerr.field, cerr.msg);
        exit(1);
    }
    free(body);
    x->doc = json_loadb(data_text, data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (x->doc == NULL) {
        die("pattern document does not parse");
    }
    x->p = p;
    x->p_doc = pd;
    if (!hr_pattern_match(p, x->ev) || !hr_pattern_match_data(p, x->ev, x->doc) ||
        (pd && !hr_pattern_match_json(pd, x->doc))) {
        fail("pattern does not match its event (%s)", label);
    }
    r->label = label;
    r->bytes = data_len;
    r->x = x;
    return r;
}

/* ---------------------------------------------------------------- main */

static int env_int(const char *name, int def, int lo, int hi)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0') {
        return def;
    }
    long v = strtol(s, NULL, 10);
    return v < lo ? lo : v > hi ? hi : (int)v;
}

static double loadavg1(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) {
            l = -1;
        }
        fclose(f);
    }
    return l;
}

int main(int argc, char **argv)
{
    const char *er_dir = argc > 1 ? argv[1] : NULL;
    int rounds = env_int("BENCH_ROUNDS", 5, 1, MAX_ROUNDS);
    const char *ms = getenv("BENCH_MIN_SECONDS");
    double min_s = ms && *ms ? strtod(ms, NULL) : 0.2;
    int callgrind = env_int("BENCH_CALLGRIND", 0, 0, 1);
    if (min_s <= 0) {
        min_s = 0.2;
    }
    double t_setup = now_s();

    /* [1] exact-type sets */
    static const size_t sizes[] = {10, 1000, 100000};
    exact_ctx_t ex[3], ex_none[3];
    bcase_t *c_ex[3], *c_ex_none[3];
    static char names[3][2][48];
    for (int i = 0; i < 3; i++) {
        hr_filter_t **fs;
        hr_matcher_t *m = exact_matcher(sizes[i], &fs);
        hr_ce_event_t *ev = make_event("com.example.t0", DEF_SOURCE, DEF_SUBJECT, -1, DEF_DATA);
        hr_ce_event_t *ev2 = make_event("com.example.t0", DEF_SOURCE, DEF_SUBJECT, -1, DEF_DATA);
        ex[i] = (exact_ctx_t){m, ev, type_stream("com.example.t%u", sizes[i], 1), sizes[i],
                              hr_matcher_residual(m), 0};
        ex_none[i] = (exact_ctx_t){m, ev2, type_stream("com.example.u%u", 100000, 1), sizes[i],
                                   hr_matcher_residual(m), 0};
        snprintf(names[i][0], 48, "exact_%zu_match", sizes[i]);
        snprintf(names[i][1], 48, "exact_%zu_none", sizes[i]);
        c_ex[i] = add_case(names[i][0], run_exact, &ex[i], 20000);
        c_ex_none[i] = add_case(names[i][1], run_exact, &ex_none[i], 20000);
        ex[i].matches_per_event = count_matches(run_exact, &ex[i], TYPE_STREAM);
        ex_none[i].matches_per_event = count_matches(run_exact, &ex_none[i], TYPE_STREAM);
        if (ex[i].matches_per_event != 1.0 || ex_none[i].matches_per_event != 0.0) {
            fail("exact-type stream does not match exactly one trigger per event (%s)",
                 names[i][0]);
        }
    }

    /* [1] information: 100,000 triggers, but events only of 1,000 of their types (every 100th
     * trigger), i.e. a working set that stays in cache, as with a skewed type distribution. */
    exact_ctx_t ex_hot = {ex[2].m,
                          make_event("com.example.t0", DEF_SOURCE, DEF_SUBJECT, -1, DEF_DATA),
                          type_stream("com.example.t%u", 1000, 100), sizes[2],
                          hr_matcher_residual(ex[2].m), 0};
    bcase_t *c_ex_hot = add_case("exact_100000_hot1000", run_exact, &ex_hot, 20000);
    ex_hot.matches_per_event = count_matches(run_exact, &ex_hot, TYPE_STREAM);
    if (ex_hot.matches_per_event != 1.0) {
        fail("exact-type stream does not match exactly one trigger per event (%s)", c_ex_hot->name);
    }

    /* [1] mixed set */
    hr_matcher_t *mm = hr_matcher_create();
    size_t mix_kind[4] = {0, 0, 0, 0}; /* exact, prefix, cesql, pattern */
    for (size_t k = 0; k < MIX_N; k++) {
        char f[512], type[64], source[64], subject[64];
        long myint;
        const char *data;
        mix_trigger(k, f, sizeof f, type, source, subject, &myint, &data);
        hr_matcher_add(mm, (void *)(uintptr_t)(k + 1), compile_filters(f));
        mix_kind[k < 400 ? 0 : k < 600 ? 1 : k < 800 ? 2 : 3]++;
    }
    mix_ctx_t *mx = mix_build(mm, hr_matcher_residual(mm), 0);
    mix_ctx_t *mx_none = mix_build(mm, hr_matcher_residual(mm), 1);
    bcase_t *c_mix = add_case("mix_1000_match", run_mix, mx, 5000);
    bcase_t *c_mix_none = add_case("mix_1000_none", run_mix, mx_none, 5000);
    /* each mixed event must match exactly its trigger */
    for (size_t i = 0; i < MIX_EVENTS; i++) {
        size_t h = 0;
        if (hr_matcher_match(mm, mx->evs[i], on_match, &h) != 1 ||
            hr_matcher_match(mm, mx_none->evs[i], on_match, &h) != 0) {
            fail("a mixed event does not match exactly one trigger (%s)", mx->evs[i]->type);
            break;
        }
    }
    mx->matches_per_event = count_matches(run_mix, mx, MIX_EVENTS);
    mx_none->matches_per_event = count_matches(run_mix, mx_none, MIX_EVENTS);

    /* [2] CESQL vs equivalent filters */
    hr_ce_event_t *ev_yes = make_event("com.example.t1", "urn:a", "eu/orders/1", 42, DEF_DATA);
    hr_ce_event_t *ev_no = make_event("com.example.t2", "urn:z", "na/orders/2", 5, DEF_DATA);
    static char cnames[N_CESQL][2][32];
    for (size_t i = 0; i < N_CESQL; i++) {
        cesql_row_t *r = &g_cesql[i];
        json_t *doc = json_pack("[{s:s}]", "cesql", r->expr);
        hr_filter_t *f;
        hr_filter_error_t err;
        if (doc == NULL || hr_filter_compile(doc, &f, &err) != 0) {
            fprintf(stderr, "matcher_bench: CESQL rejected: %s: %s\n", r->expr, err.msg);
            exit(1);
        }
        json_decref(doc);
        filt_ctx_t *x = calloc(1, sizeof *x);
        *x = (filt_ctx_t){f, {ev_yes, ev_no}};
        if (!hr_filter_match(f, ev_yes) || hr_filter_match(f, ev_no)) {
            fail("CESQL row gives the wrong answer: %s", r->expr);
        }
        snprintf(cnames[i][0], 32, "cesql_%zu", i + 1);
        r->c_sql = add_case(cnames[i][0], run_filter, x, 20000);
        if (r->equiv) {
            filt_ctx_t *y = calloc(1, sizeof *y);
            *y = (filt_ctx_t){compile_filters(r->equiv), {ev_yes, ev_no}};
            if (!hr_filter_match(y->f, ev_yes) || hr_filter_match(y->f, ev_no)) {
                fail("filter row gives the wrong answer: %s", r->equiv);
            }
            snprintf(cnames[i][1], 32, "filter_%zu", i + 1);
            r->c_eq = add_case(cnames[i][1], run_filter, y, 20000);
        }
    }

    /* [3] patterns */
    pat_row_t *prow[2] = {NULL, NULL};
    int n_prow = 0, skipped_big = 0;
    {
        char *order = order_json();
        json_t *rule = json_loads("{\"customer\":{\"address\":{\"country\":[\"DE\",\"AT\"]}},"
                                  "\"items\":{\"sku\":[{\"prefix\":\"AB-\"}]},"
                                  "\"total\":[{\"numeric\":[\">\",100]}],"
                                  "\"status\":[{\"anything-but\":[\"cancelled\"]}]}",
                                  0, NULL);
        json_t *wrapped = json_pack("{s:[s],s:O}", "type", "com.example.order", "data", rule);
        if (rule == NULL || wrapped == NULL) {
            die("bad 1 KiB rule");
        }
        prow[n_prow++] = pattern_row("1 KiB order", order, strlen(order), rule, wrapped);
        json_decref(rule);
        json_decref(wrapped);
    }
    char big_path[4096], rule_path[4096];
    size_t big_len = 0, rule_len = 0;
    char *big = NULL, *rule_text = NULL;
    if (er_dir) {
        snprintf(big_path, sizeof big_path, "%s/bigEvent.json", er_dir);
        snprintf(rule_path, sizeof rule_path, "%s/bigEventRule.json", er_dir);
        big = read_file(big_path, &big_len);
        rule_text = read_file(rule_path, &rule_len);
    }
    if (big && rule_text) {
        json_t *rule = json_loadb(rule_text, rule_len, 0, NULL);
        json_t *wrapped = rule ? json_pack("{s:O}", "data", rule) : NULL;
        if (wrapped == NULL) {
            die("bigEventRule.json does not parse");
        }
        prow[n_prow++] = pattern_row("bigEvent.json", big, big_len, rule, wrapped);
        json_decref(rule);
        json_decref(wrapped);
    } else {
        skipped_big = 1;
    }
    static char pnames[2][4][32];
    for (int i = 0; i < n_prow; i++) {
        size_t cg = prow[i]->bytes > 100000 ? 20 : 2000;
        snprintf(pnames[i][0], 32, "pattern%d_parse_match", i + 1);
        snprintf(pnames[i][1], 32, "pattern%d_preparsed", i + 1);
        snprintf(pnames[i][2], 32, "pattern%d_json", i + 1);
        snprintf(pnames[i][3], 32, "pattern%d_jansson_parse", i + 1);
        prow[i]->c_pm = add_case(pnames[i][0], run_pat_parse_match, prow[i]->x, cg);
        prow[i]->c_pre = add_case(pnames[i][1], run_pat_preparsed, prow[i]->x, cg);
        prow[i]->c_json = add_case(pnames[i][2], run_pat_json, prow[i]->x, cg);
        prow[i]->c_parse = add_case(pnames[i][3], run_jansson_parse, prow[i]->x, cg);
    }
    t_setup = now_s() - t_setup;

    if (g_failed) {
        fprintf(stderr, "matcher_bench: a case gives wrong answers; not timing it\n");
        return 1;
    }

    if (callgrind) {
        /* Instruction counts: a fixed number of operations per case, one dump each. */
        for (int i = 0; i < g_ncases; i++) {
            bcase_t *c = &g_cases[i];
            c->run(c->ctx, 0, c->cg_ops); /* warm (first-touch, lazy binding) */
            CALLGRIND_ZERO_STATS;
            c->run(c->ctx, 0, c->cg_ops);
            CALLGRIND_DUMP_STATS_AT(c->name);
            printf("CALLGRIND %s %zu\n", c->name, c->cg_ops);
        }
        return 0;
    }

    double load0 = loadavg1(), t_run = now_s();
    for (int i = 0; i < g_ncases; i++) { /* warm-up */
        measure(&g_cases[i], min_s / 4);
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < g_ncases; i++) {
            g_cases[i].ns[r] = measure(&g_cases[i], min_s);
        }
    }
    t_run = now_s() - t_run;

    /* ---- report */
    printf("matcher_bench: one thread; median of %d round(s), >= %.2f s per measurement; "
           "every case runs once per round (side by side); ratios are medians of per-round "
           "ratios.\n",
           rounds, min_s);
    printf("  setup %.1f s, timing %.1f s; CPUs online %ld; load average %.2f -> %.2f\n",
           t_setup, t_run, sysconf(_SC_NPROCESSORS_ONLN), load0, loadavg1());

    printf("\n[1] matcher: hr_matcher_match over pre-decoded events\n");
    printf("  %-44s %9s %8s %7s %12s %9s  %s\n", "trigger set / events", "triggers", "residual",
           "match/ev", "events/s", "ns/event", "ratio");
    for (int i = 0; i < 3; i++) {
        for (int none = 0; none < 2; none++) {
            exact_ctx_t *x = none ? &ex_none[i] : &ex[i];
            bcase_t *c = none ? c_ex_none[i] : c_ex[i];
            bcase_t *ref = none ? c_ex_none[0] : c_ex[0];
            char label[64];
            snprintf(label, sizeof label, "exact type, %s",
                     none ? "no trigger matches" : "each event matches 1");
            printf("  %-44s %9s %8zu %7.2f %12s %9.1f  ", label, commas((double)x->n_triggers),
                   x->n_residual, x->matches_per_event, commas(1e9 / med_ns(c, rounds)),
                   med_ns(c, rounds));
            if (i == 0) {
                printf("-\n");
            } else {
                printf("%s vs 10 triggers\n", ratio(med_rate_ratio(c, ref, rounds)));
            }
        }
    }
    printf("  %-44s %9s %8zu %7.2f %12s %9.1f  %s vs 10 triggers\n",
           "exact type, matches 1, types of 1,000 only", commas((double)ex_hot.n_triggers),
           ex_hot.n_residual, ex_hot.matches_per_event, commas(1e9 / med_ns(c_ex_hot, rounds)),
           med_ns(c_ex_hot, rounds), ratio(med_rate_ratio(c_ex_hot, c_ex[0], rounds)));
    for (int none = 0; none < 2; none++) {
        mix_ctx_t *x = none ? mx_none : mx;
        bcase_t *c = none ? c_mix_none : c_mix;
        bcase_t *ref = none ? c_ex_none[1] : c_ex[1];
        printf("  %-44s %9s %8zu %7.2f %12s %9.1f  %s vs 1,000 exact\n",
               none ? "mixed, no trigger matches" : "mixed, each event matches 1",
               commas((double)x->n_triggers), x->n_residual, x->matches_per_event,
               commas(1e9 / med_ns(c, rounds)), med_ns(c, rounds),
               ratio(med_rate_ratio(c, ref, rounds)));
    }
    printf("  events: each case cycles through %u type strings drawn uniformly from its "
           "triggers' types (or from unknown types),\n  set one by one into a decoded event; "
           "'types of 1,000 only': events use every 100th trigger's type (a hot working set; "
           "information)\n",
           TYPE_STREAM);
    printf("  mixed set: %zu exact type, %zu prefix (type, subject), %zu CESQL, %zu pattern; "
           "residual = filters every event is checked against\n",
           mix_kind[0], mix_kind[1], mix_kind[2], mix_kind[3]);
    double tgt = med_rate_ratio(c_ex[2], c_ex[0], rounds);
    double tgt_none = med_rate_ratio(c_ex_none[2], c_ex_none[0], rounds);
    printf("  target: rate(100,000 exact-type triggers) / rate(10), events matching 1 trigger  "
           "%s  target >= 0.50x  %s\n",
           ratio(tgt), tgt >= 0.5 ? "met" : "NOT MET");
    printf("  (the same ratio when no trigger matches: %s)\n", ratio(tgt_none));

    printf("\n[2] CESQL: hr_filter_match, ns per event (events alternate: one matches, one "
           "does not)\n");
    printf("  %-48s %8s   %-50s %8s  %s\n", "cesql expression", "ns/ev", "equivalent filter",
           "ns/ev", "cesql/filter");
    for (size_t i = 0; i < N_CESQL; i++) {
        cesql_row_t *r = &g_cesql[i];
        printf("  %-48s %8.1f   ", r->expr, med_ns(r->c_sql, rounds));
        if (r->c_eq) {
            const char *e = r->equiv;
            char shortened[51];
            if (strlen(e) > 50) {
                snprintf(shortened, sizeof shortened, "%.46s ...", e);
                e = shortened;
            }
            printf("%-50s %8.1f  %.2fx\n", e, med_ns(r->c_eq, rounds),
                   med_time_ratio(r->c_sql, r->c_eq, rounds));
        } else {
            printf("%-50s %8s  -\n", "(none)", "-");
        }
    }
    for (size_t i = 0; i < N_CESQL; i++) {
        if (g_cesql[i].equiv && strlen(g_cesql[i].equiv) > 50) {
            printf("  filter %zu: %s\n", i + 1, g_cesql[i].equiv);
        }
    }

    printf("\n[3] patterns: us per match (parse+match = hr_pattern_match on a CloudEvent whose "
           "data is the document)\n");
    printf("  %-14s %9s %12s %11s %11s %13s %14s %14s\n", "document", "bytes", "parse+match",
           "pre-parsed", "match_json", "jansson parse", "parse+m/pre", "parse/parse+m");
    for (int i = 0; i < n_prow; i++) {
        pat_row_t *r = prow[i];
        printf("  %-14s %9s %12.3f %11.3f %11.3f %13.3f %13.1fx %13.2fx\n", r->label,
               commas((double)r->bytes), med_ns(r->c_pm, rounds) / 1e3,
               med_ns(r->c_pre, rounds) / 1e3, med_ns(r->c_json, rounds) / 1e3,
               med_ns(r->c_parse, rounds) / 1e3, med_time_ratio(r->c_pm, r->c_pre, rounds),
               med_time_ratio(r->c_parse, r->c_pm, rounds));
    }
    printf("  pre-parsed = hr_pattern_match_data (data parsed once beforehand); match_json = "
           "hr_pattern_match_json on the bare rule;\n  jansson parse = json_loadb + json_decref "
           "of the same data with hr_pattern_match's flags (reference)\n");
    if (skipped_big) {
        printf("  bigEvent.json: SKIPPED (event-ruler fixtures not found under %s)\n",
               er_dir ? er_dir : "(no directory given)");
    }
    for (int i = 0; i < 3; i++) {
        hr_matcher_destroy(ex[i].m);
    }
    return skipped_big ? 2 : 0;
}
