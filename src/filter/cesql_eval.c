/* SPDX-License-Identifier: MIT */
/*
 * The CESQL evaluator: walks a compiled tree against one event and produces a value and the
 * set of errors raised (spec §3.3, §3.4, §3.6, §3.7). Called by hr_cesql_eval and
 * hr_cesql_match on any thread; all state is in the caller's hr_cesql_ctx_t, the tree is only
 * read.
 *
 * Rules applied at every operator (cesql.c lists the decisions behind them):
 *   - an operand whose evaluation raised an error (a missing attribute, a math or cast error
 *     inside it) makes the operator yield the zero value of its return type without computing
 *     (so `1 / missing` is 0 with no math error); errors the operator raises itself come with
 *     its computed value;
 *   - operands are cast to the operator's parameter types; for the ambiguous = != <> the
 *     left operand is cast to the right operand's type, for IN the set elements to the left
 *     operand's type;
 *   - AND and OR short-circuit; a chain of AND / OR / XOR groups to the right;
 *   - integer overflow raises a math error and yields the result clamped to the int32 range.
 *
 * Strings are (pointer, length) slices into the event, the compiled tree or the evaluation's
 * scratch arena; nothing is copied unless a cast or a function builds a new string.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "filter/cesql_int.h"
#include "util/utf8.h"

/* ---- context and scratch ---- */

void hr__cesql_ctx_init(hr_cesql_ctx_t *cx, const hr_ce_event_t *ev, char *buf, size_t cap)
{
    memset(cx, 0, sizeof *cx);
    cx->cx_ev = ev;
    cx->cx_buf = buf;
    cx->cx_cap = cap;
}

void hr__cesql_ctx_done(hr_cesql_ctx_t *cx)
{
    while (cx->cx_heap != NULL) {
        hr_cesql_chunk_t *next = cx->cx_heap->ch_next;
        free(cx->cx_heap);
        cx->cx_heap = next;
    }
}

void hr__cesql_raise(hr_cesql_ctx_t *cx, hr_cesql_errkind_t kind)
{
    if (cx->cx_errors == 0) {
        cx->cx_first = kind;
    }
    cx->cx_errors |= 1u << kind;
    cx->cx_count++;
}

char *hr__cesql_scratch(hr_cesql_ctx_t *cx, size_t n)
{
    if (n > HR_CESQL_MAX_SCRATCH_BYTES - cx->cx_total) {
        hr__cesql_raise(cx, HR_CESQL_ERR_FUNCTION_EVALUATION);
        return NULL;
    }
    if (cx->cx_cap - cx->cx_used < n) {
        size_t cap = n > 8192 ? n : 8192;
        hr_cesql_chunk_t *c = malloc(sizeof *c + cap);
        if (c == NULL) {
            hr__cesql_raise(cx, HR_CESQL_ERR_GENERIC);
            return NULL;
        }
        c->ch_next = cx->cx_heap;
        cx->cx_heap = c;
        cx->cx_buf = (char *)c->ch_data;
        cx->cx_cap = cap;
        cx->cx_used = 0;
    }
    char *p = cx->cx_buf + cx->cx_used;
    cx->cx_used += n;
    cx->cx_total += n;
    return p;
}

void hr__cesql_zero(uint8_t type, hr_cesql_val_t *out)
{
    memset(out, 0, sizeof *out);
    out->v_type = type == HR_CESQL_ANY ? HR_CESQL_BOOLEAN : type;
    out->v_s = "";
}

/* ---- casts (spec §3.7) ---- */

bool hr__cesql_parse_int(const char *s, size_t len, int32_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) {
        return false;
    }
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
        if (v > (int64_t)INT32_MAX + 1) {
            return false;
        }
    }
    v = neg ? -v : v;
    if (v > INT32_MAX) {
        return false;
    }
    *out = (int32_t)v;
    return true;
}

bool hr__cesql_parse_bool(const char *s, size_t len, bool *out)
{
    static const char t[] = "true", f[] = "false";
    const char *want = len == 4 ? t : len == 5 ? f : NULL;
    if (want == NULL) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != want[i]) {
            return false;
        }
    }
    *out = len == 4;
    return true;
}

int32_t hr__cesql_to_int(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v)
{
    int32_t i = 0;
    switch (v->v_type) {
    case HR_CESQL_INTEGER:
        return v->v_i;
    case HR_CESQL_BOOLEAN:
        return v->v_b ? 1 : 0;
    case HR_CESQL_STRING:
        if (!hr__cesql_parse_int(v->v_s, v->v_len, &i)) {
            hr__cesql_raise(cx, HR_CESQL_ERR_CAST);
            return 0;
        }
        return i;
    default:
        return 0;
    }
}

bool hr__cesql_to_bool(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v, bool explicit_cast)
{
    bool b = false;
    switch (v->v_type) {
    case HR_CESQL_BOOLEAN:
        return v->v_b;
    case HR_CESQL_INTEGER:
        if (explicit_cast) {
            return v->v_i != 0;
        }
        hr__cesql_raise(cx, HR_CESQL_ERR_CAST);
        return false;
    case HR_CESQL_STRING:
        if (!hr__cesql_parse_bool(v->v_s, v->v_len, &b)) {
            hr__cesql_raise(cx, HR_CESQL_ERR_CAST);
            return false;
        }
        return b;
    default:
        return false;
    }
}

void hr__cesql_to_str(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v, const char **s, size_t *len)
{
    switch (v->v_type) {
    case HR_CESQL_STRING:
        *s = v->v_s;
        *len = v->v_len;
        return;
    case HR_CESQL_BOOLEAN:
        *s = v->v_b ? "true" : "false";
        *len = v->v_b ? 4 : 5;
        return;
    case HR_CESQL_INTEGER: {
        char tmp[12];
        size_t n = 0;
        int64_t x = v->v_i;
        uint64_t u = x < 0 ? (uint64_t)-x : (uint64_t)x;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (x < 0) {
            tmp[n++] = '-';
        }
        char *d = hr__cesql_scratch(cx, n);
        if (d == NULL) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            d[i] = tmp[n - 1 - i];
        }
        *s = d;
        *len = n;
        return;
    }
    default:
        break;
    }
    *s = "";
    *len = 0;
}

/* ---- attributes ---- */

/* The value of the attribute of node n: a String for context attributes, the extension's own
 * type otherwise. Returns false (and the Boolean false) when the event lacks it. */
static bool attr_value(const hr_ce_event_t *ev, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    const char *s = NULL;
    hr_ce_kind_t kind = HR_CE_STRING;
    switch ((hr_cesql_attr_t)n->n_attr) {
    case HR_CESQL_A_SPECVERSION:
        s = ev->specversion;
        break;
    case HR_CESQL_A_ID:
        s = ev->id;
        break;
    case HR_CESQL_A_SOURCE:
        s = ev->source;
        break;
    case HR_CESQL_A_TYPE:
        s = ev->type;
        break;
    case HR_CESQL_A_DATACONTENTTYPE:
        s = ev->datacontenttype;
        break;
    case HR_CESQL_A_DATASCHEMA:
        s = ev->dataschema;
        break;
    case HR_CESQL_A_SUBJECT:
        s = ev->subject;
        break;
    case HR_CESQL_A_TIME:
        s = ev->time;
        break;
    case HR_CESQL_A_EXT: {
        const hr_ce_ext_t *x = hr_ce_find_ext(ev, n->n_str);
        if (x != NULL) {
            s = x->value;
            kind = x->kind;
        }
        break;
    }
    }
    memset(out, 0, sizeof *out);
    if (s == NULL) {
        hr__cesql_zero(HR_CESQL_BOOLEAN, out);
        return false;
    }
    out->v_type = HR_CESQL_STRING;
    out->v_s = s;
    out->v_len = strlen(s);
    /* Extension values were validated on ingress; a malformed one stays a String. */
    if (kind == HR_CE_INT && hr__cesql_parse_int(s, out->v_len, &out->v_i)) {
        out->v_type = HR_CESQL_INTEGER;
    } else if (kind == HR_CE_BOOL && hr__cesql_parse_bool(s, out->v_len, &out->v_b)) {
        out->v_type = HR_CESQL_BOOLEAN;
    }
    return true;
}

/* ---- operators ---- */

static int32_t clamp(hr_cesql_ctx_t *cx, int64_t v)
{
    if (v > INT32_MAX || v < INT32_MIN) {
        hr__cesql_raise(cx, HR_CESQL_ERR_MATH);
        return v > 0 ? INT32_MAX : INT32_MIN;
    }
    return (int32_t)v;
}

/* x = y with x cast to the type of y (spec §3.7, binary rule 2.ii). */
static bool equal_as(hr_cesql_ctx_t *cx, const hr_cesql_val_t *x, const hr_cesql_val_t *y)
{
    switch (y->v_type) {
    case HR_CESQL_INTEGER:
        return hr__cesql_to_int(cx, x) == y->v_i;
    case HR_CESQL_BOOLEAN:
        return hr__cesql_to_bool(cx, x, false) == y->v_b;
    default: {
        const char *s;
        size_t len;
        hr__cesql_to_str(cx, x, &s, &len);
        return len == y->v_len && memcmp(s, y->v_s, len) == 0;
    }
    }
}

static void apply_op(hr_cesql_ctx_t *cx, uint8_t op, hr_cesql_val_t *acc, const hr_cesql_val_t *y)
{
    bool arith = op <= HR_CESQL_OP_SUB;
    if (op == HR_CESQL_OP_EQ || op == HR_CESQL_OP_NE) {
        bool eq = equal_as(cx, acc, y);
        hr__cesql_zero(HR_CESQL_BOOLEAN, acc);
        acc->v_b = op == HR_CESQL_OP_EQ ? eq : !eq;
        return;
    }
    int64_t a = hr__cesql_to_int(cx, acc), b = hr__cesql_to_int(cx, y);
    hr__cesql_zero(arith ? HR_CESQL_INTEGER : HR_CESQL_BOOLEAN, acc);
    switch ((hr_cesql_op_t)op) {
    case HR_CESQL_OP_MUL:
        acc->v_i = clamp(cx, a * b);
        break;
    case HR_CESQL_OP_DIV:
    case HR_CESQL_OP_MOD:
        if (b == 0) {
            hr__cesql_raise(cx, HR_CESQL_ERR_MATH);
        } else {
            /* C99 division truncates towards zero and % takes the sign of a (spec §3.4.2). */
            acc->v_i = clamp(cx, op == HR_CESQL_OP_DIV ? a / b : a % b);
        }
        break;
    case HR_CESQL_OP_ADD:
        acc->v_i = clamp(cx, a + b);
        break;
    case HR_CESQL_OP_SUB:
        acc->v_i = clamp(cx, a - b);
        break;
    case HR_CESQL_OP_LT:
        acc->v_b = a < b;
        break;
    case HR_CESQL_OP_LE:
        acc->v_b = a <= b;
        break;
    case HR_CESQL_OP_GT:
        acc->v_b = a > b;
        break;
    case HR_CESQL_OP_GE:
        acc->v_b = a >= b;
        break;
    default:
        break;
    }
}

/* acc = acc op y for arithmetic and comparison operators. An operand with an error gives the
 * zero value; an error of the operator itself (a cast, overflow) marks acc as erroneous, so
 * the next operator of a chain yields its zero value in turn. */
static void apply(hr_cesql_ctx_t *cx, uint8_t op, hr_cesql_val_t *acc, const hr_cesql_val_t *y)
{
    bool arith = op <= HR_CESQL_OP_SUB;
    if (acc->v_err || y->v_err) {
        hr__cesql_zero(arith ? HR_CESQL_INTEGER : HR_CESQL_BOOLEAN, acc);
        acc->v_err = true;
        return;
    }
    unsigned before = cx->cx_count;
    apply_op(cx, op, acc, y);
    acc->v_err = cx->cx_count != before;
}

/* ((o0 op1 o1) op2 o2) ...: each operator yields zero when its left operand, the previous
 * operator's result, carries an error (apply). Later operands are still evaluated so that
 * every error is collected. */
static void eval_chain(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    hr__cesql_eval_node(cx, n->n_kids[0], out);
    for (uint32_t k = 1; k < n->n_count; k++) {
        hr_cesql_val_t y;
        hr__cesql_eval_node(cx, n->n_kids[k], &y);
        apply(cx, n->n_ops[k - 1], out, &y);
    }
}

/* o0 op1 o1 op2 o2 ... grouped to the right: o0 op1 (o1 op2 (o2 ...)), walked left to right.
 * `flip` accumulates the XORs of the enclosing operators, so the result is flip ^ (value of the
 * innermost operator decided so far). An error in any operand, or in a cast made by an
 * operator other than the outermost, reaches the outermost operator as an erroneous operand,
 * so the chain yields false; evaluation stops there. The outermost operator owns the casts of
 * o0, and of o1 when there are only two operands. */
static void eval_logic(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    bool flip = false, result = false;
    for (uint32_t k = 0; k < n->n_count; k++) {
        hr_cesql_val_t v;
        hr__cesql_eval_node(cx, n->n_kids[k], &v);
        if (v.v_err) {
            result = false;
            break;
        }
        unsigned before = cx->cx_count;
        bool b = hr__cesql_to_bool(cx, &v, false);
        if (cx->cx_count != before && k > 0 && !(k == 1 && n->n_count == 2)) {
            result = false;
            break;
        }
        if (k + 1 == n->n_count) {
            result = flip ^ b;
            break;
        }
        uint8_t op = n->n_ops[k];
        if (op == HR_CESQL_OP_AND && !b) {
            result = flip;
            break;
        }
        if (op == HR_CESQL_OP_OR && b) {
            result = !flip;
            break;
        }
        if (op == HR_CESQL_OP_XOR) {
            flip ^= b;
        }
    }
    hr__cesql_zero(HR_CESQL_BOOLEAN, out);
    out->v_b = result;
}

/* Length of the UTF-8 character at s[0] (1 for a stray byte). */
static size_t char_len(const char *s, size_t len)
{
    uint32_t cp;
    size_t n = hr_utf8_decode((const uint8_t *)s, len, &cp);
    return n ? n : 1;
}

/* LIKE: greedy match with backtracking to the last %, O(len(text) * len(pattern)). */
static bool like_match(const hr_cesql_like_el_t *els, size_t n_els, const char *s, size_t len)
{
    size_t ti = 0, pi = 0, star_p = SIZE_MAX, star_t = 0;
    while (ti < len) {
        if (pi < n_els && els[pi].le_kind == HR_CESQL_LIKE_TEXT && els[pi].le_len <= len - ti &&
            memcmp(s + ti, els[pi].le_s, els[pi].le_len) == 0) {
            ti += els[pi].le_len;
            pi++;
        } else if (pi < n_els && els[pi].le_kind == HR_CESQL_LIKE_ONE) {
            ti += char_len(s + ti, len - ti);
            pi++;
        } else if (pi < n_els && els[pi].le_kind == HR_CESQL_LIKE_ANY) {
            star_p = pi++;
            star_t = ti;
        } else if (star_p != SIZE_MAX) {
            pi = star_p + 1;
            star_t += char_len(s + star_t, len - star_t);
            ti = star_t;
        } else {
            return false;
        }
    }
    while (pi < n_els && els[pi].le_kind == HR_CESQL_LIKE_ANY) {
        pi++;
    }
    return pi == n_els;
}

static void eval_like(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    hr_cesql_val_t x;
    hr__cesql_eval_node(cx, n->n_kids[0], &x);
    hr__cesql_zero(HR_CESQL_BOOLEAN, out);
    if (x.v_err) {
        return;
    }
    const char *s;
    size_t len;
    hr__cesql_to_str(cx, &x, &s, &len);
    bool m = like_match(n->n_like, n->n_like_count, s, len);
    out->v_b = n->n_negate ? !m : m;
}

/* x IN (e1, ...): elements left to right, stopping at the first equal one; the elements are
 * cast to x's type. An erroneous x, or an erroneous element before the match, yields false. */
static void eval_in(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    hr_cesql_val_t x;
    hr__cesql_eval_node(cx, n->n_kids[0], &x);
    bool bad = x.v_err, found = false;
    for (uint32_t k = 1; k < n->n_count && !bad && !found; k++) {
        hr_cesql_val_t e;
        hr__cesql_eval_node(cx, n->n_kids[k], &e);
        if (e.v_err) {
            bad = true;
        } else {
            found = equal_as(cx, &e, &x);
        }
    }
    hr__cesql_zero(HR_CESQL_BOOLEAN, out);
    out->v_b = !bad && (n->n_negate ? !found : found);
}

/* Casts argument `v` in place to parameter type `type`. */
static void cast_arg(hr_cesql_ctx_t *cx, uint8_t type, hr_cesql_val_t *v)
{
    if (type == HR_CESQL_ANY || type == v->v_type) {
        return;
    }
    hr_cesql_val_t c;
    hr__cesql_zero(type, &c);
    switch (type) {
    case HR_CESQL_INTEGER:
        c.v_i = hr__cesql_to_int(cx, v);
        break;
    case HR_CESQL_BOOLEAN:
        c.v_b = hr__cesql_to_bool(cx, v, false);
        break;
    default:
        hr__cesql_to_str(cx, v, &c.v_s, &c.v_len);
        break;
    }
    *v = c;
}

/* Kept out of line: its argument array should not sit in the frames of other node kinds. */
__attribute__((noinline)) static void eval_call(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n,
                                                hr_cesql_val_t *out)
{
    const hr_cesql_func_t *f = n->n_func;
    if (f == NULL) {
        hr__cesql_raise(cx, HR_CESQL_ERR_MISSING_FUNCTION);
        hr__cesql_zero(HR_CESQL_BOOLEAN, out);
        return;
    }
    hr_cesql_val_t args[HR_CESQL_MAX_ARGS];
    bool bad_arg = false; /* an argument with an error */
    for (uint32_t k = 0; k < n->n_count; k++) {
        hr__cesql_eval_node(cx, n->n_kids[k], &args[k]);
        bad_arg |= args[k].v_err;
    }
    hr__cesql_zero(f->f_ret, out);
    if (bad_arg) {
        return;
    }
    for (uint32_t k = 0; k < n->n_count; k++) {
        cast_arg(cx, f->f_params[k < 2 ? k : 2], &args[k]);
    }
    f->f_fn(cx, args, n->n_count, out);
}

static void eval_unary(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    hr_cesql_val_t x;
    hr__cesql_eval_node(cx, n->n_kids[0], &x);
    bool is_not = n->n_kind == HR_CESQL_N_NOT;
    hr__cesql_zero(is_not ? HR_CESQL_BOOLEAN : HR_CESQL_INTEGER, out);
    if (x.v_err) {
        return;
    }
    if (is_not) {
        out->v_b = !hr__cesql_to_bool(cx, &x, false);
    } else {
        out->v_i = clamp(cx, -(int64_t)hr__cesql_to_int(cx, &x));
    }
}

static void eval_kind(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    switch ((hr_cesql_nkind_t)n->n_kind) {
    case HR_CESQL_N_LIT:
        *out = n->n_lit;
        return;
    case HR_CESQL_N_ATTR:
        if (!attr_value(cx->cx_ev, n, out)) {
            hr__cesql_raise(cx, HR_CESQL_ERR_MISSING_ATTRIBUTE);
        }
        return;
    case HR_CESQL_N_EXISTS: {
        bool exists = attr_value(cx->cx_ev, n, out);
        hr__cesql_zero(HR_CESQL_BOOLEAN, out);
        out->v_b = exists;
        return;
    }
    case HR_CESQL_N_NOT:
    case HR_CESQL_N_NEG:
        eval_unary(cx, n, out);
        return;
    case HR_CESQL_N_CHAIN:
        eval_chain(cx, n, out);
        return;
    case HR_CESQL_N_LOGIC:
        eval_logic(cx, n, out);
        return;
    case HR_CESQL_N_LIKE:
        eval_like(cx, n, out);
        return;
    case HR_CESQL_N_IN:
        eval_in(cx, n, out);
        return;
    case HR_CESQL_N_CALL:
        eval_call(cx, n, out);
        return;
    }
    hr__cesql_zero(HR_CESQL_BOOLEAN, out);
}

void hr__cesql_eval_node(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out)
{
    unsigned before = cx->cx_count;
    eval_kind(cx, n, out);
    out->v_err = cx->cx_count != before;
}
