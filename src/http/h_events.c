/* SPDX-License-Identifier: MIT */
/*
 * Publishing and pull reads: POST and GET /v1/buses/{bus}/events.
 *
 * Publish runs on an HTTP worker: decode and validate every event (all three content modes),
 * encode the log records, then park the request and hand the records to the bus; the bus's
 * commit thread checks dedup, appends, syncs and calls pub_done(), which answers and resumes.
 */
#include "ce/event.h"
#include "filter/cesql.h"
#include "http/routes.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"
#include "util/rfc3339.h"

#include <errno.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct pub_ctx {
    hr_http_req_t *req;
    hr_bus_t *bus;
    bool batch;
    size_t n;
    hr_buf_t enc;
    hr_iov_t *recs;
    hr_dedup_key_t *keys;
    uint64_t *seqs;
    uint8_t *dup;
    hr_iov_t *scratch;
    hr_bus_pub_t pub;
} pub_ctx_t;

static void pub_ctx_free(void *p)
{
    pub_ctx_t *c = p;
    hr_bus_release(c->bus);
    hr_buf_free(&c->enc);
    free(c->recs);
    free(c->keys);
    free(c->seqs);
    free(c->dup);
    free(c->scratch);
    free(c);
}

typedef struct hdr_collect {
    hr_ce_header_t *h;
    size_t n, cap;
} hdr_collect_t;

static void collect_hdr(void *cls, const char *key, const char *value)
{
    hdr_collect_t *c = cls;
    if (strncasecmp(key, "ce-", 3) != 0) {
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->h = hr_xrealloc(c->h, c->cap * sizeof *c->h);
    }
    c->h[c->n].name = key;
    c->h[c->n].value = value ? value : "";
    c->n++;
}

static unsigned status_for(int rc)
{
    switch (rc) {
    case 0:
        return 202;
    case -ENOSPC:
    case HR_ENOSPACE:
        return 507;
    case HR_ETOOBIG:
        return 413;
    case HR_ENOMEM:
    case HR_EFAILED:
    case HR_ECLOSED:
    case HR_EBUSY:
        return 503;
    default:
        return 500;
    }
}

/* On the bus's commit thread: answer and resume the parked request. */
static void pub_done(hr_bus_pub_t *pub)
{
    pub_ctx_t *c = pub->user;
    hr_buf_t out = HR_BUF_INIT;
    unsigned status = status_for(pub->status);
    if (pub->status != 0) {
        char msg[256];
        if (status == 507) {
            snprintf(msg, sizeof msg, "disk full: nothing was stored on bus \"%s\"",
                     hr_bus_name(c->bus));
        } else {
            snprintf(msg, sizeof msg, "bus \"%s\" could not store the events: %s",
                     hr_bus_name(c->bus), hr_strerror(pub->status));
        }
        hr_http_error_body(&out, NULL, -1, msg);
    } else if (!c->batch) {
        hr_buf_printf(&out, "{\"seq\":%llu%s}", (unsigned long long)c->seqs[0],
                      c->dup[0] ? ",\"duplicate\":true" : "");
    } else {
        hr_buf_puts(&out, "{\"seqs\":[");
        for (size_t i = 0; i < c->n; i++) {
            hr_buf_printf(&out, "%s%llu", i ? "," : "", (unsigned long long)c->seqs[i]);
        }
        hr_buf_putc(&out, ']');
        size_t ndup = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (c->dup[i]) {
                hr_buf_printf(&out, "%s%zu", ndup++ ? "," : ",\"duplicates\":[", i);
            }
        }
        hr_buf_puts(&out, ndup ? "]}" : "}");
    }
    hr_http_complete(c->req, status, &out);
    hr_buf_free(&out);
}

static void ce_error(hr_http_req_t *req, unsigned status, const hr_ce_error_t *err)
{
    hr_buf_t b = HR_BUF_INIT;
    hr_http_error_body(&b, err->field, err->index, err->msg);
    hr_http_reply(req, status, &b);
    hr_buf_free(&b);
}

/* Decodes the request into events per its content mode. Answers and returns false on error. */
static bool decode(hr_http_req_t *req, hr_ce_event_t ***evs, size_t *n, bool *batch)
{
    const hr_http_opts_t *o = hr_http_opts(req);
    const hr_buf_t *body = hr_http_body(req);
    const char *ct = hr_http_header(req, "Content-Type");
    hr_ce_error_t err;
    memset(&err, 0, sizeof err);
    err.index = -1;
    int rc;
    hr_ce_mode_t mode = hr_ce_detect_mode(ct);
    *batch = mode == HR_CE_MODE_BATCH;
    if (mode == HR_CE_MODE_UNSUPPORTED) {
        hr_http_error(req, 415, "Content-Type",
                      "unsupported event format \"%s\": use application/cloudevents+json "
                      "(structured) or application/cloudevents-batch+json (batched)",
                      ct);
        return false;
    }
    if (mode == HR_CE_MODE_BATCH) {
        if (body->len > o->max_batch_bytes) {
            hr_http_error(req, 413, "body", "batch of %zu bytes exceeds the limit of %zu bytes",
                          body->len, o->max_batch_bytes);
            return false;
        }
        rc = hr_ce_from_batch(body->data, body->len, evs, n, &err);
    } else if (mode == HR_CE_MODE_STRUCTURED) {
        /* The event limit applies to the decoded event (checked after encoding): JSON escapes
         * can make a structured body several times larger than its event. */
        if (body->len > o->max_batch_bytes) {
            hr_http_error(req, 413, "body",
                          "request body of %zu bytes exceeds the limit of %zu bytes", body->len,
                          o->max_batch_bytes);
            return false;
        }
        *evs = hr_xmalloc(sizeof **evs);
        rc = hr_ce_from_structured(body->data, body->len, &(*evs)[0], &err);
        *n = rc == 0 ? 1 : 0;
        if (rc != 0) {
            free(*evs);
            *evs = NULL;
        }
    } else {
        if (body->len > o->max_event_bytes) {
            hr_http_error(req, 413, "body", "event of %zu bytes exceeds the limit of %zu bytes",
                          body->len, o->max_event_bytes);
            return false;
        }
        hdr_collect_t hc = {0};
        hr_http_header_each(req, collect_hdr, &hc);
        if (hc.n == 0) {
            free(hc.h);
            hr_http_error(req, 400, "ce-specversion",
                          "no CloudEvent in the request: binary mode needs ce-specversion, "
                          "ce-id, ce-source and ce-type headers, or send Content-Type "
                          "application/cloudevents+json (structured) or "
                          "application/cloudevents-batch+json (batched)");
            return false;
        }
        *evs = hr_xmalloc(sizeof **evs);
        rc = hr_ce_from_binary(hc.h, hc.n, ct, body->data, body->len, &(*evs)[0], &err);
        free(hc.h);
        *n = rc == 0 ? 1 : 0;
        if (rc != 0) {
            free(*evs);
            *evs = NULL;
        }
    }
    if (rc == HR_ENOMEM) {
        hr_http_set_header(req, "Retry-After", "1");
        hr_http_error(req, 503, NULL, "out of memory decoding the request; retry later");
        return false;
    }
    if (rc != 0) {
        ce_error(req, 400, &err);
        return false;
    }
    if (*batch && *n == 0) {
        hr_ce_events_free(*evs, 0);
        *evs = NULL;
        hr_http_error(req, 400, "body", "the batch is empty: send at least one event");
        return false;
    }
    return true;
}

/* A random W3C traceparent ("00-<trace id>-<parent id>-01") for an event that carried none,
 * so its deliveries can be correlated; per-thread xorshift seeded from the kernel. */
static char *new_traceparent(void)
{
    static _Thread_local uint64_t s;
    if (s == 0) {
        if (getrandom(&s, sizeof s, 0) != sizeof s || s == 0) {
            s = hr_mono_ns() | 1;
        }
    }
    uint64_t w[3];
    for (int i = 0; i < 3; i++) {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        w[i] = s * 0x2545F4914F6CDD1DULL;
    }
    char *tp = hr_xmalloc(56);
    snprintf(tp, 56, "00-%016llx%016llx-%016llx-01", (unsigned long long)w[0],
             (unsigned long long)w[1], (unsigned long long)(w[2] | 1));
    return tp;
}

void hr_h_publish(hr_http_req_t *req)
{
    static const char *const allowed[] = {NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", name);
        return;
    }
    hr_ce_event_t **evs = NULL;
    size_t n = 0;
    bool batch;
    if (!decode(req, &evs, &n, &batch)) {
        hr_bus_release(bus);
        return;
    }
    pub_ctx_t *c = hr_xcalloc(1, sizeof *c);
    c->req = req;
    c->bus = bus;
    c->batch = batch;
    c->n = n;
    hr_http_set_state(req, c, pub_ctx_free);
    size_t *ends = hr_xmalloc(n * sizeof *ends);
    int rc = 0;
    long too_big = -1;
    size_t max_ev = hr_http_opts(req)->max_event_bytes;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (hr_ce_get(evs[i], "traceparent") == NULL) {
            evs[i]->trace_gen = new_traceparent();
        }
        size_t before = c->enc.len;
        rc = hr_ce_encode(evs[i], &c->enc);
        ends[i] = c->enc.len;
        if (rc == 0 && c->enc.len - before > max_ev) {
            too_big = (long)i;
            rc = HR_ETOOBIG;
        }
    }
    if (rc == 0) {
        c->recs = hr_xmalloc(n * sizeof *c->recs);
        c->keys = hr_xmalloc(n * sizeof *c->keys);
        c->seqs = hr_xcalloc(n, sizeof *c->seqs);
        c->dup = hr_xcalloc(n, 1);
        c->scratch = hr_xmalloc(n * sizeof *c->scratch);
        for (size_t i = 0; i < n; i++) {
            size_t start = i ? ends[i - 1] : 0;
            c->recs[i].base = c->enc.data + start;
            c->recs[i].len = ends[i] - start;
            c->keys[i] = hr_dedup_key(evs[i]->source, evs[i]->id);
        }
    }
    free(ends);
    hr_ce_events_free(evs, n);
    if (rc == HR_ETOOBIG) {
        hr_buf_t b = HR_BUF_INIT;
        char msg[160];
        snprintf(msg, sizeof msg, "event exceeds the limit of %zu bytes", max_ev);
        hr_http_error_body(&b, "body", batch ? too_big : -1, msg);
        hr_http_reply(req, 413, &b);
        hr_buf_free(&b);
        return;
    }
    if (rc != 0) {
        hr_http_set_header(req, "Retry-After", "1");
        hr_http_error(req, 503, NULL, "out of memory encoding the events; retry later");
        return;
    }
    c->pub.recs = c->recs;
    c->pub.keys = c->keys;
    c->pub.n = n;
    c->pub.seqs = c->seqs;
    c->pub.dup = c->dup;
    c->pub.scratch = c->scratch;
    c->pub.done = pub_done;
    c->pub.user = c;
    /* Park first, then submit: the commit thread may finish before this function returns, and
     * a connection must be suspended before it is resumed. */
    hr_http_suspend(req);
    rc = hr_bus_publish(bus, &c->pub);
    if (rc != 0) {
        c->pub.status = rc;
        pub_done(&c->pub);
    }
}

/* ---- reads ---- */

/* Parses a seq parameter: decimal digits only, 1..2^63. */
bool hr__parse_seq(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 19) {
        return false;
    }
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v == 0 || v > (1ull << 63)) {
        return false;
    }
    *out = v;
    return true;
}

/* Resolves ?from= / ?from_time= into a start seq; answers 400 and returns false when bad. */
bool hr__read_start(hr_http_req_t *req, hr_bus_t *bus, uint64_t *from)
{
    const char *f = hr_http_query(req, "from");
    const char *ft = hr_http_query(req, "from_time");
    if (f && ft) {
        hr_http_error(req, 400, "from_time", "give either \"from\" or \"from_time\", not both");
        return false;
    }
    if (f) {
        if (!hr__parse_seq(f, from)) {
            hr_http_error(req, 400, "from",
                          "\"from\" must be a seq: an integer of at least 1, got \"%s\"", f);
            return false;
        }
        return true;
    }
    if (ft) {
        uint64_t t;
        if (hr_rfc3339_parse_clamped(ft, strlen(ft), &t) != 0) {
            hr_http_error(req, 400, "from_time",
                          "\"from_time\" must be an RFC 3339 time such as "
                          "2026-01-02T03:04:05Z, got \"%s\"",
                          ft);
            return false;
        }
        *from = hr_log_seek_time(hr_bus_log(bus), t);
        return true;
    }
    *from = 1;
    return true;
}

/* Compiles ?filter= (CESQL). Returns true with *out NULL when absent; answers 400 and
 * returns false when it does not compile. */
bool hr__read_filter(hr_http_req_t *req, hr_cesql_t **out)
{
    *out = NULL;
    const char *f = hr_http_query(req, "filter");
    if (f == NULL) {
        return true;
    }
    hr_cesql_error_t err;
    memset(&err, 0, sizeof err);
    if (hr_cesql_compile(f, strlen(f), out, &err) != 0 || hr_cesql_lint(*out, &err) != 0) {
        hr_cesql_destroy(*out);
        *out = NULL;
        hr_http_error(req, 400, "filter", "\"filter\" is not a valid CESQL expression: %s",
                      err.msg);
        return false;
    }
    return true;
}

/* Records a filtered read examines at most per request; `next` continues from there. */
#define FILTER_SCAN_MAX 10000

void hr_h_read(hr_http_req_t *req)
{
    static const char *const allowed[] = {"from", "from_time", "limit", "filter", NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", name);
        return;
    }

    uint64_t from, limit = 100;
    const char *l = hr_http_query(req, "limit");
    if (l && (!hr__parse_seq(l, &limit) || limit > 1000)) {
        hr_http_error(req, 400, "limit", "\"limit\" must be an integer from 1 to 1000, got \"%s\"",
                      l);
        goto out;
    }
    if (!hr__read_start(req, bus, &from)) {
        goto out;
    }
    hr_cesql_t *filter = NULL;
    if (!hr__read_filter(req, &filter)) {
        goto out;
    }
    hr_log_batch_t b = HR_LOG_BATCH_INIT;
    hr_buf_t out = HR_BUF_INIT;
    hr_buf_puts(&out, "{\"events\":[");
    uint64_t next = from, scanned = 0, found = 0;
    int rc = 0;
    /* Without a filter one read is the page; with one, keep reading until `limit` events
     * matched, the log ends, or FILTER_SCAN_MAX records were examined. */
    while (found < limit && scanned < (filter ? FILTER_SCAN_MAX : limit)) {
        size_t want = filter ? 1000 : (size_t)(limit - found);
        if ((rc = hr_log_read(hr_bus_log(bus), next, want, 4u << 20, &b)) != 0 || b.n == 0) {
            break;
        }
        for (size_t i = 0; i < b.n && rc == 0 && found < limit; i++) {
            next = b.ents[i].seq + 1;
            scanned++;
            if (filter) {
                hr_ce_event_t *ev = NULL;
                bool m = hr_ce_decode(b.ents[i].payload, b.ents[i].len, &ev) == 0 &&
                         hr_cesql_match(filter, ev);
                hr_ce_event_free(ev);
                if (!m) {
                    continue;
                }
            }
            if (found++) {
                hr_buf_putc(&out, ',');
            }
            rc = hr_bus_envelope_json(&b.ents[i], &out);
        }
        if (!filter) {
            break;
        }
    }
    if (rc == 0 && scanned == 0) {
        hr_log_stats_t st;
        hr_log_stats(hr_bus_log(bus), &st);
        if (next < st.first_seq) {
            next = st.first_seq;
        }
        if (next > st.last_seq + 1) {
            next = st.last_seq + 1;
        }
    }
    hr_log_batch_free(&b);
    hr_cesql_destroy(filter);
    if (rc != 0) {
        hr_buf_free(&out);
        hr_http_error(req, 500, NULL, "reading bus \"%s\" failed: %s", name, hr_strerror(rc));
        goto out;
    }
    hr_buf_printf(&out, "],\"next\":%llu}", (unsigned long long)next);
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
out:
    hr_bus_release(bus);
}
