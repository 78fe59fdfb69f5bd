/* SPDX-License-Identifier: MIT */
/*
 * The delivery runtime (see deliver.h). Everything here runs on the delivery loop thread,
 * except hr_deliver_kick() (any thread) and the reply-publish completion (a bus commit thread),
 * which only posts back to the loop.
 */
#include "delivery/deliver.h"
#include "ce/event.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DL_DATA_MAX 4096
#define ATTEMPT_POOL_MAX 256
#define DLS_TIMEOUT_MS 10000

struct hr_deliver {
    hr_deliver_opts_t o;
    uint64_t rng;
    bool closing; /* the loop refused a submit: it is shutting down; start nothing more */
    /* Everything that may still be waiting when the loop stops (timers are cancelled without
     * running, posts refused), so that destroy can free it. */
    struct hr_attempt *attempts;
    struct dls_send *sends;
    hr_consumer_t **rate_waiters;
    size_t n_rate_waiters, cap_rate_waiters;
    atomic_int pubs_in_flight; /* replies handed to a bus and not yet called back */
    /* Finished attempts kept for reuse with their request buffers (header lines, response
     * body), which spares a dozen allocations per delivery. */
    struct hr_attempt *pool;
    size_t n_pool;
    bool destroying;
    /* per-scan "seen key" set for keyed ordering, reused across pumps */
    struct seen_slot {
        uint64_t key;
        uint32_t gen;
    } * seen;
    size_t seen_cap;
    uint32_t seen_gen;
};

typedef struct hr_attempt {
    struct hr_attempt *prev, *next; /* in dv->attempts */
    hr_dloop_req_t req;
    hr_dloop_timer_t timer;
    hr_deliver_t *dv;
    hr_consumer_t *c;
    hr_dentry_t *e;
    hr_trigger_spec_t *spec;
    hr_ce_event_t *ev;
    hr_buf_t body;
    uint32_t attempts;
    uint64_t first_ns;
    bool built;
    bool req_inited; /* req holds buffers from an earlier use (pooled attempt) */
    bool replay;     /* a replay or redrive: traced apart from live delivery */
    /* reply publishing */
    hr_bus_t *reply_bus;
    hr_buf_t reply_enc;
    hr_iov_t reply_iov, reply_scratch;
    hr_dedup_key_t reply_key;
    uint64_t reply_seq;
    uint8_t reply_dup;
    hr_bus_pub_t pub;
    hr_dloop_task_t task;
    /* dead letter being written */
    char dl_code[32];
    char *dl_data;
} hr_attempt_t;

static void pump(hr_deliver_t *dv, hr_consumer_t *c);
static void dead_letter(hr_attempt_t *a, const char *code, const char *data);

/* ---- helpers ---- */

void hr_trig_stats_init(hr_trig_stats_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

void hr_trig_stats_destroy(hr_trig_stats_t *s)
{
    pthread_mutex_destroy(&s->mu);
}

static void set_last_error(hr_trig_stats_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_last_error(hr_trig_stats_t *s, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&s->mu);
    va_start(ap, fmt);
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    va_end(ap);
    s->last_error_ns = hr_wall_ns();
    pthread_mutex_unlock(&s->mu);
}

static double rand01(hr_deliver_t *dv)
{
    /* xorshift64*: jitter needs no crypto */
    dv->rng ^= dv->rng >> 12;
    dv->rng ^= dv->rng << 25;
    dv->rng ^= dv->rng >> 27;
    return (double)((dv->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* ---- finishing an entry ---- */

static void attempt_free(hr_attempt_t *a)
{
    if (a->prev) {
        a->prev->next = a->next;
    } else {
        a->dv->attempts = a->next;
    }
    if (a->next) {
        a->next->prev = a->prev;
    }
    hr_deliver_t *dv = a->dv;
    hr_dloop_timer_stop(dv->o.loop, &a->timer);
    hr_ce_event_free(a->ev);
    hr_bus_release(a->reply_bus);
    free(a->dl_data);
    hr_trigger_spec_unref(a->spec);
    hr_consumer_unref(a->c);
    if (dv->n_pool < ATTEMPT_POOL_MAX && !dv->destroying) {
        /* keep the request and buffers (same address, so their inner pointers stay valid) */
        hr_dloop_req_t req = a->req;
        hr_buf_t body = a->body, renc = a->reply_enc;
        bool inited = a->req_inited;
        memset(a, 0, sizeof *a);
        a->req = req;
        a->req_inited = inited;
        a->body = body;
        a->reply_enc = renc;
        hr_buf_reset(&a->body);
        hr_buf_reset(&a->reply_enc);
        a->next = dv->pool;
        dv->pool = a;
        dv->n_pool++;
        return;
    }
    hr_dloop_req_free(&a->req);
    hr_buf_free(&a->body);
    hr_buf_free(&a->reply_enc);
    free(a);
}

static void finish(hr_attempt_t *a, hr_trace_outcome_t outcome, const char *note)
{
    hr_consumer_t *c = a->c;
    hr_dentry_t *e = a->e;
    hr_trace_outcome(a->dv->o.trace, a->spec->bus, e->seq, a->spec->name, a->replay, outcome, note);
    if (outcome == HR_TRACE_DELIVERED) {
        atomic_fetch_add(&c->stats->delivered, 1);
        if (e->dl_id > 0) {
            hr_persist_forget(a->dv->o.persist, e->dl_id);
        }
    }
    e->att = NULL;
    e->state = HR_DE_DONE;
    attempt_free(a);
}

/* ---- dead letters ---- */

typedef struct dls_send {
    struct dls_send *prev, *next; /* in dv->sends */
    hr_dloop_req_t req;
    hr_dloop_timer_t timer;
    hr_deliver_t *dv;
    hr_ce_event_t *ev;
    uint32_t attempts, max_attempts;
    uint64_t delay_ms;
    hr_trig_stats_t *stats;
    hr_consumer_t *c;
} dls_send_t;

static int add_header_cb(void *arg, const char *name, const char *value)
{
    return hr_dloop_req_add_header(arg, name, value);
}

static void dls_free(dls_send_t *s)
{
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        s->dv->sends = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    hr_dloop_timer_stop(s->dv->o.loop, &s->timer);
    hr_dloop_req_free(&s->req);
    hr_ce_event_free(s->ev);
    hr_consumer_unref(s->c);
    free(s);
}

static void dls_submit(dls_send_t *s);

static void dls_timer(hr_dloop_timer_t *t, void *arg)
{
    (void)t;
    dls_submit(arg);
}

static void dls_done(hr_dloop_req_t *req)
{
    dls_send_t *s = req->user;
    bool ok = req->error == 0 && req->status >= 200 && req->status < 300;
    if (ok || req->error == HR_ECLOSED || s->attempts >= s->max_attempts ||
        (req->error == 0 && req->status >= 400 && req->status < 500 && req->status != 408 &&
         req->status != 429)) {
        if (!ok) {
            set_last_error(s->stats, "dead_letter_sink: %s",
                           req->error ? req->error_text : "HTTP error status");
        }
        dls_free(s);
        return;
    }
    uint64_t d = s->delay_ms << (s->attempts - 1 < 16 ? s->attempts - 1 : 16);
    hr_dloop_timer_start(s->dv->o.loop, &s->timer, hr_mono_ns() + d * 1000000ull, dls_timer, s);
}

static void dls_submit(dls_send_t *s)
{
    s->attempts++;
    if (hr_dloop_submit(s->dv->o.loop, &s->req) != 0) {
        dls_free(s);
    }
}

/* Sends the dead-lettered event, with the heralderror* extensions, to the dead_letter_sink.
 * Best effort with retries; the dead letter itself is already durable. */
static void send_to_dls(hr_attempt_t *a, const char *code, const char *data)
{
    dls_send_t *s = hr_xcalloc(1, sizeof *s);
    s->dv = a->dv;
    s->next = a->dv->sends;
    if (s->next) {
        s->next->prev = s;
    }
    a->dv->sends = s;
    s->stats = a->c->stats;
    s->c = hr_consumer_ref(a->c);
    s->max_attempts = a->spec->retry + 1;
    s->delay_ms = a->spec->backoff_delay_ms ? a->spec->backoff_delay_ms : 100;
    if (hr_ce_event_clone(a->ev, &s->ev) != 0 ||
        hr_ce_set_ext(s->ev, "heralderrorcode", code, HR_CE_STRING) != 0 ||
        hr_ce_set_ext(s->ev, "heralderrordata", data, HR_CE_STRING) != 0 ||
        hr_ce_set_ext(s->ev, "heralderrordest", a->spec->sink, HR_CE_STRING) != 0) {
        dls_free(s);
        return;
    }
    hr_dloop_req_init(&s->req);
    s->req.url = a->spec->dead_letter_sink;
    s->req.timeout_ms = (uint32_t)(a->spec->timeout_ms ? a->spec->timeout_ms : DLS_TIMEOUT_MS);
    s->req.done = dls_done;
    s->req.user = s;
    hr_ce_to_headers(s->ev, add_header_cb, &s->req);
    for (size_t i = 0; i < a->spec->n_headers; i++) {
        hr_dloop_req_add_header(&s->req, a->spec->headers[i].name, a->spec->headers[i].value);
    }
    s->req.body.base = s->ev->data;
    s->req.body.len = s->ev->data_len;
    dls_submit(s);
}

static void dl_retry_timer(hr_dloop_timer_t *t, void *arg)
{
    (void)t;
    hr_attempt_t *a = arg;
    char code[32];
    snprintf(code, sizeof code, "%s", a->dl_code);
    char *data = a->dl_data;
    a->dl_data = NULL;
    dead_letter(a, code, data ? data : "");
    free(data);
}

/* On the loop, after the persist thread wrote (or failed to write) the dead letter. */
static void dl_written(void *arg, int rc)
{
    hr_attempt_t *a = arg;
    hr_deliver_t *dv = a->dv;
    hr_consumer_t *c = hr_consumer_ref(a->c);
    if (rc != 0) {
        /* Not durable: never settle the event; try again in a second. */
        set_last_error(c->stats, "storing a dead letter failed: %s; retrying", hr_strerror(rc));
        hr_dloop_timer_start(dv->o.loop, &a->timer, hr_mono_ns() + 1000000000ull, dl_retry_timer,
                             a);
        hr_consumer_unref(c);
        return;
    }
    atomic_fetch_add(&c->stats->failed, 1);
    if (a->spec->dead_letter_sink && a->ev) {
        send_to_dls(a, a->dl_code, a->dl_data ? a->dl_data : "");
    }
    char note[64];
    snprintf(note, sizeof note, "heralderrorcode %s", a->dl_code);
    finish(a, HR_TRACE_DEAD_LETTERED, note);
    pump(dv, c);
    hr_consumer_unref(c);
}

static void dead_letter(hr_attempt_t *a, const char *code, const char *data)
{
    snprintf(a->dl_code, sizeof a->dl_code, "%s", code);
    size_t n = strlen(data);
    if (n > DL_DATA_MAX) {
        n = DL_DATA_MAX;
        while (n > 0 && ((unsigned char)data[n] & 0xC0) == 0x80) {
            n--; /* do not cut a UTF-8 sequence */
        }
    }
    free(a->dl_data);
    a->dl_data = hr_xstrndup(data, n);
    set_last_error(a->c->stats, "seq %llu dead-lettered: %s %s", (unsigned long long)a->e->seq,
                   code, a->dl_data);
    hr_meta_dl_t dl = {0};
    dl.bus = a->spec->bus;
    dl.trigger = a->spec->name;
    dl.seq = a->e->seq;
    dl.time_ns = hr_wall_ns();
    dl.attempts = a->attempts;
    dl.code = a->dl_code;
    dl.data = a->dl_data;
    dl.dest = a->spec->sink;
    dl.event = a->e->rec;
    dl.event_len = a->e->rec_len;
    hr_persist_dead_letter(a->dv->o.persist, &dl, a->e->dl_id, a->dv->o.loop, dl_written, a);
}

/* ---- replies ---- */

static void reply_committed_on_loop(void *arg)
{
    hr_attempt_t *a = arg;
    hr_deliver_t *dv = a->dv;
    hr_consumer_t *c = hr_consumer_ref(a->c);
    if (a->pub.status != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "publishing the reply on bus \"%s\" failed: %s",
                 hr_bus_name(a->reply_bus), hr_strerror(a->pub.status));
        dead_letter(a, "reply_failed", msg);
    } else {
        atomic_fetch_add(&c->stats->replies, 1);
        char note[160];
        snprintf(note, sizeof note, "reply %s as seq %llu on bus %s",
                 a->reply_dup ? "was a duplicate of" : "published",
                 (unsigned long long)a->reply_seq, hr_bus_name(a->reply_bus));
        finish(a, HR_TRACE_DELIVERED, note);
    }
    pump(dv, c);
    hr_consumer_unref(c);
}

/* On the reply bus's commit thread: hand back to the loop. */
static void reply_committed(hr_bus_pub_t *pub)
{
    hr_attempt_t *a = pub->user;
    hr_deliver_t *dv = a->dv;
    a->task.fn = reply_committed_on_loop;
    a->task.arg = a;
    hr_dloop_post_task(dv->o.loop, &a->task);
    /* last touch of this thread: destroy waits for the count before freeing attempts */
    atomic_fetch_sub(&dv->pubs_in_flight, 1);
}

/* Looks for a CloudEvent in a 2xx response. Returns 1 and the event, 0 when the response
 * carries none, -1 when it tried to and is invalid (msg says why). */
static int parse_reply(hr_dloop_req_t *req, hr_ce_event_t **out, char *msg, size_t msgsz)
{
    hr_ce_error_t err;
    memset(&err, 0, sizeof err);
    hr_ce_mode_t mode = hr_ce_detect_mode(req->resp_content_type);
    bool binary = false;
    for (size_t i = 0; i < req->resp_ce_count; i++) {
        binary |= strcasecmp(req->resp_ce[i].name, "ce-specversion") == 0;
    }
    int rc;
    if (mode == HR_CE_MODE_STRUCTURED) {
        rc = hr_ce_from_structured(req->resp_body.data, req->resp_body.len, out, &err);
    } else if (binary) {
        hr_ce_header_t *h = hr_xcalloc(req->resp_ce_count + 1, sizeof *h);
        for (size_t i = 0; i < req->resp_ce_count; i++) {
            h[i].name = req->resp_ce[i].name;
            h[i].value = req->resp_ce[i].value;
        }
        rc = hr_ce_from_binary(h, req->resp_ce_count, req->resp_content_type, req->resp_body.data,
                               req->resp_body.len, out, &err);
        free(h);
    } else {
        if (req->resp_body.len) {
            snprintf(msg, msgsz, "response body of %zu bytes ignored: not a CloudEvent",
                     req->resp_body.len);
        }
        return 0;
    }
    if (rc == 0 && req->resp_truncated) {
        hr_ce_event_free(*out);
        *out = NULL;
        snprintf(msg, msgsz, "reply ignored: larger than the response limit");
        return -1;
    }
    if (rc != 0) {
        snprintf(msg, msgsz, "reply ignored: %s", err.msg[0] ? err.msg : hr_strerror(rc));
        return -1;
    }
    return 1;
}

static void success(hr_attempt_t *a)
{
    hr_ce_event_t *rev = NULL;
    char msg[300] = "";
    int pr = parse_reply(&a->req, &rev, msg, sizeof msg);
    if (pr <= 0) {
        finish(a, HR_TRACE_DELIVERED, msg[0] ? msg : NULL);
        return;
    }
    const char *h = hr_ce_get(a->ev, "heraldhops");
    long hops = h ? strtol(h, NULL, 10) + 1 : 1;
    if (hops > (long)a->dv->o.max_hops) {
        hr_ce_event_free(rev);
        char d[128];
        snprintf(d, sizeof d, "the reply would be hop %ld, beyond the limit of %u", hops,
                 a->dv->o.max_hops);
        dead_letter(a, "hop_limit", d);
        return;
    }
    char hb[24];
    snprintf(hb, sizeof hb, "%ld", hops);
    const char *bus_name = a->spec->reply_bus ? a->spec->reply_bus : a->spec->bus;
    a->reply_bus = hr_buses_get(a->dv->o.buses, bus_name);
    if (a->reply_bus == NULL) {
        hr_ce_event_free(rev);
        char d[160];
        snprintf(d, sizeof d, "reply bus \"%s\" does not exist", bus_name);
        dead_letter(a, "reply_failed", d);
        return;
    }
    if (hr_ce_set_ext(rev, "heraldhops", hb, HR_CE_INT) != 0 ||
        hr_ce_encode(rev, &a->reply_enc) != 0) {
        hr_ce_event_free(rev);
        dead_letter(a, "reply_failed", "out of memory encoding the reply");
        return;
    }
    a->reply_key = hr_dedup_key(rev->source, rev->id);
    hr_ce_event_free(rev);
    a->reply_iov.base = a->reply_enc.data;
    a->reply_iov.len = a->reply_enc.len;
    memset(&a->pub, 0, sizeof a->pub);
    a->pub.recs = &a->reply_iov;
    a->pub.keys = &a->reply_key;
    a->pub.n = 1;
    a->pub.seqs = &a->reply_seq;
    a->pub.dup = &a->reply_dup;
    a->pub.scratch = &a->reply_scratch;
    a->pub.done = reply_committed;
    a->pub.user = a;
    atomic_fetch_add(&a->dv->pubs_in_flight, 1);
    int rc = hr_bus_publish(a->reply_bus, &a->pub);
    if (rc != 0) {
        atomic_fetch_sub(&a->dv->pubs_in_flight, 1);
        char d[160];
        snprintf(d, sizeof d, "publishing the reply on bus \"%s\" failed: %s", bus_name,
                 hr_strerror(rc));
        dead_letter(a, "reply_failed", d);
    }
}

/* ---- attempts ---- */

static uint64_t retry_after_ms(const char *v, uint64_t now_wall_s)
{
    if (v == NULL || *v == '\0') {
        return 0;
    }
    char *end;
    unsigned long long s = strtoull(v, &end, 10);
    if (end != v && *end == '\0') {
        return s > 86400 ? 86400000ull : s * 1000ull;
    }
    time_t t = curl_getdate(v, NULL);
    if (t > 0 && (uint64_t)t > now_wall_s) {
        return ((uint64_t)t - now_wall_s) * 1000ull;
    }
    return 0;
}

static void retry_timer(hr_dloop_timer_t *t, void *arg)
{
    (void)t;
    hr_attempt_t *a = arg;
    hr_consumer_t *c = a->c;
    a->e->state = HR_DE_QUEUED;
    c->first_queued = 0; /* rescan from the head: this entry is queued again */
    pump(a->dv, c);
}

static const char *transport_code(int error)
{
    switch (error) {
    case HR_ETIMEOUT:
        return "timeout";
    case -ECONNREFUSED:
        return "connection_refused";
    case HR_ENOTFOUND:
        return "dns";
    case HR_EREJECTED:
        return "tls";
    case HR_EINVAL:
        return "bad_url";
    default:
        return "network";
    }
}

static void attempt_done(hr_dloop_req_t *req)
{
    hr_attempt_t *a = req->user;
    hr_deliver_t *dv = a->dv;
    hr_consumer_t *c = hr_consumer_ref(a->c);
    const hr_trigger_spec_t *s = a->spec;
    c->in_flight--;
    atomic_fetch_sub(&c->stats->in_flight, 1);
    hr_trace_attempt(dv->o.trace, s->bus, a->e->seq, s->name, a->replay, hr_wall_ns(),
                     (int)req->status, req->latency_us, req->error ? req->error_text : NULL);
    long st = req->status;
    bool ok = req->error == 0 && st >= 200 && st < 300;
    if (ok) {
        success(a);
    } else if (req->error == HR_ECLOSED || hr_consumer_dead(c)) {
        /* shutting down or trigger deleted: leave it for the next start (cursor unchanged) or
         * drop it with its trigger */
        if (req->error == HR_ECLOSED) {
            a->e->state = HR_DE_QUEUED; /* never popped: the cursor stays before it */
            a->e->att = NULL;
            attempt_free(a);
        } else {
            finish(a, HR_TRACE_DROPPED, "trigger deleted");
        }
    } else {
        bool retryable = req->error != 0 || st == 408 || st == 409 || st == 429 || st >= 500;
        char code[32];
        const char *data;
        if (req->error) {
            snprintf(code, sizeof code, "%s", transport_code(req->error));
            data = req->error_text;
        } else {
            snprintf(code, sizeof code, "%ld", st);
            data = req->resp_body.len ? (const char *)req->resp_body.data : "";
        }
        uint64_t now = hr_mono_ns();
        bool too_old = s->max_age_ms && now - a->first_ns >= s->max_age_ms * 1000000ull;
        if (!retryable) {
            dead_letter(a, code, data);
        } else if (a->attempts > s->retry || too_old) {
            dead_letter(a, code, data);
        } else {
            uint64_t d = s->backoff_delay_ms;
            uint32_t n = a->attempts; /* attempts made so far, >= 1 */
            if (s->backoff == HR_BACKOFF_EXPONENTIAL) {
                d = n - 1 >= 40 ? s->max_backoff_ms : d << (n - 1);
            } else {
                d *= n;
            }
            if (s->max_backoff_ms && d > s->max_backoff_ms) {
                d = s->max_backoff_ms;
            }
            d = (uint64_t)((double)d * (0.9 + 0.2 * rand01(dv))); /* ±10% jitter */
            uint64_t ra = retry_after_ms(req->resp_retry_after, hr_wall_ns() / 1000000000ull);
            if (ra > s->retry_after_max_ms) {
                ra = s->retry_after_max_ms;
            }
            if (ra > d) {
                d = ra;
            }
            atomic_fetch_add(&c->stats->retried, 1);
            set_last_error(c->stats, "seq %llu attempt %u: %s%s%.200s",
                           (unsigned long long)a->e->seq, a->attempts, code, *data ? ": " : "",
                           data);
            hr_dloop_timer_start(dv->o.loop, &a->timer, now + d * 1000000ull, retry_timer, a);
        }
    }
    pump(dv, c);
    hr_consumer_unref(c);
}

static void deferred_done(void *arg)
{
    hr_attempt_t *a = arg;
    attempt_done(&a->req);
}

static int build_request(hr_attempt_t *a)
{
    hr_dloop_req_t *r = &a->req;
    if (!a->req_inited) {
        hr_dloop_req_init(r);
        a->req_inited = true;
    } else {
        hr_dloop_req_clear_headers(r);
        hr_dloop_req_reset(r);
        r->body.base = NULL;
        r->body.len = 0;
    }
    r->url = a->spec->sink;
    r->timeout_ms = (uint32_t)a->spec->timeout_ms;
    r->pipeline = (uint16_t)a->spec->pipeline;
    r->done = attempt_done;
    r->user = a;
    int rc;
    if (a->spec->format == HR_FORMAT_STRUCTURED) {
        rc = hr_ce_to_json(a->ev, &a->body);
        rc = rc ? rc
                : hr_dloop_req_add_header(r, "Content-Type",
                                          "application/cloudevents+json; charset=utf-8");
        r->body.base = a->body.data;
        r->body.len = a->body.len;
    } else {
        rc = hr_ce_to_headers(a->ev, add_header_cb, r);
        r->body.base = a->ev->data;
        r->body.len = a->ev->data_len;
    }
    const char *tp = hr_ce_get(a->ev, "traceparent");
    if (tp == NULL) {
        tp = a->ev->trace_gen; /* made at ingress */
    }
    if (rc == 0 && tp) {
        rc = hr_dloop_req_add_header(r, "traceparent", tp);
    }
    for (size_t i = 0; rc == 0 && i < a->spec->n_headers; i++) {
        rc = hr_dloop_req_add_header(r, a->spec->headers[i].name, a->spec->headers[i].value);
    }
    return rc;
}

static void start(hr_deliver_t *dv, hr_consumer_t *c, hr_dentry_t *e, hr_trigger_spec_t *spec)
{
    hr_attempt_t *a = e->att;
    if (a == NULL) {
        if (dv->pool != NULL) {
            a = dv->pool;
            dv->pool = a->next;
            dv->n_pool--;
            a->next = NULL;
        } else {
            a = hr_xcalloc(1, sizeof *a);
        }
        a->dv = dv;
        a->next = dv->attempts;
        if (a->next) {
            a->next->prev = a;
        }
        dv->attempts = a;
        a->c = hr_consumer_ref(c);
        a->e = e;
        a->spec = hr_trigger_spec_ref(spec);
        a->first_ns = hr_mono_ns();
        e->att = a;
        a->replay = c->kind != HR_CONSUMER_LIVE || e->dl_id > 0;
        hr_trace_matched(dv->o.trace, spec->bus, e->seq, spec->name, a->replay);
        if (hr_ce_decode(e->rec, e->rec_len, &a->ev) != 0) {
            e->state = HR_DE_ACTIVE;
            dead_letter(a, "corrupt", "the stored event does not decode");
            return;
        }
    }
    e->state = HR_DE_ACTIVE;
    if (!a->built) {
        if (build_request(a) != 0) {
            dead_letter(a, "bad_event", "the event cannot be sent as HTTP headers");
            return;
        }
        a->built = true;
    }
    int rc = hr_dloop_submit(dv->o.loop, &a->req);
    if (rc == HR_ECLOSED) {
        /* shutting down: leave the entry unsettled for the next start */
        dv->closing = true;
        e->state = HR_DE_QUEUED;
        return;
    }
    a->attempts++;
    c->in_flight++;
    atomic_fetch_add(&c->stats->in_flight, 1);
    if (rc != 0) {
        /* No done() will come. Report the failure through the usual path, but from a posted
         * task: calling attempt_done here would re-enter pump(). */
        a->req.error = rc;
        snprintf(a->req.error_text, sizeof a->req.error_text, "could not start the request: %s",
                 hr_strerror(rc));
        a->task.fn = deferred_done;
        a->task.arg = a;
        if (hr_dloop_post_task(dv->o.loop, &a->task) != 0) {
            dv->closing = true;
        }
    }
}

/* ---- pumping a consumer ---- */

static bool take_token(hr_deliver_t *dv, hr_consumer_t *c, const hr_trigger_spec_t *s);

static void rate_timer(hr_dloop_timer_t *t, void *arg)
{
    (void)t;
    hr_consumer_t *c = arg;
    hr_deliver_t *dv = c->dv;
    for (size_t i = 0; i < dv->n_rate_waiters; i++) {
        if (dv->rate_waiters[i] == c) {
            dv->rate_waiters[i] = dv->rate_waiters[--dv->n_rate_waiters];
            break;
        }
    }
    pump(dv, c);
    hr_consumer_unref(c);
}

static bool take_token(hr_deliver_t *dv, hr_consumer_t *c, const hr_trigger_spec_t *s)
{
    if (s->rate_limit <= 0) {
        return true;
    }
    uint64_t now = hr_mono_ns();
    if (c->tokens_ns == 0) {
        c->tokens = 1;
    } else {
        c->tokens += (double)(now - c->tokens_ns) / 1e9 * s->rate_limit;
        if (c->tokens > 1) {
            c->tokens = 1; /* no bursts: events are spaced 1/rate apart */
        }
    }
    c->tokens_ns = now;
    if (c->tokens >= 1) {
        c->tokens -= 1;
        return true;
    }
    if (!hr_dloop_timer_is_active(&c->rate_timer)) {
        uint64_t wait = (uint64_t)((1 - c->tokens) / s->rate_limit * 1e9) + 1;
        if (dv->n_rate_waiters == dv->cap_rate_waiters) {
            dv->cap_rate_waiters = dv->cap_rate_waiters ? dv->cap_rate_waiters * 2 : 16;
            dv->rate_waiters =
                hr_xrealloc(dv->rate_waiters, dv->cap_rate_waiters * sizeof *dv->rate_waiters);
        }
        dv->rate_waiters[dv->n_rate_waiters++] = hr_consumer_ref(c);
        hr_dloop_timer_start(dv->o.loop, &c->rate_timer, now + wait, rate_timer, c);
    }
    return false;
}

static bool seen_test_and_set(hr_deliver_t *dv, uint64_t key)
{
    size_t mask = dv->seen_cap - 1;
    for (size_t i = (size_t)(key ^ (key >> 29)) & mask;; i = (i + 1) & mask) {
        if (dv->seen[i].gen != dv->seen_gen) {
            dv->seen[i].gen = dv->seen_gen;
            dv->seen[i].key = key;
            return false;
        }
        if (dv->seen[i].key == key) {
            return true;
        }
    }
}

static void drop_queued(hr_deliver_t *dv, hr_consumer_t *c, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
        if (e->state == HR_DE_QUEUED && e->att == NULL) {
            e->state = HR_DE_DONE;
        } else if (e->state == HR_DE_QUEUED && e->att) {
            finish(e->att, HR_TRACE_DROPPED, "trigger deleted");
        }
    }
    (void)dv;
}

static void pump(hr_deliver_t *dv, hr_consumer_t *c)
{
    if (dv->closing) {
        return;
    }
    hr_trigger_spec_t *s = hr_consumer_spec(c);
    pthread_mutex_lock(&c->mu);
    uint32_t n = c->count;
    bool dead = c->dead;
    pthread_mutex_unlock(&c->mu);
    if (dead) {
        drop_queued(dv, c, n);
    } else if (s->ordering == HR_ORDERING_NONE) {
        while (c->first_queued < n &&
               c->ring[(c->head + c->first_queued) % c->cap]->state != HR_DE_QUEUED) {
            c->first_queued++;
        }
        for (uint32_t i = c->first_queued; i < n && c->in_flight < s->max_in_flight; i++) {
            hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
            if (e->state != HR_DE_QUEUED) {
                continue;
            }
            if (!take_token(dv, c, s)) {
                break;
            }
            start(dv, c, e, s);
            if (dv->closing) {
                break;
            }
        }
    } else {
        size_t need = 16;
        while (need < (size_t)n * 2) {
            need *= 2;
        }
        if (dv->seen_cap < need) {
            free(dv->seen);
            dv->seen = hr_xcalloc(need, sizeof *dv->seen);
            dv->seen_cap = need;
            dv->seen_gen = 0;
        }
        if (++dv->seen_gen == 0) {
            memset(dv->seen, 0, dv->seen_cap * sizeof *dv->seen);
            dv->seen_gen = 1;
        }
        for (uint32_t i = 0; i < n && c->in_flight < s->max_in_flight; i++) {
            hr_dentry_t *e = c->ring[(c->head + i) % c->cap];
            if (e->state == HR_DE_DONE) {
                continue;
            }
            if (e->keyed && seen_test_and_set(dv, e->key)) {
                continue; /* an earlier event of this key is not settled yet */
            }
            if (e->state == HR_DE_QUEUED) {
                if (!take_token(dv, c, s)) {
                    break;
                }
                start(dv, c, e, s);
                if (dv->closing) {
                    break;
                }
            }
        }
    }
    hr_consumer_pop_settled(c);
    pthread_mutex_lock(&c->mu);
    bool full = c->count == c->cap || c->bytes >= c->max_bytes;
    pthread_mutex_unlock(&c->mu);
    if (full && !dead && hr_consumer_compact(c) && !dv->closing) {
        /* room again: entries behind a held-up head can be started now */
        hr_deliver_kick(dv, c);
    }
    hr_trigger_spec_unref(s);
    if (c->kind != HR_CONSUMER_LIVE && hr_consumer_finished(c) && dv->o.finished) {
        dv->o.finished(dv->o.finished_arg, c);
    }
}

static void kick_on_loop(void *arg)
{
    hr_consumer_t *c = arg;
    atomic_store(&c->kick_posted, false);
    pump(c->dv, c);
    hr_consumer_unref(c);
}

void hr_deliver_kick(void *arg, hr_consumer_t *c)
{
    (void)arg;
    if (atomic_exchange(&c->kick_posted, true)) {
        return;
    }
    hr_consumer_ref(c);
    c->kick_task.fn = kick_on_loop;
    c->kick_task.arg = c;
    if (hr_dloop_post_task(c->dv->o.loop, &c->kick_task) != 0) {
        atomic_store(&c->kick_posted, false);
        hr_consumer_unref(c);
    }
}

void hr_deliver_create(const hr_deliver_opts_t *opts, hr_deliver_t **out)
{
    hr_deliver_t *dv = hr_xcalloc(1, sizeof *dv);
    dv->o = *opts;
    if (dv->o.max_hops == 0) {
        dv->o.max_hops = 8;
    }
    dv->rng = hr_mono_ns() | 1;
    atomic_init(&dv->pubs_in_flight, 0);
    *out = dv;
}

void hr_deliver_destroy(hr_deliver_t *dv)
{
    if (dv == NULL) {
        return;
    }
    /* The loop has stopped: nothing here can fire any more. Free what was left waiting
     * (retry timers, dead letters being written, sends to dead-letter sinks); the entries stay
     * unsettled, so their events are delivered again after the next start. */
    dv->destroying = true; /* attempts freed from here on are not pooled */
    for (int i = 0; i < 5000 && atomic_load(&dv->pubs_in_flight) > 0; i++) {
        usleep(1000); /* replies being committed: their buses call back within a group commit */
    }
    while (dv->attempts) {
        hr_attempt_t *a = dv->attempts;
        a->e->att = NULL;
        attempt_free(a);
    }
    while (dv->sends) {
        dls_free(dv->sends);
    }
    while (dv->pool) {
        hr_attempt_t *a = dv->pool;
        dv->pool = a->next;
        hr_dloop_req_free(&a->req);
        hr_buf_free(&a->body);
        hr_buf_free(&a->reply_enc);
        free(a);
    }
    for (size_t i = 0; i < dv->n_rate_waiters; i++) {
        hr_consumer_unref(dv->rate_waiters[i]);
    }
    free(dv->rate_waiters);
    free(dv->seen);
    free(dv);
}
