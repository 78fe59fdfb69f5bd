/* SPDX-License-Identifier: MIT */
/*
 * The compact binary encoding of one event, as stored in the bus log (the log adds its own
 * length, CRC32C, seq and ingest time around it; see src/log/). Written by the commit path and
 * read by the dispatcher and readers on their threads; reentrant, no global state.
 *
 * Layout, version 1 (all integers are unsigned LEB128 varints: 7 bits per byte, least
 * significant group first, high bit set on every byte but the last, at most 10 bytes, the
 * value must fit in 64 bits; a "str" is a varint byte length followed by that many bytes,
 * no NUL, no embedded NUL):
 *
 *     u8       version          = 1
 *     u8       present          bit 0 datacontenttype, 1 dataschema, 2 subject, 3 time,
 *                               4 trace_gen (herald's own traceparent); bits 5-7 zero
 *     u8       data_kind        hr_ce_data_kind_t (0 none, 1 JSON, 2 text, 3 binary)
 *     str      specversion, id, source, type
 *     str      datacontenttype, dataschema, subject, time   (each only if its bit is set)
 *     str      trace_gen        only if bit 4 is set
 *     varint   n_exts
 *     n_exts × { u8 kind (hr_ce_kind_t 0-2); str name; str value }
 *     str      data             only if data_kind != 0 (may be empty)
 *
 * Invariants checked by the decoder (anything else is HR_ECORRUPT, never a crash):
 *   1. every length lies within the remaining bytes, and the record ends exactly after the
 *      last field (no trailing bytes);
 *   2. strings contain no NUL byte (attributes are C strings; data may contain NUL);
 *   3. extension names are strictly increasing (sorted, unique), as in hr_ce_event_t;
 *   4. version, present bits and kinds hold known values.
 * The decoder does not re-run hr_ce_validate: records were validated on ingest and the log's
 * CRC protects them; these checks only keep a damaged record from breaking the event model.
 * A future version 2 adds a new version byte; decoders keep reading version 1.
 */
#include "ce/event_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1

static int put_varint(hr_buf_t *out, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return hr_buf_append(out, b, n);
}

static int put_bytes(hr_buf_t *out, const void *p, size_t len)
{
    int rc = put_varint(out, len);
    return rc != 0 ? rc : hr_buf_append(out, p, len);
}

static int put_str(hr_buf_t *out, const char *s)
{
    return put_bytes(out, s, strlen(s));
}

int hr_ce_encode(const hr_ce_event_t *ev, hr_buf_t *out)
{
    size_t start = out->len;
    uint8_t present = 0;
    int rc;
    for (int a = HR_CE_A_DATACONTENTTYPE; a < HR_CE_A_COUNT; a++) {
        if (*hr__ce_attr_slot((hr_ce_event_t *)ev, a) != NULL) {
            present |= (uint8_t)(1u << (a - HR_CE_A_DATACONTENTTYPE));
        }
    }
    if (ev->specversion == NULL || ev->id == NULL || ev->source == NULL || ev->type == NULL ||
        (unsigned)ev->data_kind > HR_CE_DATA_BINARY) {
        return HR_EINVAL;
    }
    if (ev->trace_gen != NULL) {
        present |= 0x10;
    }
    uint8_t head[3] = {RECORD_VERSION, present, (uint8_t)ev->data_kind};
    if ((rc = hr_buf_append(out, head, sizeof head)) != 0) {
        goto fail;
    }
    for (int a = 0; a < HR_CE_A_COUNT; a++) {
        const char *v = *hr__ce_attr_slot((hr_ce_event_t *)ev, a);
        if (v != NULL && (rc = put_str(out, v)) != 0) {
            goto fail;
        }
    }
    if (ev->trace_gen != NULL && (rc = put_str(out, ev->trace_gen)) != 0) {
        goto fail;
    }
    if ((rc = put_varint(out, ev->n_exts)) != 0) {
        goto fail;
    }
    for (size_t i = 0; i < ev->n_exts; i++) {
        uint8_t kind = (uint8_t)ev->exts[i].kind;
        if ((rc = hr_buf_append(out, &kind, 1)) != 0 ||
            (rc = put_str(out, ev->exts[i].name)) != 0 ||
            (rc = put_str(out, ev->exts[i].value)) != 0) {
            goto fail;
        }
    }
    if (ev->data_kind != HR_CE_DATA_NONE && (rc = put_bytes(out, ev->data, ev->data_len)) != 0) {
        goto fail;
    }
    return 0;
fail:
    out->len = start;
    if (out->data != NULL) {
        out->data[start] = '\0';
    }
    return rc;
}

typedef struct rd {
    const uint8_t *p;
    size_t len, i;
} rd_t;

static int get_varint(rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->i >= r->len) {
            return HR_ECORRUPT;
        }
        uint8_t b = r->p[r->i++];
        if (shift == 63 && b > 1) {
            return HR_ECORRUPT; /* more than 64 bits */
        }
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return HR_ECORRUPT;
}

/* Reads a length-prefixed byte string, returning a pointer into the record. */
static int get_span(rd_t *r, const uint8_t **p, size_t *n)
{
    uint64_t len;
    if (get_varint(r, &len) != 0 || len > r->len - r->i) {
        return HR_ECORRUPT;
    }
    *p = r->p + r->i;
    *n = (size_t)len;
    r->i += (size_t)len;
    return 0;
}

/* Reads a str into a fresh C string. */
static int get_str(rd_t *r, char **out)
{
    const uint8_t *p;
    size_t n;
    if (get_span(r, &p, &n) != 0 || memchr(p, 0, n) != NULL) {
        return HR_ECORRUPT;
    }
    if ((*out = hr__ce_strndup((const char *)p, n)) == NULL) {
        return HR_ENOMEM;
    }
    return 0;
}

int hr_ce_decode(const uint8_t *p, size_t len, hr_ce_event_t **out)
{
    rd_t r = {.p = p, .len = len, .i = 3};
    int rc = HR_ECORRUPT;
    *out = NULL;
    if (len < 3 || p[0] != RECORD_VERSION || (p[1] & 0xE0) != 0 || p[2] > HR_CE_DATA_BINARY) {
        return HR_ECORRUPT;
    }
    hr_ce_event_t *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        return HR_ENOMEM;
    }
    ev->data_kind = (hr_ce_data_kind_t)p[2];
    for (int a = 0; a < HR_CE_A_COUNT; a++) {
        if (a >= HR_CE_A_DATACONTENTTYPE && !(p[1] & (1u << (a - HR_CE_A_DATACONTENTTYPE)))) {
            continue;
        }
        if ((rc = get_str(&r, hr__ce_attr_slot(ev, a))) != 0) {
            goto fail;
        }
    }
    if ((p[1] & 0x10) && (rc = get_str(&r, &ev->trace_gen)) != 0) {
        goto fail;
    }
    uint64_t n_exts;
    /* each extension takes at least 3 bytes, which bounds the allocation by the input */
    if ((rc = get_varint(&r, &n_exts)) != 0 || n_exts > (r.len - r.i) / 3) {
        rc = HR_ECORRUPT;
        goto fail;
    }
    if (n_exts > 0 && (ev->exts = calloc((size_t)n_exts, sizeof *ev->exts)) == NULL) {
        rc = HR_ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n_exts; k++) {
        if (r.i >= r.len || r.p[r.i] > HR_CE_BOOL) {
            rc = HR_ECORRUPT;
            goto fail;
        }
        hr_ce_ext_t *x = &ev->exts[ev->n_exts++];
        x->kind = (hr_ce_kind_t)r.p[r.i++];
        if ((rc = get_str(&r, &x->name)) != 0 || (rc = get_str(&r, &x->value)) != 0) {
            goto fail;
        }
        if (x->name[0] == '\0' || (k > 0 && strcmp(ev->exts[k - 1].name, x->name) >= 0)) {
            rc = HR_ECORRUPT;
            goto fail;
        }
    }
    if (ev->data_kind != HR_CE_DATA_NONE) {
        const uint8_t *d;
        size_t n;
        if ((rc = get_span(&r, &d, &n)) != 0) {
            goto fail;
        }
        /* one spare NUL byte so that text and JSON data can be read as C strings */
        if ((ev->data = malloc(n + 1)) == NULL) {
            rc = HR_ENOMEM;
            goto fail;
        }
        memcpy(ev->data, d, n);
        ev->data[n] = '\0';
        ev->data_len = n;
    }
    if (r.i != r.len) {
        rc = HR_ECORRUPT;
        goto fail;
    }
    *out = ev;
    return 0;
fail:
    hr_ce_event_free(ev);
    return rc;
}
