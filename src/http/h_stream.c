/* SPDX-License-Identifier: MIT */
/*
 * Server-Sent Events: GET /v1/buses/{bus}/stream.
 *
 * A stream holds only its position (next seq) and one refill buffer, so a slow reader costs
 * bounded memory whatever the bus's rate. The server calls reader() on its worker thread when
 * the socket can take more bytes; with nothing to send, reader() marks the stream suspended
 * and returns HR_HTTP_STREAM_WAIT. It is woken (hr_http_stream_wake) by a commit on the bus (watch
 * callback, on the commit thread), by the heartbeat thread (every second, to send a heartbeat
 * comment after heartbeat_s of silence), or at shutdown / bus deletion.
 *
 * No lost wake-up: the reader checks the bus's last committed seq and sets `suspended` under
 * `mu`; the log publishes a new last seq before it calls the watchers, which take `mu` too.
 */
#include "ce/event.h"
#include "filter/cesql.h"
#include "http/routes.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sse {
    hr_bus_watch_t watch;    /* in the bus's watcher list */
    hr_http_stream_t stream; /* in the server's stream list */
    hr_http_t *srv;
    hr_bus_t *bus;
    hr_http_req_t *req;
    pthread_mutex_t mu;
    bool suspended;
    bool closing;
    uint64_t next_seq;
    uint64_t last_send_ns;
    uint64_t heartbeat_ns;
    hr_cesql_t *filter; /* ?filter=, or NULL */
    hr_buf_t out;       /* formatted, not yet sent */
    size_t out_off;
    hr_log_batch_t batch;
} sse_t;

#define SSE_FROM_WATCH(w) ((sse_t *)((char *)(w)-offsetof(sse_t, watch)))
#define SSE_FROM_STREAM(s) ((sse_t *)((char *)(s)-offsetof(sse_t, stream)))

static void resume_locked(sse_t *s)
{
    if (s->suspended) {
        s->suspended = false;
        hr_http_stream_wake(s->req);
    }
}

static void on_commit(hr_bus_watch_t *w)
{
    sse_t *s = SSE_FROM_WATCH(w);
    pthread_mutex_lock(&s->mu);
    resume_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_poke(hr_http_stream_t *st, bool closing)
{
    sse_t *s = SSE_FROM_STREAM(st);
    pthread_mutex_lock(&s->mu);
    if (closing) {
        s->closing = true;
    }
    if (closing || hr_mono_ns() - s->last_send_ns >= s->heartbeat_ns || hr_bus_deleted(s->bus)) {
        resume_locked(s);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Formats the next events (or a heartbeat) into s->out. Returns bytes formatted, 0 if none. */
static int refill(sse_t *s)
{
    hr_buf_reset(&s->out);
    s->out_off = 0;
    if (hr_log_read(hr_bus_log(s->bus), s->next_seq, 256, 1u << 20, &s->batch) != 0) {
        return -1;
    }
    if (s->batch.n == 0) {
        return 0;
    }
    for (size_t i = 0; i < s->batch.n; i++) {
        const hr_log_entry_t *e = &s->batch.ents[i];
        s->next_seq = e->seq + 1;
        if (s->filter) {
            hr_ce_event_t *ev = NULL;
            bool m = hr_ce_decode(e->payload, e->len, &ev) == 0 && hr_cesql_match(s->filter, ev);
            hr_ce_event_free(ev);
            if (!m) {
                continue;
            }
        }
        hr_buf_printf(&s->out, "id: %llu\nevent: cloudevent\ndata: ", (unsigned long long)e->seq);
        if (hr_bus_envelope_json(e, &s->out) != 0) {
            return -1;
        }
        hr_buf_puts(&s->out, "\n\n");
    }
    /* > 0 also when a filter let nothing through: the position moved, so read on */
    return s->out.len ? (int)s->out.len : 1;
}

static long reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_t *s = cls;
    for (;;) {
        if (s->out_off < s->out.len) {
            size_t n = s->out.len - s->out_off;
            if (n > max) {
                n = max;
            }
            memcpy(buf, s->out.data + s->out_off, n);
            s->out_off += n;
            s->last_send_ns = hr_mono_ns();
            return (long)n;
        }
        pthread_mutex_lock(&s->mu);
        bool closing = s->closing || hr_bus_deleted(s->bus);
        pthread_mutex_unlock(&s->mu);
        if (closing) {
            return HR_HTTP_STREAM_END;
        }
        int n = refill(s);
        if (n < 0) {
            return HR_HTTP_STREAM_END;
        }
        if (n > 0) {
            continue; /* send what was formatted, or read on past filtered-out events */
        }
        if (hr_mono_ns() - s->last_send_ns >= s->heartbeat_ns) {
            hr_buf_puts(&s->out, ": heartbeat\n\n");
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (!s->closing && hr_bus_last_seq(s->bus) < s->next_seq && !hr_bus_deleted(s->bus)) {
            s->suspended = true;
            pthread_mutex_unlock(&s->mu);
            return HR_HTTP_STREAM_WAIT;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void sse_free(void *cls)
{
    sse_t *s = cls;
    hr_bus_watch_remove(s->bus, &s->watch);
    hr_http_stream_remove(s->srv, &s->stream);
    hr_bus_release(s->bus);
    hr_cesql_destroy(s->filter);
    hr_buf_free(&s->out);
    hr_log_batch_free(&s->batch);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void hr_h_stream(hr_http_req_t *req)
{
    static const char *const allowed[] = {"from", "from_time", "filter", NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", name);
        return;
    }
    uint64_t from;
    const char *last_id = hr_http_header(req, "Last-Event-ID");
    if (hr_http_query(req, "from") || hr_http_query(req, "from_time")) {
        if (!hr__read_start(req, bus, &from)) {
            hr_bus_release(bus);
            return;
        }
    } else if (last_id) {
        if (!hr__parse_seq(last_id, &from) && strcmp(last_id, "0") != 0) {
            hr_http_error(req, 400, "Last-Event-ID",
                          "Last-Event-ID must be the seq of the last event received, got \"%s\"",
                          last_id);
            hr_bus_release(bus);
            return;
        }
        from = strcmp(last_id, "0") == 0 ? 1 : from + 1;
    } else {
        from = hr_bus_last_seq(bus) + 1;
    }
    hr_cesql_t *filter = NULL;
    if (!hr__read_filter(req, &filter)) {
        hr_bus_release(bus);
        return;
    }
    sse_t *s = hr_xcalloc(1, sizeof *s);
    s->filter = filter;
    s->srv = hr_http_server(req);
    s->bus = bus;
    s->req = req;
    s->next_seq = from;
    s->heartbeat_ns = (uint64_t)hr_http_opts(req)->heartbeat_s * 1000000000ull;
    s->last_send_ns = hr_mono_ns();
    pthread_mutex_init(&s->mu, NULL);
    s->watch.wake = on_commit;
    s->stream.poke = on_poke;
    /* An initial comment makes clients see the stream open at once. */
    hr_buf_puts(&s->out, ": herald stream\n\n");
    hr_bus_watch_add(bus, &s->watch);
    hr_http_stream_add(s->srv, &s->stream);
    hr_http_reply_stream(req, "text/event-stream", reader, s, sse_free);
}
