/* SPDX-License-Identifier: MIT */
/*
 * EventBridge-style content patterns: the compiler (JSON -> hr_pt_obj_t tree, with the error
 * path of the first problem), matching against CloudEvents, hr_pattern_required_exact, and the
 * "pattern" filter dialect row. The matcher proper (values, arrays, text helpers) is in
 * pattern_match.c. Compiling runs on whatever thread creates a trigger; the result is immutable
 * and matched concurrently by dispatcher threads.
 *
 * Semantics, with their sources (AWS "Content filtering in Amazon EventBridge event patterns"
 * and "Comparison operators for use in event patterns" = [EB]; aws/event-ruler README.md and
 * JsonRuleCompiler.java = [ER]):
 *   1. A pattern object ANDs its fields; a field is a list of values/operators (ORed) or a
 *      nested pattern object [EB][ER]. Leaves must be non-empty lists; other JSON values,
 *      empty objects and empty lists are errors ([ER] "must be an object or an array", "Empty
 *      objects are not allowed", "Empty arrays are not allowed").
 *   2. Top level against a CloudEvent: "data" reaches into JSON data (parsed once per match,
 *      lazily, after the attributes); every other key is an attribute read with hr_ce_get.
 *      Context attributes are strings; an integer extension is a number that also matches
 *      string operators on its canonical text ("42"); a boolean extension is true/false and
 *      also matches "true"/"false" as strings. Data that is absent or not JSON is absent.
 *      Parsing allocates (jansson), unlike the other dialects; if it fails for lack of memory
 *      the data counts as absent. Data with integers beyond 64 bits is re-read with numbers as
 *      doubles. hr_pattern_match_data takes data parsed by the caller instead.
 *      The dialect (not hr_pattern_compile) requires attribute names ^[a-z][a-z0-9]*$ (as the
 *      exact dialect does) with list values.
 *   3. Exact values: strings compare byte for byte with strings only; numbers compare
 *      numerically with numbers only (10 = 10.0 = 1e1; two integers compare exactly as 64-bit
 *      values); true/false/null match only themselves [ER "JSON text matching"].
 *   4. prefix/suffix/equals-ignore-case/wildcard apply to strings only [ER] ("Prefix matches
 *      only work on string-valued fields"). equals-ignore-case (alone and inside prefix and
 *      suffix [EB]) uses the simple case folding of pattern_match.c: ASCII, Latin-1, Latin
 *      Extended-A and Additional, Greek, Cyrillic, Armenian, full-width Latin; no multi-
 *      character folding (ß does not equal "ss").
 *   5. wildcard: `*` matches any run of characters (also empty); `\*` is a literal star and
 *      `\\` a backslash; any other escape, a trailing backslash and `**` are errors [ER].
 *   6. numeric: [op, n] with op one of = < <= > >=, or [">"|">=", lo, "<"|"<=", hi] with
 *      lo < hi [ER processNumericMatchExpression]. Applies to JSON numbers only. Herald accepts
 *      any finite double (event-ruler limits values to +-5e9 with 6 decimals).
 *   7. anything-but: a string, a number, a non-empty list of only strings or only numbers, or
 *      {prefix|suffix: non-empty string}, {equals-ignore-case: string or list of strings},
 *      {wildcard: string or list of strings} [EB][ER]. It matches a present leaf value for
 *      which none of the listed conditions holds; so anything-but "x" also matches 5, true and
 *      null, as in event-ruler. anything-but inside anything-but, booleans and null are errors.
 *   8. exists: true matches a present leaf (null counts as present); false matches a missing
 *      field. Objects are not leaves, and an empty array holds no leaf, so both count as
 *      missing [ER "Exists match only works on the leaf nodes"].
 *   9. cidr: "addr/bits", IPv4 (0-32) or IPv6 (0-128), host bits ignored; matches strings that
 *      parse (inet_pton) as an address of the same family inside the range. A bare address
 *      without "/bits" is an error. IPv4-mapped IPv6 values do not match IPv4 ranges.
 *  10. Arrays in events: a leaf matches when any scalar element (nested arrays flattened)
 *      matches [ER "intersection ... non-empty"]. A pattern object applied to an array must
 *      hold, fields and "$or" groups together, within one element: array consistency
 *      ([ER] rulesForJSONEvent "will refuse to recognize any match in which any two fields are
 *      within JSON objects that are in different elements of the same array"). exists:false
 *      is judged inside the element chosen, so {"a": [{"exists": false}]} over [{"a":1},{}]
 *      matches through the second element (event-ruler's answer there depends on field order).
 *  11. "$or": a list of at least two pattern objects at any object level, ANDed with the
 *      object's other fields [ER README "$or"]; inside them, operator names (prefix, numeric,
 *      ..., and the reserved ones) are not allowed as field names. A "$or" that is not such a
 *      list is an error: Herald is the $or-aware compiler and never treats "$or" as a field.
 *  12. Limits: nesting depth HR_PATTERN_MAX_DEPTH, at most HR_FILTER_MAX_NODES pattern objects
 *      and leaf values per compile (shared with the rest of a trigger's filters).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_int.h"
#include "filter/pattern.h"
#include "filter/pattern_int.h"
#include "util/err.h"

/* Compile state: the filter compiler's context gives paths, messages and the node budget. */
typedef struct pcc {
    hr_filter_cc_t *cc;
    bool ce;        /* the filter dialect: top-level keys are CloudEvents attributes */
    unsigned depth; /* pattern objects entered */
} pcc_t;

#define OPERATORS                                                                                  \
    "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists or cidr"
#define EXAMPLE_LEAF "[\"x\", {\"prefix\": \"y\"}]"

/* Operator and reserved words, which may not name fields inside "$or" ([ER] Constants
 * RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP). */
static const char *const reserved_names[] = {
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
};

static bool key_is(const char *key, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(key, word, len) == 0;
}

static bool is_reserved(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++) {
        if (key_is(key, len, reserved_names[i])) {
            return true;
        }
    }
    return false;
}

/* ---- freeing ---- */

static void cond_free(hr_pt_cond_t *c)
{
    switch (c->pc_kind) {
    case HR_PT_EXACT_STR:
    case HR_PT_PREFIX:
    case HR_PT_SUFFIX:
    case HR_PT_EIC:
    case HR_PT_PREFIX_EIC:
    case HR_PT_SUFFIX_EIC:
        free(c->pc_u.pc_str.s);
        break;
    case HR_PT_WILDCARD:
        free(c->pc_u.pc_wild.buf);
        free(c->pc_u.pc_wild.seg);
        break;
    case HR_PT_ANYTHING_BUT:
        for (size_t i = 0; i < c->pc_u.pc_but.n; i++) {
            cond_free(&c->pc_u.pc_but.conds[i]);
        }
        free(c->pc_u.pc_but.conds);
        break;
    default:
        break;
    }
}

static void conds_free(hr_pt_cond_t *conds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cond_free(&conds[i]);
    }
    free(conds);
}

static void obj_free(hr_pt_obj_t *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < o->po_nfields; i++) {
        hr_pt_field_t *f = &o->po_fields[i];
        free(f->pf_name);
        conds_free(f->pf_conds, f->pf_n);
        obj_free(f->pf_obj);
    }
    free(o->po_fields);
    for (size_t g = 0; g < o->po_nors; g++) {
        for (size_t b = 0; b < o->po_ors[g].po_n; b++) {
            obj_free(o->po_ors[g].po_branches[b]);
        }
        free(o->po_ors[g].po_branches);
    }
    free(o->po_ors);
    free(o);
}

/* ---- compiling leaf values ---- */

static char *dup_bytes(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* A string condition (exact, prefix, suffix; folded for the ignore-case kinds). */
static int str_cond(hr_pt_cond_t *c, hr_pt_kind_t kind, const json_t *s)
{
    const char *v = json_string_value(s);
    size_t len = json_string_length(s);
    bool fold = kind == HR_PT_EIC || kind == HR_PT_PREFIX_EIC || kind == HR_PT_SUFFIX_EIC;
    char *d = malloc(len + 1);
    if (d == NULL) {
        return HR_ENOMEM;
    }
    if (fold) {
        len = hr__pattern_fold(v, len, d);
    } else {
        memcpy(d, v, len);
    }
    d[len] = '\0';
    c->pc_kind = kind;
    c->pc_u.pc_str.s = d;
    c->pc_u.pc_str.len = len;
    return 0;
}

static void num_cond(hr_pt_cond_t *c, const json_t *n)
{
    c->pc_kind = HR_PT_EXACT_NUM;
    c->pc_u.pc_num.is_int = json_is_integer(n);
    c->pc_u.pc_num.i = c->pc_u.pc_num.is_int ? (long long)json_integer_value(n) : 0;
    c->pc_u.pc_num.d = json_number_value(n);
}

/* Parses a wildcard pattern into segments. */
static int wildcard_cond(pcc_t *pc, hr_pt_cond_t *c, const json_t *s, const char *where)
{
    const char *v = json_string_value(s);
    size_t len = json_string_length(s), n_seg = 1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '\\') {
            if (i + 1 >= len || (v[i + 1] != '*' && v[i + 1] != '\\')) {
                return hr__filter_fail(pc->cc,
                                       "%s: wildcard has an invalid escape at character %zu; "
                                       "a backslash may only escape '*' or another backslash.",
                                       where, i);
            }
            i++;
        } else if (v[i] == '*') {
            if (i + 1 < len && v[i + 1] == '*') {
                return hr__filter_fail(pc->cc,
                                       "%s: wildcard has consecutive '*' at character %zu; one "
                                       "'*' already matches any run of characters.",
                                       where, i);
            }
            n_seg++;
        }
    }
    char *buf = malloc(len + 1);
    size_t *seg = calloc(n_seg, sizeof *seg);
    if (buf == NULL || seg == NULL) {
        free(buf);
        free(seg);
        return HR_ENOMEM;
    }
    size_t o = 0, k = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '\\') {
            buf[o++] = v[++i];
            seg[k]++;
        } else if (v[i] == '*') {
            k++;
        } else {
            buf[o++] = v[i];
            seg[k]++;
        }
    }
    buf[o] = '\0';
    c->pc_kind = HR_PT_WILDCARD;
    c->pc_u.pc_wild.buf = buf;
    c->pc_u.pc_wild.seg = seg;
    c->pc_u.pc_wild.n_seg = n_seg;
    return 0;
}

/* A string, or a non-empty list of strings (when `list_ok`), each compiled with `kind`, into
 * an anything-but's condition list. */
static int but_strings(pcc_t *pc, hr_pt_cond_t *c, const json_t *v, hr_pt_kind_t kind, bool list_ok,
                       const char *op)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    bool ok = json_is_string(v) || (list_ok && json_is_array(v) && n > 0);
    for (size_t i = 0; ok && json_is_array(v) && i < n; i++) {
        ok = json_is_string(json_array_get(v, i));
    }
    if (!ok) {
        return hr__filter_fail(pc->cc, "anything-but {\"%s\": ...} needs %s; got %s.", op,
                               list_ok ? "a string or a non-empty list of strings"
                                       : "a non-empty string",
                               hr__filter_json_kind(v));
    }
    if (!list_ok && json_string_length(v) == 0) {
        return hr__filter_fail(pc->cc,
                               "anything-but {\"%s\": ...} needs a non-empty string: an empty "
                               "%s excludes every string.",
                               op, op);
    }
    c->pc_u.pc_but.conds = calloc(n, sizeof *c->pc_u.pc_but.conds);
    if (c->pc_u.pc_but.conds == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        int rc = kind == HR_PT_WILDCARD
                     ? wildcard_cond(pc, &c->pc_u.pc_but.conds[i], s, "anything-but")
                     : str_cond(&c->pc_u.pc_but.conds[i], kind, s);
        if (rc != 0) {
            return rc;
        }
        c->pc_u.pc_but.n = i + 1;
    }
    return 0;
}

static int but_cond(pcc_t *pc, hr_pt_cond_t *c, const json_t *v)
{
    c->pc_kind = HR_PT_ANYTHING_BUT;
    if (json_is_object(v)) {
        if (json_object_size(v) != 1) {
            return hr__filter_fail(
                pc->cc,
                "anything-but with an object needs exactly one operator "
                "(prefix, suffix, equals-ignore-case or wildcard); got %zu keys.",
                json_object_size(v));
        }
        void *it = json_object_iter((json_t *)v);
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        const json_t *inner = json_object_iter_value(it);
        if (key_is(key, klen, "prefix")) {
            return but_strings(pc, c, inner, HR_PT_PREFIX, false, "prefix");
        }
        if (key_is(key, klen, "suffix")) {
            return but_strings(pc, c, inner, HR_PT_SUFFIX, false, "suffix");
        }
        if (key_is(key, klen, "equals-ignore-case")) {
            return but_strings(pc, c, inner, HR_PT_EIC, true, "equals-ignore-case");
        }
        if (key_is(key, klen, "wildcard")) {
            return but_strings(pc, c, inner, HR_PT_WILDCARD, true, "wildcard");
        }
        char q[64];
        hr__filter_quote(q, sizeof q, key, klen);
        return hr__filter_fail(pc->cc,
                               "anything-but does not support %s; inside anything-but use a "
                               "value, a list, or one of prefix, suffix, equals-ignore-case, "
                               "wildcard.",
                               q);
    }
    if (json_is_string(v)) {
        return but_strings(pc, c, v, HR_PT_EXACT_STR, true, "");
    }
    if (json_is_number(v)) {
        c->pc_u.pc_but.conds = calloc(1, sizeof *c->pc_u.pc_but.conds);
        if (c->pc_u.pc_but.conds == NULL) {
            return HR_ENOMEM;
        }
        num_cond(&c->pc_u.pc_but.conds[0], v);
        c->pc_u.pc_but.n = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        return hr__filter_fail(pc->cc,
                               "anything-but needs a string, a number, a list of only strings or "
                               "only numbers, or an operator object; got %s.",
                               hr__filter_json_kind(v));
    }
    size_t n = json_array_size(v), n_str = 0, n_num = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        n_str += json_is_string(e);
        n_num += json_is_number(e);
    }
    if (n == 0 || (n_str != n && n_num != n)) {
        return hr__filter_fail(pc->cc,
                               "anything-but needs a non-empty list of only strings or only "
                               "numbers (mixed types, true, false, null and objects are not "
                               "allowed).");
    }
    if (n_str == n) {
        return but_strings(pc, c, v, HR_PT_EXACT_STR, true, "");
    }
    c->pc_u.pc_but.conds = calloc(n, sizeof *c->pc_u.pc_but.conds);
    if (c->pc_u.pc_but.conds == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        num_cond(&c->pc_u.pc_but.conds[i], json_array_get(v, i));
    }
    c->pc_u.pc_but.n = n;
    return 0;
}

static int op_code(const json_t *op)
{
    static const char *const ops[] = {"=", "<", "<=", ">", ">="};
    for (int i = 0; json_is_string(op) && i < 5; i++) {
        if (strcmp(json_string_value(op), ops[i]) == 0 &&
            json_string_length(op) == strlen(ops[i])) {
            return i;
        }
    }
    return -1;
}

enum { OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

static int numeric_cond(pcc_t *pc, hr_pt_cond_t *c, const json_t *v)
{
    static const char *const usage =
        "numeric needs an operator followed by a number: [\"=\", 5], [\"<\", 5], [\"<=\", 5], "
        "[\">\", 0], [\">=\", 0], or a range [\">\", 0, \"<=\", 5]";
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n != 2 && n != 4) {
        return hr__filter_fail(pc->cc, "%s; got %s.", usage,
                               json_is_array(v) ? "a list of another length"
                                                : hr__filter_json_kind(v));
    }
    int op1 = op_code(json_array_get(v, 0));
    const json_t *x1 = json_array_get(v, 1);
    if (op1 < 0 || !json_is_number(x1)) {
        return hr__filter_fail(pc->cc, "%s.", usage);
    }
    c->pc_kind = HR_PT_NUMERIC;
    double x = json_number_value(x1);
    c->pc_u.pc_range.lo = -HUGE_VAL;
    c->pc_u.pc_range.hi = HUGE_VAL;
    c->pc_u.pc_range.lo_open = c->pc_u.pc_range.hi_open = false;
    if (op1 == OP_EQ || op1 == OP_GE || op1 == OP_GT) {
        c->pc_u.pc_range.lo = x;
        c->pc_u.pc_range.lo_open = op1 == OP_GT;
    }
    if (op1 == OP_EQ || op1 == OP_LE || op1 == OP_LT) {
        c->pc_u.pc_range.hi = x;
        c->pc_u.pc_range.hi_open = op1 == OP_LT;
    }
    if (n == 2) {
        return 0;
    }
    int op2 = op_code(json_array_get(v, 2));
    const json_t *x2 = json_array_get(v, 3);
    if ((op1 != OP_GT && op1 != OP_GE) || (op2 != OP_LT && op2 != OP_LE) || !json_is_number(x2)) {
        return hr__filter_fail(pc->cc, "numeric ranges are written [\">\" or \">=\", low, \"<\" or "
                                       "\"<=\", high], e.g. [\">\", 0, \"<=\", 5].");
    }
    c->pc_u.pc_range.hi = json_number_value(x2);
    c->pc_u.pc_range.hi_open = op2 == OP_LT;
    if (!(c->pc_u.pc_range.lo < c->pc_u.pc_range.hi)) {
        return hr__filter_fail(pc->cc,
                               "numeric range is empty: the low bound %g must be below the high "
                               "bound %g.",
                               c->pc_u.pc_range.lo, c->pc_u.pc_range.hi);
    }
    return 0;
}

/* {"prefix": ...} or {"suffix": ...}: a string, or {"equals-ignore-case": string}. */
static int affix_cond(pcc_t *pc, hr_pt_cond_t *c, const json_t *v, bool prefix)
{
    const char *op = prefix ? "prefix" : "suffix";
    if (json_is_string(v)) {
        return str_cond(c, prefix ? HR_PT_PREFIX : HR_PT_SUFFIX, v);
    }
    const json_t *eic = json_is_object(v) && json_object_size(v) == 1
                            ? json_object_get(v, "equals-ignore-case")
                            : NULL;
    if (eic == NULL || !json_is_string(eic)) {
        return hr__filter_fail(pc->cc,
                               "%s needs a string or {\"equals-ignore-case\": \"...\"}, e.g. "
                               "{\"%s\": \"abc\"}; got %s.",
                               op, op, hr__filter_json_kind(v));
    }
    return str_cond(c, prefix ? HR_PT_PREFIX_EIC : HR_PT_SUFFIX_EIC, eic);
}

/* One operator object of a leaf list. */
static int op_cond(pcc_t *pc, hr_pt_cond_t *c, const json_t *obj, size_t index)
{
    size_t n = json_object_size(obj);
    if (n != 1) {
        return hr__filter_fail(pc->cc,
                               "Value %zu is an operator object, which must have exactly one key "
                               "(" OPERATORS "); it has %zu.",
                               index, n);
    }
    void *it = json_object_iter((json_t *)obj);
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    const json_t *v = json_object_iter_value(it);
    if (key_is(key, klen, "prefix") || key_is(key, klen, "suffix")) {
        return affix_cond(pc, c, v, key[0] == 'p');
    }
    if (key_is(key, klen, "equals-ignore-case") || key_is(key, klen, "wildcard") ||
        key_is(key, klen, "cidr")) {
        if (!json_is_string(v)) {
            return hr__filter_fail(pc->cc, "%s needs a string; got %s.", key,
                                   hr__filter_json_kind(v));
        }
        if (key[0] == 'e') {
            return str_cond(c, HR_PT_EIC, v);
        }
        if (key[0] == 'w') {
            return wildcard_cond(pc, c, v, "wildcard");
        }
        c->pc_kind = HR_PT_CIDR;
        if (!hr__pattern_cidr_parse(json_string_value(v), json_string_length(v), c)) {
            char q[64];
            hr__filter_quote(q, sizeof q, json_string_value(v), json_string_length(v));
            return hr__filter_fail(pc->cc,
                                   "cidr %s is not a valid range: write an IPv4 or IPv6 "
                                   "address, a slash and a prefix length (0-32 or 0-128), e.g. "
                                   "\"10.0.0.0/24\" or \"2001:db8::/32\".",
                                   q);
        }
        return 0;
    }
    if (key_is(key, klen, "anything-but")) {
        return but_cond(pc, c, v);
    }
    if (key_is(key, klen, "numeric")) {
        return numeric_cond(pc, c, v);
    }
    if (key_is(key, klen, "exists")) {
        if (!json_is_boolean(v)) {
            return hr__filter_fail(pc->cc, "exists needs true or false; got %s.",
                                   hr__filter_json_kind(v));
        }
        c->pc_kind = json_is_true(v) ? HR_PT_EXISTS : HR_PT_ABSENT;
        return 0;
    }
    char q[64];
    hr__filter_quote(q, sizeof q, key, klen);
    return hr__filter_fail(
        pc->cc, "Unknown operator %s in value %zu; expected one of " OPERATORS ".", q, index);
}

/* A leaf: the list of values of one field (the path points at the field). */
static int leaf_build(pcc_t *pc, const json_t *arr, hr_pt_field_t *f)
{
    size_t n = json_array_size(arr);
    if (n == 0) {
        return hr__filter_fail(pc->cc, "The list of values must not be empty; give at least one "
                                       "value or operator, e.g. " EXAMPLE_LEAF ".");
    }
    int rc = hr__filter_charge(pc->cc, n);
    if (rc != 0) {
        return rc;
    }
    f->pf_conds = calloc(n, sizeof *f->pf_conds);
    if (f->pf_conds == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        hr_pt_cond_t *c = &f->pf_conds[i];
        f->pf_n = i + 1; /* so that a failure frees what this element allocated */
        switch (json_typeof(v)) {
        case JSON_STRING:
            rc = str_cond(c, HR_PT_EXACT_STR, v);
            break;
        case JSON_INTEGER:
        case JSON_REAL:
            num_cond(c, v);
            break;
        case JSON_TRUE:
            c->pc_kind = HR_PT_TRUE;
            break;
        case JSON_FALSE:
            c->pc_kind = HR_PT_FALSE;
            break;
        case JSON_NULL:
            c->pc_kind = HR_PT_NULL;
            break;
        case JSON_OBJECT:
            rc = op_cond(pc, c, v, i);
            break;
        default:
            rc = hr__filter_fail(pc->cc,
                                 "Value %zu is a list; a list of values holds strings, numbers, "
                                 "true, false, null and operator objects, e.g. " EXAMPLE_LEAF ".",
                                 i);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- compiling objects ---- */

static int obj_build(pcc_t *pc, const json_t *obj, bool top, bool in_or, hr_pt_obj_t **out);

static int check_attr_name(pcc_t *pc, const char *key, size_t len)
{
    bool ok = len > 0 && len <= HR_FILTER_ATTR_MAX && key[0] >= 'a' && key[0] <= 'z';
    for (size_t i = 1; ok && i < len; i++) {
        ok = (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9');
    }
    if (ok) {
        return 0;
    }
    char q[64];
    hr__filter_quote(q, sizeof q, key, len);
    return hr__filter_fail(pc->cc,
                           "%s is not a CloudEvents attribute name: top-level keys of a pattern "
                           "are attributes (^[a-z][a-z0-9]*$, at most %d characters), \"data\" "
                           "or \"$or\".",
                           q, HR_FILTER_ATTR_MAX);
}

static int or_build(pcc_t *pc, const json_t *arr, bool top, hr_pt_or_t *g)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (n < 2) {
        return hr__filter_fail(pc->cc,
                               "\"$or\" needs a list of at least two pattern objects, e.g. "
                               "\"$or\": [{\"type\": [\"a\"]}, {\"source\": [\"b\"]}]; got %s.",
                               json_is_array(arr) ? "a shorter list" : hr__filter_json_kind(arr));
    }
    g->po_branches = calloc(n, sizeof *g->po_branches);
    if (g->po_branches == NULL) {
        return HR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        size_t saved = hr__filter_path_index(pc->cc, i);
        int rc;
        if (!json_is_object(e)) {
            rc =
                hr__filter_fail(pc->cc, "Each element of \"$or\" must be a pattern object; got %s.",
                                hr__filter_json_kind(e));
        } else {
            rc = obj_build(pc, e, top, true, &g->po_branches[i]);
        }
        if (rc != 0) {
            return rc;
        }
        g->po_n = i + 1;
        hr__filter_path_pop(pc->cc, saved);
    }
    return 0;
}

/* One member of a pattern object (path already at the key). */
static int member_build(pcc_t *pc, const char *key, size_t klen, const json_t *v, bool top,
                        bool in_or, hr_pt_field_t *f)
{
    char q[64];
    hr__filter_quote(q, sizeof q, key, klen);
    if (in_or && is_reserved(key, klen)) {
        return hr__filter_fail(pc->cc,
                               "%s is an operator name and cannot be a field name inside \"$or\"; "
                               "operators go inside a list, e.g. \"x\": [{\"prefix\": \"a\"}].",
                               q);
    }
    bool attr = top && pc->ce && !key_is(key, klen, "data");
    if (attr) {
        int rc = check_attr_name(pc, key, klen);
        if (rc != 0) {
            return rc;
        }
        if (!json_is_array(v)) {
            return hr__filter_fail(pc->cc,
                                   "Attribute %s needs a list of values, e.g. [\"a\", "
                                   "{\"prefix\": \"b\"}]; got %s (only \"data\" has nested "
                                   "fields).",
                                   q, hr__filter_json_kind(v));
        }
    }
    if (!json_is_array(v) && !json_is_object(v)) {
        return hr__filter_fail(pc->cc,
                               "Field %s needs a list of values, e.g. " EXAMPLE_LEAF
                               ", or a nested pattern object; got %s%s.",
                               q, hr__filter_json_kind(v),
                               is_reserved(key, klen) ? " (operators go inside the list, e.g. "
                                                        "\"x\": [{\"prefix\": \"a\"}])"
                                                      : "");
    }
    f->pf_name = dup_bytes(key, klen);
    if (f->pf_name == NULL) {
        return HR_ENOMEM;
    }
    f->pf_name_len = klen;
    if (json_is_array(v)) {
        return leaf_build(pc, v, f);
    }
    return obj_build(pc, v, false, in_or, &f->pf_obj);
}

static int obj_build(pcc_t *pc, const json_t *obj, bool top, bool in_or, hr_pt_obj_t **out)
{
    *out = NULL;
    size_t n = json_object_size(obj);
    if (n == 0) {
        return hr__filter_fail(pc->cc, "A pattern object must name at least one field, e.g. "
                                       "{\"type\": [\"com.example.x\"]}; empty objects are not "
                                       "allowed.");
    }
    if (pc->depth >= HR_PATTERN_MAX_DEPTH) {
        return hr__filter_fail(pc->cc,
                               "The pattern is nested too deeply: at most %d levels of objects "
                               "and \"$or\" branches are allowed.",
                               HR_PATTERN_MAX_DEPTH);
    }
    int rc = hr__filter_charge(pc->cc, 1);
    if (rc != 0) {
        return rc;
    }
    hr_pt_obj_t *o = calloc(1, sizeof *o);
    size_t n_or = json_object_get(obj, "$or") != NULL; /* keys are unique in jansson */
    if (o == NULL) {
        return HR_ENOMEM;
    }
    o->po_fields = n > n_or ? calloc(n - n_or, sizeof *o->po_fields) : NULL;
    o->po_ors = n_or ? calloc(1, sizeof *o->po_ors) : NULL;
    if ((n > n_or && o->po_fields == NULL) || (n_or && o->po_ors == NULL)) {
        obj_free(o);
        return HR_ENOMEM;
    }
    pc->depth++;
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)obj, key, klen, v)
    {
        size_t saved = hr__filter_path_key(pc->cc, key, klen);
        if (key_is(key, klen, "$or")) {
            o->po_nors = 1;
            rc = or_build(pc, v, top, &o->po_ors[0]);
        } else {
            rc = member_build(pc, key, klen, v, top, in_or, &o->po_fields[o->po_nfields++]);
        }
        if (rc != 0) {
            goto end;
        }
        hr__filter_path_pop(pc->cc, saved);
    }
end:
    pc->depth--;
    if (rc != 0) {
        obj_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* Compiles `pattern` with the filter compiler's context (path already at the pattern). */
static int compile_cc(hr_filter_cc_t *cc, const json_t *pattern, bool ce, hr_pattern_t **out)
{
    *out = NULL;
    pcc_t pc = {cc, ce, 0};
    if (!json_is_object(pattern)) {
        return hr__filter_fail(cc,
                               "A pattern must be a JSON object of fields and lists of values, "
                               "e.g. {\"type\": [\"com.example.x\"], \"data\": {\"n\": "
                               "[{\"numeric\": [\">\", 0]}]}}; got %s.",
                               hr__filter_json_kind(pattern));
    }
    hr_pattern_t *p = malloc(sizeof *p);
    if (p == NULL) {
        return HR_ENOMEM;
    }
    int rc = obj_build(&pc, pattern, true, false, &p->p_root);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Copies src into dst[cap] (cap may be 0), cutting at a UTF-8 character boundary. */
static void copy_out(char *dst, size_t cap, const char *src)
{
    if (cap == 0) {
        return;
    }
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((uint8_t)src[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int hr_pattern_compile(const json_t *pattern, hr_pattern_t **out, char *err, size_t errsz,
                       char *path, size_t pathsz)
{
    hr_filter_error_t ferr;
    hr_filter_cc_t cc;
    memset(&cc, 0, sizeof cc);
    memset(&ferr, 0, sizeof ferr);
    cc.cc_err = &ferr;
    copy_out(err, errsz, "");
    copy_out(path, pathsz, "");
    int rc = compile_cc(&cc, pattern, false, out);
    if (rc == HR_EINVAL) {
        copy_out(err, errsz, ferr.msg);
        copy_out(path, pathsz, ferr.path[0] == '.' ? ferr.path + 1 : ferr.path);
    }
    return rc;
}

void hr_pattern_destroy(hr_pattern_t *p)
{
    if (p == NULL) {
        return;
    }
    obj_free(p->p_root);
    free(p);
}

/* ---- matching CloudEvents ---- */

typedef struct ce_ctx {
    const hr_ce_event_t *ev;
    json_t *data; /* parsed on first use; NULL when absent, not JSON or unparsable */
    bool parsed;
    bool owned; /* data is ours to free (not the event's cache) */
} ce_ctx_t;

/* Marks "parsed: the event has no JSON data" in the event's cache. */
static char no_json_data;

static void data_cache_free(void *cache)
{
    if (cache != &no_json_data) {
        json_decref(cache);
    }
}

static json_t *parse_data(const hr_ce_event_t *ev)
{
    if (ev->data_kind != HR_CE_DATA_JSON || ev->data == NULL) {
        return NULL;
    }
    json_error_t jerr;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *d = json_loadb((const char *)ev->data, ev->data_len, flags, &jerr);
    if (d == NULL) { /* e.g. an integer beyond 64 bits: read numbers as doubles */
        d = json_loadb((const char *)ev->data, ev->data_len, flags | JSON_DECODE_INT_AS_REAL,
                       &jerr);
    }
    return d;
}

/* The event's data as JSON, parsed once per event: the first pattern that needs it attaches
 * the tree to the event (hr_ce_event_t.data_cache), so N pattern triggers parse it once. The
 * cache is not part of the event's value, so filling it through a const event is sound; it is
 * claimed with compare-and-swap, so threads sharing an event stay safe. */
static const json_t *ce_data(ce_ctx_t *cx)
{
    if (cx->parsed) {
        return cx->data;
    }
    cx->parsed = true;
    hr_ce_event_t *ev = (hr_ce_event_t *)cx->ev;
    void (*fn)(void *) = NULL;
    if (!__atomic_compare_exchange_n(&ev->data_cache_free, &fn, data_cache_free, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        fn != data_cache_free) {
        cx->data = parse_data(ev); /* someone else's cache is attached: keep ours private */
        cx->owned = true;
        return cx->data;
    }
    void *cur = __atomic_load_n(&ev->data_cache, __ATOMIC_ACQUIRE);
    if (cur == NULL) {
        json_t *d = parse_data(ev);
        void *want = d ? (void *)d : (void *)&no_json_data;
        if (__atomic_compare_exchange_n(&ev->data_cache, &cur, want, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            cur = want;
        } else {
            json_decref(d); /* another thread attached its tree first: use that one */
        }
    }
    cx->data = cur == &no_json_data ? NULL : cur;
    return cx->data;
}

/* The value of attribute `name`; false when the event lacks it. */
static bool attr_val(const hr_ce_event_t *ev, const hr_pt_field_t *f, hr_pt_val_t *v)
{
    if (memchr(f->pf_name, '\0', f->pf_name_len) != NULL ||
        key_is(f->pf_name, f->pf_name_len, "data")) {
        return false;
    }
    const char *s = hr_ce_get(ev, f->pf_name);
    if (s == NULL) {
        return false;
    }
    memset(v, 0, sizeof *v);
    v->type = HR_PT_V_STR;
    v->s = s;
    v->len = strlen(s);
    for (size_t i = 0; i < ev->n_exts; i++) {
        if (strcmp(ev->exts[i].name, f->pf_name) != 0) {
            continue;
        }
        if (ev->exts[i].kind == HR_CE_INT) {
            v->type = HR_PT_V_NUM;
            v->is_int = true;
            v->i = strtoll(s, NULL, 10);
            v->d = (double)v->i;
        } else if (ev->exts[i].kind == HR_CE_BOOL) {
            v->type = strcmp(s, "true") == 0 ? HR_PT_V_TRUE : HR_PT_V_FALSE;
        }
        break;
    }
    return true;
}

static bool attr_field_match(const hr_pt_field_t *f, const hr_ce_event_t *ev)
{
    hr_pt_val_t v;
    bool present = attr_val(ev, f, &v);
    if (f->pf_obj != NULL) { /* attributes have no fields: all of the object's are missing */
        return hr__pattern_obj_match_json(f->pf_obj, NULL);
    }
    return hr__pattern_leaf_match_val(f->pf_conds, f->pf_n, present ? &v : NULL);
}

static bool ce_obj_match(const hr_pt_obj_t *o, ce_ctx_t *cx)
{
    /* Attributes first: they are cheap and may spare parsing the data. */
    for (size_t i = 0; i < o->po_nfields; i++) {
        const hr_pt_field_t *f = &o->po_fields[i];
        if (!key_is(f->pf_name, f->pf_name_len, "data") && !attr_field_match(f, cx->ev)) {
            return false;
        }
    }
    for (size_t i = 0; i < o->po_nfields; i++) {
        const hr_pt_field_t *f = &o->po_fields[i];
        if (!key_is(f->pf_name, f->pf_name_len, "data")) {
            continue;
        }
        const json_t *d = ce_data(cx);
        bool ok = f->pf_obj ? hr__pattern_obj_match_json(f->pf_obj, d)
                            : hr__pattern_leaf_match_json(f->pf_conds, f->pf_n, d);
        if (!ok) {
            return false;
        }
    }
    for (size_t g = 0; g < o->po_nors; g++) {
        bool any = false;
        for (size_t b = 0; b < o->po_ors[g].po_n && !any; b++) {
            any = ce_obj_match(o->po_ors[g].po_branches[b], cx);
        }
        if (!any) {
            return false;
        }
    }
    return true;
}

bool hr_pattern_match(const hr_pattern_t *p, const hr_ce_event_t *ev)
{
    ce_ctx_t cx = {ev, NULL, false, false};
    bool m = ce_obj_match(p->p_root, &cx);
    if (cx.owned) {
        json_decref(cx.data);
    }
    return m;
}

bool hr_pattern_match_data(const hr_pattern_t *p, const hr_ce_event_t *ev, const json_t *data)
{
    ce_ctx_t cx = {ev, (json_t *)data, true, false};
    return ce_obj_match(p->p_root, &cx);
}

bool hr_pattern_match_json(const hr_pattern_t *p, const json_t *doc)
{
    return hr__pattern_obj_match_json(p->p_root, doc);
}

/* ---- required exact values ---- */

/* A leaf whose every value is the same plain string without NUL. */
static const char *leaf_required(const hr_pt_field_t *f)
{
    const char *r = NULL;
    for (size_t i = 0; i < f->pf_n; i++) {
        const hr_pt_cond_t *c = &f->pf_conds[i];
        if (c->pc_kind != HR_PT_EXACT_STR || strlen(c->pc_u.pc_str.s) != c->pc_u.pc_str.len ||
            (r != NULL && strcmp(r, c->pc_u.pc_str.s) != 0)) {
            return NULL;
        }
        r = c->pc_u.pc_str.s;
    }
    return r;
}

static const char *obj_required(const hr_pt_obj_t *o, const char *attr, size_t alen)
{
    for (size_t i = 0; i < o->po_nfields; i++) {
        const hr_pt_field_t *f = &o->po_fields[i];
        if (f->pf_obj == NULL && f->pf_name_len == alen && memcmp(f->pf_name, attr, alen) == 0) {
            const char *r = leaf_required(f);
            if (r != NULL) {
                return r;
            }
        }
    }
    for (size_t g = 0; g < o->po_nors; g++) {
        const char *first = NULL;
        for (size_t b = 0; b < o->po_ors[g].po_n; b++) {
            const char *r = obj_required(o->po_ors[g].po_branches[b], attr, alen);
            if (r == NULL || (first != NULL && strcmp(first, r) != 0)) {
                first = NULL;
                break;
            }
            first = first ? first : r;
        }
        if (first != NULL) {
            return first;
        }
    }
    return NULL;
}

const char *hr_pattern_required_exact(const hr_pattern_t *p, const char *attr)
{
    if (strcmp(attr, "data") == 0) {
        return NULL;
    }
    return obj_required(p->p_root, attr, strlen(attr));
}

/* ---- the "pattern" filter dialect ---- */

static int dialect_compile(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node)
{
    hr_pattern_t *p;
    int rc = compile_cc(cc, value, true, &p);
    node->fn_u.fn_state = p;
    return rc;
}

static bool dialect_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    return hr_pattern_match(node->fn_u.fn_state, ev);
}

static void dialect_destroy(hr_filter_node_t *node)
{
    hr_pattern_destroy(node->fn_u.fn_state);
}

static const char *dialect_required(const hr_filter_node_t *node, const char *attr)
{
    return hr_pattern_required_exact(node->fn_u.fn_state, attr);
}

const hr_filter_dialect_t hr__filter_pattern = {"pattern", dialect_compile, dialect_match,
                                                dialect_destroy, dialect_required};
