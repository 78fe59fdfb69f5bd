/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the CloudEvents codecs. The input is decoded as a structured event, as
 * a batch, and as a binary-mode request (the first line is a header value used for ce-subject
 * and, after a second newline, the Content-Type; the rest is the body). Every decoded event
 * must survive, identically: hr_ce_encode -> hr_ce_decode, hr_ce_to_json ->
 * hr_ce_from_structured, and (for binary-mode events) hr_ce_to_headers -> hr_ce_from_binary.
 * Any mismatch aborts.
 */
#include "ce/event.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "ce_fuzz: %s\n", what);
        abort();
    }
}

/* JSON encoding drops insignificant whitespace around JSON data (kept byte for byte from a
 * binary-mode body); compare modulo that. */
static int equal_modulo_ws(const hr_ce_event_t *a, const hr_ce_event_t *b)
{
    if (a->data_kind != HR_CE_DATA_JSON) {
        return hr_ce_event_equal(a, b);
    }
    hr_ce_event_t *c;
    if (hr_ce_event_clone(a, &c) != 0) {
        return 1;
    }
    size_t s = 0, e = c->data_len;
    while (s < e && strchr(" \t\r\n", c->data[s]) != NULL) {
        s++;
    }
    while (e > s && strchr(" \t\r\n", c->data[e - 1]) != NULL) {
        e--;
    }
    memmove(c->data, c->data + s, e - s);
    c->data_len = e - s;
    int eq = hr_ce_event_equal(c, b);
    hr_ce_event_free(c);
    return eq;
}

typedef struct hdrs {
    char *name[64];
    char *value[64];
    hr_ce_header_t h[64];
    size_t n;
    const char *ct;
} hdrs_t;

static int collect(void *arg, const char *name, const char *value)
{
    hdrs_t *c = arg;
    if (c->n == 64) {
        return HR_ENOMEM;
    }
    c->name[c->n] = strdup(name);
    c->value[c->n] = strdup(value);
    c->h[c->n] = (hr_ce_header_t){c->name[c->n], c->value[c->n]};
    if (strcmp(name, "Content-Type") == 0) {
        c->ct = c->value[c->n];
    }
    c->n++;
    return 0;
}

static void roundtrips(const hr_ce_event_t *ev, int from_binary)
{
    hr_ce_error_t err;
    check(hr_ce_validate(ev, &err) == 0, "a decoded event does not validate");
    hr_buf_t b = HR_BUF_INIT;
    hr_ce_event_t *back = NULL;
    check(hr_ce_encode(ev, &b) == 0, "encode failed");
    check(hr_ce_decode(b.data, b.len, &back) == 0, "decode of an encoded record failed");
    check(hr_ce_event_equal(ev, back), "record round trip differs");
    hr_ce_event_free(back);
    hr_buf_reset(&b);
    check(hr_ce_to_json(ev, &b) == 0, "to_json failed");
    int rc = hr_ce_from_structured(b.data, b.len, &back, &err);
    if (rc != 0) {
        fprintf(stderr, "%s\n%s\n", (char *)b.data, err.msg);
    }
    check(rc == 0, "to_json output does not parse");
    check(equal_modulo_ws(ev, back), "JSON round trip differs");
    hr_ce_event_free(back);
    hr_buf_free(&b);
    if (from_binary) {
        hdrs_t c = {0};
        check(hr_ce_to_headers(ev, collect, &c) == 0, "to_headers failed");
        rc = hr_ce_from_binary(c.h, c.n, c.ct, ev->data, ev->data_len, &back, &err);
        check(rc == 0, "to_headers output does not decode");
        check(hr_ce_event_equal(ev, back), "headers round trip differs");
        hr_ce_event_free(back);
        for (size_t i = 0; i < c.n; i++) {
            free(c.name[i]);
            free(c.value[i]);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hr_ce_error_t err;
    hr_ce_event_t *ev = NULL;
    if (hr_ce_from_structured(data, size, &ev, &err) == 0) {
        roundtrips(ev, 0);
        hr_ce_event_free(ev);
    } else {
        check(ev == NULL, "structured error left an event");
    }
    hr_ce_event_t **evs = NULL;
    size_t n = 0;
    if (hr_ce_from_batch(data, size, &evs, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            roundtrips(evs[i], 0);
        }
        hr_ce_events_free(evs, n);
    } else {
        check(evs == NULL && n == 0, "batch error left events");
    }
    /* binary mode: "subject\ncontent-type\nbody" */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t l1 = nl ? (size_t)(nl - data) : size;
    const uint8_t *rest = nl ? nl + 1 : data + size;
    size_t rlen = size - (size_t)(rest - data);
    const uint8_t *nl2 = memchr(rest, '\n', rlen);
    size_t l2 = nl2 ? (size_t)(nl2 - rest) : rlen;
    const uint8_t *body = nl2 ? nl2 + 1 : rest + rlen;
    size_t blen = size - (size_t)(body - data);
    char *subject = strndup((const char *)data, l1);
    char *ct = strndup((const char *)rest, l2);
    if (subject != NULL && ct != NULL && strlen(subject) == l1) {
        hr_ce_header_t h[] = {{"ce-specversion", "1.0"},
                              {"ce-id", "1"},
                              {"ce-source", "/s"},
                              {"ce-type", "t"},
                              {"CE-Subject", subject}};
        if (hr_ce_from_binary(h, 5, strlen(ct) == l2 ? ct : NULL, body, blen, &ev, &err) == 0) {
            roundtrips(ev, 1);
            hr_ce_event_free(ev);
        }
    }
    free(subject);
    free(ct);
    return 0;
}
