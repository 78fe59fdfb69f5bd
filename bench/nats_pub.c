/* SPDX-License-Identifier: MIT */
/* nats_pub: NATS JetStream publish with acks, the peer for Herald's batched ingest.
 *
 *   nats_pub --url nats://127.0.0.1:PORT [--seconds S] [--sync-seconds S2] [--size BYTES]
 *            [--window N] [--msgid]
 *
 * Creates (or reuses) a file-backed stream BENCH on subjects `bench.>`, then:
 *  1. async: js_PublishMsgAsync of SIZE-byte messages for S seconds with at most N
 *     (default 1000) unacknowledged publishes in flight, then js_PublishAsyncComplete;
 *     the rate counts acknowledged messages over the time to the last ack. Latency is
 *     publish-call to ack (the send time rides in the payload).
 *  2. sync: js_Publish (one at a time, waits for each ack) for S2 seconds: latency p50/p99.
 * --msgid adds a unique Nats-Msg-Id to every message (JetStream then dedups, as Herald does).
 * Prints parseable lines:
 *   RESULT case=nats_async msgs=N secs=T ops_per_s=R mb_per_s=M p50_us=A p99_us=B errors=E
 *   RESULT case=nats_sync  msgs=N secs=T ops_per_s=R p50_us=A p99_us=B errors=E */
#define _GNU_SOURCE
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"

static hist_t g_async_hist;
static uint64_t g_acked, g_errors;

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)closure;
    if (pa && !pae) {
        const char *d = natsMsg_GetData(msg);
        /* payload starts with {"t":<20 digits>, */
        uint64_t sent = strtoull(d + 5, NULL, 10);
        hist_add(&g_async_hist, (now_ns() - sent) / 1000u);
        __atomic_add_fetch(&g_acked, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
    }
    natsMsg_Destroy(msg);
}

static void fail(const char *what, natsStatus s)
{
    fprintf(stderr, "nats_pub: %s: %s\n", what, natsStatus_GetText(s));
    nats_PrintLastErrorStack(stderr);
    exit(1);
}

/* {"t":00000000000000000000,"pad":"xxxx…"} padded to exactly size bytes. */
static char *make_payload(int size)
{
    char *p = malloc((size_t)size + 1);
    if (!p)
        exit(1);
    int n = snprintf(p, (size_t)size + 1, "{\"t\":%020llu,\"pad\":\"", 0ull);
    memset(p + n, 'x', (size_t)(size - n - 2));
    p[size - 2] = '"';
    p[size - 1] = '}';
    p[size] = 0;
    return p;
}

static void stamp(char *p, uint64_t t)
{
    char num[21];
    snprintf(num, sizeof num, "%020llu", (unsigned long long)t);
    memcpy(p + 5, num, 20);
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    double seconds = 10, sync_seconds = 3;
    int size = 1024, window = 1000, msgid = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--msgid")) {
            msgid = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "nats_pub: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--url"))
            url = v;
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--sync-seconds"))
            sync_seconds = atof(v);
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--window"))
            window = atoi(v);
        else {
            fprintf(stderr, "nats_pub: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!url || size < 64 || size > (1 << 20) || window < 1 || seconds <= 0) {
        fprintf(stderr, "usage: nats_pub --url URL [--seconds S] [--sync-seconds S] [--size B] "
                        "[--window N] [--msgid]\n");
        return 2;
    }

    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s != NATS_OK)
        fail("connect", s);

    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.StallWait = 10000; /* block (up to 10 s) while the window is full */
    jo.Wait = 10000;
    s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK)
        fail("jetstream context", s);

    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"bench.>"};
    sc.Name = "BENCH";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_AddStream(&si, js, &sc, NULL, &jerr);
    if (s != NATS_OK)
        fail("add stream", s);
    jsStreamInfo_Destroy(si);

    char *payload = make_payload(size);
    char idbuf[64];
    jsPubOptions po;
    jsPubOptions_Init(&po);

    /* 1. async with a window. */
    hist_init(&g_async_hist);
    uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(seconds * 1e9), sent = 0;
    const uint64_t max_msgs = 100000000; /* bound */
    while (sent < max_msgs) {
        if ((sent & 63) == 0 && now_ns() >= deadline)
            break;
        stamp(payload, now_ns());
        natsMsg *m = NULL;
        s = natsMsg_Create(&m, "bench.async", NULL, payload, size);
        if (s != NATS_OK)
            fail("msg create", s);
        if (msgid) {
            snprintf(idbuf, sizeof idbuf, "a-%llu", (unsigned long long)sent);
            po.MsgId = idbuf;
        }
        s = js_PublishMsgAsync(js, &m, msgid ? &po : NULL);
        natsMsg_Destroy(m);
        if (s != NATS_OK) {
            __atomic_add_fetch(&g_errors, 1, __ATOMIC_RELAXED);
            if (s != NATS_TIMEOUT)
                fail("publish async", s);
            continue;
        }
        sent++;
    }
    jsPubOptions done;
    jsPubOptions_Init(&done);
    done.MaxWait = 30000;
    s = js_PublishAsyncComplete(js, &done);
    if (s != NATS_OK)
        fail("publish async complete", s);
    uint64_t t1 = now_ns();
    double secs = (double)(t1 - t0) / 1e9;
    uint64_t acked = __atomic_load_n(&g_acked, __ATOMIC_RELAXED);
    printf("RESULT case=nats_async msgs=%llu secs=%.3f ops_per_s=%.1f mb_per_s=%.2f p50_us=%llu "
           "p99_us=%llu errors=%llu window=%d msgid=%d\n",
           (unsigned long long)acked, secs, acked / secs, (double)acked * size / secs / 1e6,
           (unsigned long long)hist_quantile(&g_async_hist, 0.50),
           (unsigned long long)hist_quantile(&g_async_hist, 0.99),
           (unsigned long long)__atomic_load_n(&g_errors, __ATOMIC_RELAXED), window, msgid);
    fflush(stdout);

    /* 2. sync, one at a time. */
    if (sync_seconds > 0) {
        hist_t *h = malloc(sizeof *h);
        if (!h)
            exit(1);
        hist_init(h);
        uint64_t errors = 0, n = 0, t = now_ns(), s0 = t, end = t + (uint64_t)(sync_seconds * 1e9);
        while (t < end && n < max_msgs) {
            if (msgid) {
                snprintf(idbuf, sizeof idbuf, "s-%llu", (unsigned long long)n);
                po.MsgId = idbuf;
            }
            jsPubAck *pa = NULL;
            s = js_Publish(&pa, js, "bench.sync", payload, size, msgid ? &po : NULL, &jerr);
            uint64_t t2 = now_ns();
            if (s == NATS_OK) {
                hist_add(h, (t2 - t) / 1000u);
                n++;
            } else {
                errors++;
            }
            jsPubAck_Destroy(pa);
            t = t2;
        }
        secs = (double)(t - s0) / 1e9;
        printf("RESULT case=nats_sync msgs=%llu secs=%.3f ops_per_s=%.1f p50_us=%llu p99_us=%llu "
               "errors=%llu\n",
               (unsigned long long)n, secs, n / secs, (unsigned long long)hist_quantile(h, 0.50),
               (unsigned long long)hist_quantile(h, 0.99), (unsigned long long)errors);
        free(h);
    }

    free(payload);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
