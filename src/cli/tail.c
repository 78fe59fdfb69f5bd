/* SPDX-License-Identifier: MIT */
/*
 * `herald tail`: prints a bus's events. Without --follow it pages through
 * GET /v1/buses/{bus}/events with `next` until the end (or --limit); with --follow it reads the
 * Server-Sent Events of GET /v1/buses/{bus}/stream until interrupted, and after a dropped
 * connection resumes with Last-Event-ID (the last seq printed), with bounded retries and
 * exponential backoff. Called by hr_cli_main on the main thread; SIGINT/SIGTERM end --follow
 * cleanly (exit 0).
 *
 * --filter CESQL is passed as `?filter=` to both endpoints, and the server answers only the
 * matching events. A filtered page examines a bounded number of events, so it may hold fewer
 * than `limit` events, or none, before the end of the bus: paging then goes on while `next`
 * moves forward, until an empty page reaches past the last seq the bus had when tail started
 * (so that a bus that keeps growing with non-matching events cannot keep it paging forever).
 *
 * Output: one line per event, `<seq>  <ingested>  <type>  <source>  <id>  <data>`, or with
 * --json one envelope {"seq":…,"ingested":…,"event":{…}} per line (JSON Lines). The envelopes
 * are printed from the server's bytes (only line breaks removed), not re-serialised: jansson would
 * turn 1.50 into 1.5 and cannot hold integers beyond 64 bits, and the API promises JSON data
 * byte for byte. jansson still validates every document before the small scanner below reads
 * its raw spans, so the scanner only ever sees valid JSON.
 */
#include "cli/cli.h"
#include "cli/client.h"
#include "filter/cesql.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE_MAX 1000            /* the API's largest `limit` */
#define DATA_SHOWN_CHARS 80      /* data longer than this is cut in human output */
#define IDLE_TIMEOUT_S 45        /* three missed heartbeats (sent every 15 s) */
#define RETRY_MAX 10             /* reconnection attempts in a row before giving up */
#define RETRY_FIRST_MS 200       /* backoff doubles from here ... */
#define RETRY_CAP_MS 5000        /* ... up to here */
#define SSE_LINE_MAX (64u << 20) /* a longer SSE line is a broken stream */

typedef struct tail_opts {
    const char *to_from;
    const char *to_from_time;
    const char *to_limit;
    const char *to_filter;
    bool to_follow;
} tail_opts_t;

#define OPT(name, field, kind, metavar, help)                                                      \
    {                                                                                              \
        name, 0, kind, offsetof(tail_opts_t, field), metavar, help                                 \
    }

static const hr_cli_opt_t tail_opts[] = {
    OPT("from", to_from, HR_CLI_OPT_STR, "SEQ", "start at this seq (default: the first event)"),
    OPT("from-time", to_from_time, HR_CLI_OPT_STR, "RFC3339",
        "start at the first event ingested at or after this time"),
    OPT("limit", to_limit, HR_CLI_OPT_STR, "N", "stop after N events"),
    OPT("filter", to_filter, HR_CLI_OPT_STR, "CESQL",
        "only events for which this CloudEvents SQL expression is true"),
    OPT("follow", to_follow, HR_CLI_OPT_FLAG, NULL,
        "keep printing new events as they arrive, until interrupted"),
    {NULL, 0, 0, 0, NULL, NULL},
};

static const hr_cli_cmd_t tail_cmd = {
    .name = "tail",
    .usage = "[--from SEQ | --from-time RFC3339] [--limit N] [--filter CESQL] [--follow] [--json]",
    .summary =
        "Print the events of the bus, one line each:\n"
        "  <seq>  <ingested>  <type>  <source>  <id>  <data>\n"
        "or, with --json, one JSON envelope per line {\"seq\":…,\"ingested\":…,\"event\":{…}}.\n"
        "With --follow and no --from or --from-time, only events published from now on\n"
        "are printed; after a dropped connection the stream resumes where it stopped.\n"
        "--filter keeps the events for which a CloudEvents SQL expression is true, e.g.\n"
        "  --filter \"type = 'order.created' AND INT(amount) > 100\"\n"
        "(evaluated by the server; try one locally with `herald cesql eval`).",
    .opts = tail_opts,
    .min_args = 0,
    .max_args = 0,
};

/* What one run of the command has done so far. */
typedef struct tail_state {
    hr_cli_ctx_t *ts_ctx;
    char *ts_bus;        /* escaped bus name, owned */
    char *ts_filter;     /* --filter escaped as a query value, or NULL; owned */
    uint64_t ts_limit;   /* 0: no limit */
    uint64_t ts_printed; /* events printed */
    bool ts_have_last;   /* ts_last is the seq of the last event printed */
    uint64_t ts_last;
    hr_buf_t ts_scratch; /* reused for compacting JSON */
} tail_state_t;

/* A run of bytes of a validated JSON document. */
typedef struct span {
    const char *p;
    size_t n;
} span_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Returns a formatted string the caller frees (aborts when out of memory: small strings). */
static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    HR_ASSERT(n >= 0);
    char *s = hr_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- Raw JSON spans (input already validated by jansson) ---- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

/* p is at an opening quote; returns the position after the closing one. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            if (end - p < 2) {
                return end;
            }
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return end;
}

static const char *skip_value(const char *p, const char *end)
{
    p = skip_ws(p, end);
    if (p < end && *p == '"') {
        return skip_string(p, end);
    }
    if (p < end && (*p == '{' || *p == '[')) {
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[') {
                depth++;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                return p + 1;
            }
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && !is_ws(*p)) {
        p++;
    }
    return p;
}

/* Finds the value of member `key` of the object `obj`. */
static bool json_member(span_t obj, const char *key, span_t *out)
{
    const char *end = obj.p + obj.n;
    const char *p = skip_ws(obj.p, end);
    if (p >= end || *p != '{') {
        return false;
    }
    p++;
    size_t klen = strlen(key);
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"') {
            return false;
        }
        const char *k = p + 1;
        p = skip_string(p, end);
        size_t n = (size_t)(p - k) - 1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return false;
        }
        const char *v = skip_ws(p + 1, end);
        p = skip_value(v, end);
        if (n == klen && memcmp(k, key, klen) == 0) {
            *out = (span_t){v, (size_t)(p - v)};
            return true;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return false;
        }
        p++;
    }
}

/* Iterates the elements of the array `arr`; *cursor starts NULL. */
static bool json_next(span_t arr, const char **cursor, span_t *elem)
{
    const char *end = arr.p + arr.n;
    const char *p = *cursor;
    if (p == NULL) {
        p = skip_ws(arr.p, end);
        if (p >= end || *p != '[') {
            return false;
        }
        p++;
    } else {
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return false;
        }
        p++;
    }
    p = skip_ws(p, end);
    if (p >= end || *p == ']') {
        return false;
    }
    const char *e = skip_value(p, end);
    *elem = (span_t){p, (size_t)(e - p)};
    *cursor = e;
    return true;
}

static bool span_u64(span_t s, uint64_t *out)
{
    if (s.n == 0 || s.n > 20) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9' || v > (UINT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    *out = v;
    return true;
}

/* Copies `s` into `out`, leaving out the whitespace outside strings: all of it when `all`, else
 * only line breaks (enough to keep a document on one line, and the server's bytes otherwise).
 * Returns 0 or HR_ENOMEM. */
static int compact(hr_buf_t *out, span_t s, bool all)
{
    hr_buf_reset(out);
    const char *p = s.p, *end = s.p + s.n;
    while (p < end) {
        const char *run = p;
        if (*p == '"') {
            p = skip_string(p, end);
        } else {
            while (p < end && *p != '"' && *p != '\n' && *p != '\r' && (!all || !is_ws(*p))) {
                p++;
            }
        }
        int rc = hr_buf_append(out, run, (size_t)(p - run));
        if (rc != 0) {
            return rc;
        }
        while (p < end && (*p == '\n' || *p == '\r' || (all && is_ws(*p)))) {
            p++;
        }
    }
    return 0;
}

/* ---- Printing one envelope ---- */

static void print_json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) {
        hr__cli_print_human_to(stdout, json_string_value(v), json_string_length(v), 0);
    } else {
        putchar('-');
    }
}

static void print_data(tail_state_t *t, json_t *event, span_t raw_event)
{
    json_t *data = json_object_get(event, "data");
    json_t *b64 = json_object_get(event, "data_base64");
    span_t raw;
    if (json_is_string(data)) {
        fputs("  ", stdout);
        hr__cli_print_human_to(stdout, json_string_value(data), json_string_length(data),
                               DATA_SHOWN_CHARS);
    } else if (data != NULL && json_member(raw_event, "data", &raw) &&
               compact(&t->ts_scratch, raw, true) == 0) {
        fputs("  ", stdout);
        hr__cli_print_human_to(stdout, (const char *)t->ts_scratch.data, t->ts_scratch.len,
                               DATA_SHOWN_CHARS);
    } else if (json_is_string(b64)) {
        size_t len = json_string_length(b64);
        const char *s = json_string_value(b64);
        size_t pad = (len >= 1 && s[len - 1] == '=') + (len >= 2 && s[len - 2] == '=');
        printf("  <%zu bytes>", len / 4 * 3 - (len / 4 * 3 >= pad ? pad : 0));
    }
}

/*
 * Prints the envelope `env` whose exact text is `raw`, and records its seq. Returns 0, or
 * HR_CLI_EXIT_SERVER when it is not an envelope.
 */
static int print_envelope(tail_state_t *t, json_t *env, span_t raw)
{
    span_t seq_span;
    uint64_t seq;
    if (!json_is_object(env) || !json_member(raw, "seq", &seq_span) || !span_u64(seq_span, &seq)) {
        fprintf(stderr, "herald: the server sent an event without a valid seq\n");
        return HR_CLI_EXIT_SERVER;
    }
    if (t->ts_ctx->cc_json) {
        if (compact(&t->ts_scratch, raw, false) != 0) {
            fprintf(stderr, "herald: out of memory printing event %llu\n", (unsigned long long)seq);
            return HR_CLI_EXIT_SERVER;
        }
        fwrite(t->ts_scratch.data, 1, t->ts_scratch.len, stdout);
        putchar('\n');
    } else {
        json_t *event = json_object_get(env, "event");
        span_t raw_event = {NULL, 0};
        json_member(raw, "event", &raw_event);
        printf("%llu  ", (unsigned long long)seq);
        print_json_str(env, "ingested");
        fputs("  ", stdout);
        print_json_str(event, "type");
        fputs("  ", stdout);
        print_json_str(event, "source");
        fputs("  ", stdout);
        print_json_str(event, "id");
        print_data(t, event, raw_event);
        putchar('\n');
    }
    t->ts_printed++;
    t->ts_have_last = true;
    t->ts_last = seq;
    return HR_CLI_EXIT_OK;
}

static bool limit_reached(const tail_state_t *t)
{
    return t->ts_limit > 0 && t->ts_printed >= t->ts_limit;
}

/* ---- Paged reads ---- */

static json_t *load(const hr_buf_t *b)
{
    /* INT_AS_REAL: data may hold integers beyond 64 bits; the raw spans keep them exact. */
    return json_loadb((const char *)b->data, b->len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
                      NULL);
}

/* Sets *last to the bus's last seq now (0 for a bus that never held an event). Returns
 * HR_CLI_EXIT_OK, or the request's exit status after its error was printed. */
static int bus_last_seq(tail_state_t *t, uint64_t *last)
{
    *last = 0;
    char *path = xprintf("/v1/buses/%s", t->ts_bus);
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    int rc = hr_cli_client_request(hr__cli_client(t->ts_ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc == HR_CLI_EXIT_OK) {
        json_t *doc = load(&resp.cr_body);
        json_t *v = json_object_get(json_object_get(doc, "stats"), "last_seq");
        if (json_is_number(v) && json_number_value(v) >= 0) {
            *last = (uint64_t)json_number_value(v);
        } else if (!json_is_null(v)) {
            fprintf(stderr, "herald: the server's answer to GET %s has no stats.last_seq\n", path);
            rc = HR_CLI_EXIT_SERVER;
        }
        json_decref(doc);
    }
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

/*
 * Fetches one page from `query` (e.g. "from=5") and prints its events. Sets *n to the number
 * printed, *next to the page's `next` (*has_next false when there is none) and, when first is
 * not NULL, *first to the first event's seq without printing anything.
 */
static int fetch_page(tail_state_t *t, const char *query, size_t *n, uint64_t *next, bool *has_next,
                      uint64_t *first)
{
    *n = 0;
    *has_next = false;
    char *path = xprintf("/v1/buses/%s/events?%s%s%s", t->ts_bus, query,
                         t->ts_filter ? "&filter=" : "", t->ts_filter ? t->ts_filter : "");
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    json_t *doc = NULL;
    int rc = hr_cli_client_request(hr__cli_client(t->ts_ctx), "GET", path, NULL, NULL, 0, &resp);
    if (rc != HR_CLI_EXIT_OK) {
        goto out;
    }
    doc = load(&resp.cr_body);
    span_t body = {(const char *)resp.cr_body.data, resp.cr_body.len};
    span_t events, next_span;
    json_t *arr = json_object_get(doc, "events");
    if (!json_is_array(arr) || !json_member(body, "events", &events)) {
        fprintf(stderr, "herald: the server's answer to GET %s has no events array\n", path);
        rc = HR_CLI_EXIT_SERVER;
        goto out;
    }
    *has_next = json_member(body, "next", &next_span) && span_u64(next_span, next);
    const char *cursor = NULL;
    span_t raw;
    for (size_t i = 0; i < json_array_size(arr) && json_next(events, &cursor, &raw); i++) {
        if (first != NULL) {
            span_t s;
            if (json_member(raw, "seq", &s) && span_u64(s, first)) {
                *n = 1;
            }
            break;
        }
        if ((rc = print_envelope(t, json_array_get(arr, i), raw)) != HR_CLI_EXIT_OK) {
            goto out;
        }
        (*n)++;
        if (limit_reached(t)) {
            break;
        }
    }
out:
    fflush(stdout);
    json_decref(doc);
    hr_cli_resp_free(&resp);
    free(path);
    return rc;
}

static int pull(tail_state_t *t, const tail_opts_t *o, uint64_t from)
{
    /* With a filter, an empty page is only the end once it reaches past this seq. */
    uint64_t end_seq = 0;
    int rc = HR_CLI_EXIT_OK;
    if (t->ts_filter != NULL && (rc = bus_last_seq(t, &end_seq)) != HR_CLI_EXIT_OK) {
        return rc;
    }
    char *from_time = o->to_from_time ? hr_cli_escape(o->to_from_time) : NULL;
    bool has_from = o->to_from != NULL;
    for (;;) {
        uint64_t page = PAGE_MAX;
        if (t->ts_limit > 0 && t->ts_limit - t->ts_printed < page) {
            page = t->ts_limit - t->ts_printed;
        }
        char *query;
        if (has_from) {
            query =
                xprintf("from=%llu&limit=%llu", (unsigned long long)from, (unsigned long long)page);
        } else if (from_time != NULL) {
            query = xprintf("from_time=%s&limit=%llu", from_time, (unsigned long long)page);
        } else {
            query = xprintf("limit=%llu", (unsigned long long)page);
        }
        size_t n;
        uint64_t next = 0;
        bool has_next;
        rc = fetch_page(t, query, &n, &next, &has_next, NULL);
        free(query);
        /* Stop at the end, and on a `next` that would not move forward. A filtered page
         * may be empty before the end: go on while it made progress and has not reached past
         * the bus's end as it was when we started. */
        if (rc != HR_CLI_EXIT_OK || limit_reached(t) || !has_next ||
            (t->ts_have_last && next <= t->ts_last)) {
            break;
        }
        if (n == 0 && (t->ts_filter == NULL || next > end_seq || (has_from && next <= from))) {
            break;
        }
        from = next;
        has_from = true;
    }
    free(from_time);
    return rc;
}

/* ---- Following the live stream ---- */

/* The Server-Sent Events parser (https://html.spec.whatwg.org/#event-stream-interpretation). */
typedef struct sse {
    tail_state_t *se_tail;
    hr_buf_t se_line;
    hr_buf_t se_data;
    hr_buf_t se_event; /* the `event:` field of the event being read */
    bool se_after_cr;  /* the previous chunk ended with '\r' (a following '\n' belongs to it) */
    bool se_healthy;   /* the current connection delivered a well-formed SSE line */
    int se_rc;         /* HR_CLI_EXIT_OK, or why the stream was stopped */
} sse_t;

static int sse_dispatch(sse_t *s)
{
    tail_state_t *t = s->se_tail;
    bool ours = s->se_event.len == 0 || strcmp((char *)s->se_event.data, "cloudevent") == 0;
    hr_buf_reset(&s->se_event);
    if (s->se_data.len == 0 || !ours) {
        hr_buf_reset(&s->se_data);
        return 0;
    }
    s->se_data.len--; /* the '\n' after the last data line */
    json_t *env = load(&s->se_data);
    int rc = HR_CLI_EXIT_OK;
    if (env == NULL) {
        fprintf(stderr, "herald: skipping an event of the stream that is not valid JSON\n");
    } else {
        rc = print_envelope(t, env, (span_t){(const char *)s->se_data.data, s->se_data.len});
        fflush(stdout);
    }
    json_decref(env);
    hr_buf_reset(&s->se_data);
    if (rc != HR_CLI_EXIT_OK) {
        s->se_rc = rc;
        return -1;
    }
    return limit_reached(t) ? -1 : 0;
}

static int sse_line(sse_t *s)
{
    const char *line = (const char *)s->se_line.data;
    size_t len = s->se_line.len;
    if (len == 0) {
        return sse_dispatch(s);
    }
    if (line[0] == ':') {
        s->se_healthy = true;
        return 0; /* a comment, such as the heartbeat */
    }
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    if (value < line + len && *value == ' ') {
        value++;
    }
    size_t value_len = (size_t)(line + len - value);
    int err = 0;
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        s->se_healthy = true;
        err |= hr_buf_append(&s->se_data, value, value_len);
        err |= hr_buf_putc(&s->se_data, '\n');
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        hr_buf_reset(&s->se_event);
        err |= hr_buf_append(&s->se_event, value, value_len);
    }
    /* `id:` repeats the envelope's seq, which is what resuming uses; `retry:` is ignored. */
    if (err != 0) {
        fprintf(stderr, "herald: out of memory reading the stream\n");
        s->se_rc = HR_CLI_EXIT_SERVER;
        return -1;
    }
    return 0;
}

static int sse_feed(void *ud, const char *p, size_t n)
{
    sse_t *s = ud;
    const char *end = p + n;
    if (s->se_after_cr && p < end && *p == '\n') {
        p++;
    }
    s->se_after_cr = false;
    while (p < end) {
        const char *q = p;
        while (q < end && *q != '\n' && *q != '\r') {
            q++;
        }
        if (s->se_line.len + (size_t)(q - p) > SSE_LINE_MAX ||
            hr_buf_append(&s->se_line, p, (size_t)(q - p)) != 0) {
            fprintf(stderr, "herald: the stream sent a line longer than %u bytes\n", SSE_LINE_MAX);
            s->se_rc = HR_CLI_EXIT_SERVER;
            return -1;
        }
        if (q == end) {
            break;
        }
        if (*q == '\r') {
            if (q + 1 == end) {
                s->se_after_cr = true;
            } else if (q[1] == '\n') {
                q++;
            }
        }
        p = q + 1;
        int rc = sse_line(s);
        hr_buf_reset(&s->se_line);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    /* In short steps, so that an interrupt does not wait for the whole backoff. */
    while (ms > 0 && !stop_requested) {
        unsigned step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* Finds where --follow starts: *from and *has_from (false: the stream's live position). */
static int follow_start(tail_state_t *t, const tail_opts_t *o, uint64_t *from, bool *has_from)
{
    int rc = HR_CLI_EXIT_OK;
    *has_from = false;
    if (o->to_from != NULL) {
        *has_from = true; /* *from is already set */
    } else if (o->to_from_time != NULL) {
        /* The stream takes a seq: look up the first event at or after the time. */
        char *when = hr_cli_escape(o->to_from_time);
        char *query = xprintf("from_time=%s&limit=1", when);
        size_t n;
        bool has_next;
        uint64_t next = 0;
        rc = fetch_page(t, query, &n, &next, &has_next, from);
        free(query);
        free(when);
        if (rc == HR_CLI_EXIT_OK && (n > 0 || has_next)) {
            *has_from = true;
            *from = n > 0 ? *from : next;
        }
    } else {
        /* Live: start right after the bus's last seq, so that a reconnection before the first
         * event knows where to resume (and an unknown bus is reported at once). */
        uint64_t last;
        rc = bus_last_seq(t, &last);
        if (rc == HR_CLI_EXIT_OK) {
            *from = last + 1;
            *has_from = true;
        }
    }
    return rc;
}

static int follow(tail_state_t *t, const tail_opts_t *o, uint64_t from)
{
    bool has_from;
    int rc = follow_start(t, o, &from, &has_from);
    if (rc != HR_CLI_EXIT_OK) {
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    hr_cli_client_t *client = hr__cli_client(t->ts_ctx);
    sse_t s = {.se_tail = t};
    hr_cli_stream_t ops = {.cs_on_data = sse_feed,
                           .cs_ud = &s,
                           .cs_stop = &stop_requested,
                           .cs_idle_timeout_s = IDLE_TIMEOUT_S};
    hr_cli_resp_t resp = HR_CLI_RESP_INIT;
    unsigned failures = 0;
    bool ever_connected = false;
    for (;;) {
        char *path;
        char *last_id = NULL;
        const char *fv = t->ts_filter ? t->ts_filter : "";
        if (t->ts_have_last) {
            /* Resume after the last event printed (with a filter, the server examines again
             * the events after it that did not match). */
            path = xprintf("/v1/buses/%s/stream%s%s", t->ts_bus, *fv ? "?filter=" : "", fv);
            last_id = xprintf("Last-Event-ID: %llu", (unsigned long long)t->ts_last);
        } else if (has_from) {
            path = xprintf("/v1/buses/%s/stream?from=%llu%s%s", t->ts_bus, (unsigned long long)from,
                           *fv ? "&filter=" : "", fv);
        } else {
            path = xprintf("/v1/buses/%s/stream%s%s", t->ts_bus, *fv ? "?filter=" : "", fv);
        }
        const char *headers[] = {"Cache-Control: no-cache", last_id, NULL};
        hr_buf_reset(&s.se_line);
        hr_buf_reset(&s.se_data);
        hr_buf_reset(&s.se_event);
        s.se_after_cr = false;
        s.se_healthy = false;
        hr_cli_stream_result_t res = hr_cli_client_stream(client, path, headers, &ops, &resp);
        free(path);
        free(last_id);
        if (res == HR_CLI_STREAM_STOPPED) {
            rc = s.se_rc;
            break;
        }
        if (res == HR_CLI_STREAM_HTTP_ERROR && resp.cr_status != 503) {
            hr_cli_client_print_error(&resp);
            rc = HR_CLI_EXIT_SERVER;
            break;
        }
        if (res == HR_CLI_STREAM_UNREACHABLE && !ever_connected) {
            hr_cli_client_print_unreachable(client);
            rc = HR_CLI_EXIT_UNREACHABLE;
            break;
        }
        if (res == HR_CLI_STREAM_ENDED || res == HR_CLI_STREAM_DROPPED) {
            ever_connected = true;
            if (s.se_healthy) {
                failures = 0; /* that connection worked for a while */
            }
        }
        if (++failures > RETRY_MAX) {
            fprintf(stderr,
                    "herald: lost the stream from %s and could not resume it after %d "
                    "attempts\n",
                    hr_cli_client_url(client), RETRY_MAX);
            rc = HR_CLI_EXIT_UNREACHABLE;
            break;
        }
        unsigned delay = RETRY_FIRST_MS << (failures - 1 < 5 ? failures - 1 : 5);
        delay = delay < RETRY_CAP_MS ? delay : RETRY_CAP_MS;
        fprintf(stderr, "herald: the stream was interrupted (%s); reconnecting in %u ms\n",
                res == HR_CLI_STREAM_HTTP_ERROR ? "the server is overloaded" : "connection lost",
                delay);
        sleep_ms(delay);
        if (stop_requested) {
            break;
        }
    }
    hr_cli_resp_free(&resp);
    hr_buf_free(&s.se_line);
    hr_buf_free(&s.se_data);
    hr_buf_free(&s.se_event);
    return rc;
}

/* Checks --filter as the server will (compile and lint), so that a mistake is reported with
 * its position before anything is sent. Returns false after printing a usage error. */
static bool filter_valid(const char *expr)
{
    hr_cesql_t *q = NULL;
    hr_cesql_error_t err;
    memset(&err, 0, sizeof err);
    int rc = hr_cesql_compile(expr, strlen(expr), &q, &err);
    if (rc == 0) {
        rc = hr_cesql_lint(q, &err);
    }
    hr_cesql_destroy(q);
    if (rc == HR_EINVAL) {
        hr__cli_usage_error(&tail_cmd, "--filter is not a valid CloudEvents SQL expression: %s",
                            err.msg);
        return false;
    }
    /* Out of memory: let the server judge it. */
    return true;
}

int hr__cli_tail(hr_cli_ctx_t *ctx, int argc, char **argv)
{
    tail_opts_t o = {0};
    const char *args[HR_CLI_MAX_ARGS];
    size_t n_args;
    int rc;
    if (!hr__cli_parse(ctx, &tail_cmd, &o, argc, argv, args, &n_args, &rc)) {
        return rc;
    }
    uint64_t from = 0;
    tail_state_t t = {.ts_ctx = ctx};
    if (o.to_from != NULL && o.to_from_time != NULL) {
        return hr__cli_usage_error(&tail_cmd, "give either --from or --from-time, not both");
    }
    if (o.to_from != NULL &&
        !hr__cli_parse_u64(&tail_cmd, "--from", o.to_from, 1, (uint64_t)INT64_MAX, &from)) {
        return HR_CLI_EXIT_USAGE;
    }
    if (o.to_limit != NULL &&
        !hr__cli_parse_u64(&tail_cmd, "--limit", o.to_limit, 1, UINT64_MAX, &t.ts_limit)) {
        return HR_CLI_EXIT_USAGE;
    }
    if (o.to_from_time != NULL && hr_rfc3339_check(o.to_from_time, strlen(o.to_from_time)) != 0) {
        return hr__cli_usage_error(&tail_cmd,
                                   "--from-time '%s': expected an RFC 3339 time such as "
                                   "2026-11-29T23:06:06Z",
                                   o.to_from_time);
    }
    if (o.to_filter != NULL && !filter_valid(o.to_filter)) {
        return HR_CLI_EXIT_USAGE;
    }
    t.ts_bus = hr_cli_escape(ctx->cc_bus);
    t.ts_filter = o.to_filter ? hr_cli_escape(o.to_filter) : NULL;
    rc = o.to_follow ? follow(&t, &o, from) : pull(&t, &o, from);
    free(t.ts_filter);
    free(t.ts_bus);
    hr_buf_free(&t.ts_scratch);
    return rc;
}
