/* SPDX-License-Identifier: MIT */
/*
 * The content-pattern matcher: evaluates one condition against one value, a leaf (a list of
 * conditions) against a JSON value with arrays flattened, and a pattern object against a JSON
 * value with array consistency; plus the text helpers the compiler shares (case folding, CIDR
 * parsing). The semantics are documented in pattern.c.
 *
 * Runs on dispatcher threads (through hr_pattern_match) and in tests; everything here is pure,
 * reads only immutable compiled patterns and borrowed values, never allocates, and recurses at
 * most HR_PATTERN_MAX_DEPTH pattern levels times HR_PATTERN_MAX_ARRAY_DEPTH array levels.
 */
#include <arpa/inet.h>
#include <string.h>

#include "filter/pattern_int.h"
#include "util/utf8.h"

/* ---- case folding ---- */

/* Simple (one code point to one code point) lower-case folding for the scripts with case that
 * most events use: ASCII, Latin-1, Latin Extended-A, Latin Extended Additional, Greek,
 * Cyrillic, Armenian, the Kelvin and Angstrom signs and full-width Latin. Other code points
 * fold to themselves; multi-character foldings (German sharp s to "ss") are not done. */
static uint32_t fold_cp(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    if (c < 0x100) {
        if (c == 0xB5) {
            return 0x3BC; /* micro sign -> Greek mu */
        }
        return (c >= 0xC0 && c <= 0xDE && c != 0xD7) ? c + 32 : c;
    }
    if (c < 0x180) {
        if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) {
            return c; /* dotted I, dotless i, kra, 'n: no simple folding kept here */
        }
        if (c == 0x178) {
            return 0xFF;
        }
        if (c == 0x17F) {
            return 's';
        }
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) {
            return (c & 1) ? c + 1 : c;
        }
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x370 && c < 0x400) {
        if (c == 0x386) {
            return 0x3AC;
        }
        if (c >= 0x388 && c <= 0x38A) {
            return c + 37;
        }
        if (c == 0x38C) {
            return 0x3CC;
        }
        if (c == 0x38E || c == 0x38F) {
            return c + 63;
        }
        if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) {
            return c + 32;
        }
        return c == 0x3C2 ? 0x3C3 : c; /* final sigma folds to sigma */
    }
    if (c >= 0x400 && c < 0x530) {
        if (c <= 0x40F) {
            return c + 80;
        }
        if (c <= 0x42F) {
            return c + 32;
        }
        if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || c >= 0x4D0) {
            return (c & 1) ? c : c + 1;
        }
        if (c >= 0x4C1 && c <= 0x4CE) {
            return (c & 1) ? c + 1 : c;
        }
        return c;
    }
    if (c >= 0x531 && c <= 0x556) {
        return c + 48;
    }
    if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF)) {
        return (c & 1) ? c : c + 1;
    }
    if (c == 0x1E9E) {
        return 0xDF; /* capital sharp s -> sharp s */
    }
    if (c == 0x212A) {
        return 'k';
    }
    if (c == 0x212B) {
        return 0xE5;
    }
    if (c >= 0xFF21 && c <= 0xFF3A) {
        return c + 32;
    }
    return c;
}

/* Decodes the character at s[i] (i < len), folds it into out[4] and returns the folded byte
 * length; *step is the number of input bytes consumed. Bytes that are not valid UTF-8 (not
 * expected: JSON strings and attributes are validated) pass through one at a time. */
static size_t fold_one(const char *s, size_t len, size_t i, uint8_t out[4], size_t *step)
{
    uint32_t cp;
    size_t n = hr_utf8_decode((const uint8_t *)s + i, len - i, &cp);
    if (n == 0) {
        out[0] = (uint8_t)s[i];
        *step = 1;
        return 1;
    }
    *step = n;
    size_t m = hr_utf8_encode(fold_cp(cp), out);
    if (m == 0) { /* cannot happen for the mappings above; keep the original bytes */
        memcpy(out, s + i, n);
        m = n;
    }
    return m;
}

size_t hr__pattern_fold(const char *s, size_t len, char *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t b[4];
        size_t step, m = fold_one(s, len, i, b, &step);
        memcpy(out + o, b, m);
        o += m;
        i += step;
    }
    return o;
}

/* Does the folded form of value v[0..vlen) start with (prefix) or equal (whole) the already
 * folded f[0..flen)? Folds on the fly, without a buffer. */
static bool folded_prefix(const char *v, size_t vlen, const char *f, size_t flen, bool whole)
{
    size_t i = 0, j = 0;
    while (j < flen) {
        if (i >= vlen) {
            return false;
        }
        uint8_t b[4];
        size_t step, m = fold_one(v, vlen, i, b, &step);
        if (m > flen - j || memcmp(b, f + j, m) != 0) {
            return false;
        }
        i += step;
        j += m;
    }
    return !whole || i == vlen;
}

/* Does the folded form of v end with the folded f? Walks both backwards one character at a
 * time (UTF-8 is self-synchronising, so comparing whole characters from the end is exact). */
static bool folded_suffix(const char *v, size_t vlen, const char *f, size_t flen)
{
    size_t i = vlen, j = flen;
    while (j > 0) {
        if (i == 0) {
            return false;
        }
        size_t start = i - 1;
        while (start > 0 && i - start < 4 && ((uint8_t)v[start] & 0xC0) == 0x80) {
            start--;
        }
        uint8_t b[4];
        size_t step, m = fold_one(v, vlen, start, b, &step);
        if (start + step != i) { /* not one whole character: take the last byte alone */
            start = i - 1;
            b[0] = (uint8_t)v[start];
            m = 1;
        }
        if (m > j || memcmp(b, f + j - m, m) != 0) {
            return false;
        }
        i = start;
        j -= m;
    }
    return true;
}

/* ---- wildcard ---- */

/* Segments s0 * s1 * ... * sk: the value starts with s0, ends with sk, and holds s1..sk-1 in
 * order in between. Taking each middle segment at its leftmost occurrence is optimal, so this
 * is linear in the value for each segment and never backtracks. */
static bool wildcard_match(const hr_pt_cond_t *c, const char *v, size_t vlen)
{
    const char *seg = c->pc_u.pc_wild.buf;
    const size_t *lens = c->pc_u.pc_wild.seg;
    size_t n = c->pc_u.pc_wild.n_seg;
    if (n == 1) {
        return vlen == lens[0] && memcmp(v, seg, vlen) == 0;
    }
    size_t first = lens[0], last = lens[n - 1];
    if (vlen < first + last || memcmp(v, seg, first) != 0) {
        return false;
    }
    size_t total = 0;
    for (size_t k = 0; k < n - 1; k++) {
        total += lens[k];
    }
    if (memcmp(v + vlen - last, seg + total, last) != 0) {
        return false;
    }
    size_t pos = first, end = vlen - last, off = first;
    for (size_t k = 1; k + 1 < n; k++) {
        size_t l = lens[k];
        if (l > 0) {
            const char *hit = memmem(v + pos, end - pos, seg + off, l);
            if (hit == NULL) {
                return false;
            }
            pos = (size_t)(hit - v) + l;
        }
        off += l;
    }
    return true;
}

/* ---- CIDR ---- */

bool hr__pattern_cidr_parse(const char *s, size_t len, hr_pt_cond_t *c)
{
    char buf[64];
    const char *slash = memchr(s, '/', len);
    if (slash == NULL || len >= sizeof buf || memchr(s, '\0', len) != NULL) {
        return false;
    }
    size_t alen = (size_t)(slash - s), blen = len - alen - 1;
    if (blen == 0 || blen > 3) {
        return false;
    }
    unsigned bits = 0;
    for (size_t i = 0; i < blen; i++) {
        char d = slash[1 + i];
        if (d < '0' || d > '9' || (i == 0 && d == '0' && blen > 1)) {
            return false;
        }
        bits = bits * 10 + (unsigned)(d - '0');
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    memset(c->pc_u.pc_cidr.addr, 0, sizeof c->pc_u.pc_cidr.addr);
    if (inet_pton(AF_INET, buf, c->pc_u.pc_cidr.addr) == 1) {
        c->pc_u.pc_cidr.family = 4;
        if (bits > 32) {
            return false;
        }
    } else if (inet_pton(AF_INET6, buf, c->pc_u.pc_cidr.addr) == 1) {
        c->pc_u.pc_cidr.family = 6;
        if (bits > 128) {
            return false;
        }
    } else {
        return false;
    }
    c->pc_u.pc_cidr.bits = bits;
    return true;
}

static bool cidr_match(const hr_pt_cond_t *c, const char *v, size_t vlen)
{
    char buf[64];
    uint8_t addr[16];
    if (vlen == 0 || vlen >= sizeof buf || memchr(v, '\0', vlen) != NULL) {
        return false;
    }
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    int fam = c->pc_u.pc_cidr.family == 4 ? AF_INET : AF_INET6;
    if (inet_pton(fam, buf, addr) != 1) {
        return false;
    }
    unsigned bits = c->pc_u.pc_cidr.bits, full = bits / 8, rest = bits % 8;
    const uint8_t *net = c->pc_u.pc_cidr.addr;
    if (memcmp(addr, net, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xFF00u >> rest);
    return (addr[full] & mask) == (net[full] & mask);
}

/* ---- one condition, one value ---- */

static bool num_equal(const hr_pt_cond_t *c, const hr_pt_val_t *v)
{
    if (c->pc_u.pc_num.is_int && v->is_int) {
        return c->pc_u.pc_num.i == v->i;
    }
    return c->pc_u.pc_num.d == v->d;
}

static bool in_range(const hr_pt_cond_t *c, double x)
{
    double lo = c->pc_u.pc_range.lo, hi = c->pc_u.pc_range.hi;
    bool above = c->pc_u.pc_range.lo_open ? x > lo : x >= lo;
    bool below = c->pc_u.pc_range.hi_open ? x < hi : x <= hi;
    return above && below;
}

bool hr__pattern_cond_match(const hr_pt_cond_t *c, const hr_pt_val_t *v)
{
    const char *ps = c->pc_u.pc_str.s;
    size_t pl = c->pc_u.pc_str.len;
    switch (c->pc_kind) {
    case HR_PT_EXACT_STR:
        return v->s != NULL && v->len == pl && memcmp(v->s, ps, pl) == 0;
    case HR_PT_EXACT_NUM:
        return v->type == HR_PT_V_NUM && num_equal(c, v);
    case HR_PT_TRUE:
        return v->type == HR_PT_V_TRUE;
    case HR_PT_FALSE:
        return v->type == HR_PT_V_FALSE;
    case HR_PT_NULL:
        return v->type == HR_PT_V_NULL;
    case HR_PT_PREFIX:
        return v->s != NULL && v->len >= pl && memcmp(v->s, ps, pl) == 0;
    case HR_PT_SUFFIX:
        return v->s != NULL && v->len >= pl && memcmp(v->s + v->len - pl, ps, pl) == 0;
    case HR_PT_EIC:
        return v->s != NULL && folded_prefix(v->s, v->len, ps, pl, true);
    case HR_PT_PREFIX_EIC:
        return v->s != NULL && folded_prefix(v->s, v->len, ps, pl, false);
    case HR_PT_SUFFIX_EIC:
        return v->s != NULL && folded_suffix(v->s, v->len, ps, pl);
    case HR_PT_WILDCARD:
        return v->s != NULL && wildcard_match(c, v->s, v->len);
    case HR_PT_NUMERIC:
        return v->type == HR_PT_V_NUM && in_range(c, v->d);
    case HR_PT_CIDR:
        return v->type == HR_PT_V_STR && cidr_match(c, v->s, v->len);
    case HR_PT_EXISTS:
        return true;
    case HR_PT_ABSENT:
        return false;
    case HR_PT_ANYTHING_BUT:
        for (size_t i = 0; i < c->pc_u.pc_but.n; i++) {
            if (hr__pattern_cond_match(&c->pc_u.pc_but.conds[i], v)) {
                return false;
            }
        }
        return true;
    }
    return false;
}

static bool has_absent(const hr_pt_cond_t *conds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (conds[i].pc_kind == HR_PT_ABSENT) {
            return true;
        }
    }
    return false;
}

bool hr__pattern_leaf_match_val(const hr_pt_cond_t *conds, size_t n, const hr_pt_val_t *v)
{
    if (v == NULL) {
        return has_absent(conds, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (hr__pattern_cond_match(&conds[i], v)) {
            return true;
        }
    }
    return false;
}

/* ---- JSON values ---- */

/* Fills v from a JSON scalar; false for objects and arrays (which are not leaf values). */
static bool json_val(const json_t *j, hr_pt_val_t *v)
{
    memset(v, 0, sizeof *v);
    switch (json_typeof(j)) {
    case JSON_STRING:
        v->type = HR_PT_V_STR;
        v->s = json_string_value(j);
        v->len = json_string_length(j);
        return true;
    case JSON_INTEGER:
        v->type = HR_PT_V_NUM;
        v->is_int = true;
        v->i = (long long)json_integer_value(j);
        v->d = (double)v->i;
        return true;
    case JSON_REAL:
        v->type = HR_PT_V_NUM;
        v->d = json_real_value(j);
        return true;
    case JSON_TRUE:
        v->type = HR_PT_V_TRUE;
        return true;
    case JSON_FALSE:
        v->type = HR_PT_V_FALSE;
        return true;
    case JSON_NULL:
        v->type = HR_PT_V_NULL;
        return true;
    default:
        return false;
    }
}

/* True when some scalar in j (arrays flattened) satisfies a positive condition; *seen is set
 * when j holds at least one scalar, i.e. the field exists as a leaf. */
static bool leaf_scan(const hr_pt_cond_t *conds, size_t n, const json_t *j, unsigned adepth,
                      bool *seen)
{
    if (json_is_array(j)) {
        if (adepth >= HR_PATTERN_MAX_ARRAY_DEPTH) {
            return false;
        }
        size_t k;
        const json_t *e;
        json_array_foreach(j, k, e)
        {
            if (leaf_scan(conds, n, e, adepth + 1, seen)) {
                return true;
            }
        }
        return false;
    }
    hr_pt_val_t v;
    if (!json_val(j, &v)) {
        return false; /* an object: not a leaf, so it neither matches nor exists */
    }
    *seen = true;
    for (size_t i = 0; i < n; i++) {
        if (hr__pattern_cond_match(&conds[i], &v)) {
            return true;
        }
    }
    return false;
}

bool hr__pattern_leaf_match_json(const hr_pt_cond_t *conds, size_t n, const json_t *v)
{
    bool seen = false;
    if (v != NULL && leaf_scan(conds, n, v, 0, &seen)) {
        return true;
    }
    return !seen && has_absent(conds, n);
}

static bool obj_match(const hr_pt_obj_t *o, const json_t *v, unsigned adepth)
{
    if (v != NULL && json_is_array(v)) {
        /* Array consistency: the whole object (its fields and "$or" groups) must hold within
         * one element. An empty array contributes no fields, like an absent one. */
        if (json_array_size(v) == 0) {
            return obj_match(o, NULL, adepth);
        }
        if (adepth >= HR_PATTERN_MAX_ARRAY_DEPTH) {
            return false;
        }
        size_t k;
        const json_t *e;
        json_array_foreach(v, k, e)
        {
            if (obj_match(o, e, adepth + 1)) {
                return true;
            }
        }
        return false;
    }
    const json_t *obj = (v != NULL && json_is_object(v)) ? v : NULL;
    for (size_t i = 0; i < o->po_nfields; i++) {
        const hr_pt_field_t *f = &o->po_fields[i];
        const json_t *child = obj ? json_object_getn(obj, f->pf_name, f->pf_name_len) : NULL;
        bool ok = f->pf_obj ? obj_match(f->pf_obj, child, 0)
                            : hr__pattern_leaf_match_json(f->pf_conds, f->pf_n, child);
        if (!ok) {
            return false;
        }
    }
    for (size_t g = 0; g < o->po_nors; g++) {
        const hr_pt_or_t * or = &o->po_ors[g];
        bool any = false;
        for (size_t b = 0; b < or->po_n && !any; b++) {
            any = obj_match(or->po_branches[b], v, adepth);
        }
        if (!any) {
            return false;
        }
    }
    return true;
}

bool hr__pattern_obj_match_json(const hr_pt_obj_t *o, const json_t *v)
{
    return obj_match(o, v, 0);
}
