/* SPDX-License-Identifier: MIT */
/*
 * CloudEvents SQL (CESQL v1.0.0): the public API (compile, lint, eval, match, required
 * exact values) and the {"cesql": "..."} trigger filter dialect, also registered as {"sql":
 * "..."}, the Subscriptions API's name for it (§3.2.4.1.2). The lexer and parser live in
 * cesql_parse.c, the evaluator in cesql_eval.c and the built-in functions in cesql_func.c.
 *
 * Compiling happens where filters compile (HTTP workers, startup); evaluation on dispatcher
 * threads for every event, and for `?filter=` on reads. A compiled expression is read-only.
 *
 * Decisions, with the texts they follow:
 *   1. Conformance target: the CESQL TCK (tests/unit/filter/cesql_tck_test.c runs all 275
 *      cases). Where the TCK is more precise than the spec prose it wins.
 *   2. AND, OR and XOR have one precedence and group to the right, as the grammar says
 *      (CESQLParser.g4 `<assoc=right> expression (AND | OR | XOR) expression`) and as the
 *      ANTLR-based SDKs parse it: `a AND b OR c` is `a AND (b OR c)`. Users should write
 *      parentheses when mixing them. Other binary operators group to the left.
 *   3. Errors propagate by value (spec §3.2, §3.3): an operator or function whose operand
 *      raised any error (a missing attribute, a math or cast error below it) yields the zero
 *      value of its own return type without computing, so `1 / missing` raises no math error
 *      and `true AND (1 != 1 / 0)` is false (TCK). Errors an operator raises itself (a cast
 *      of its operand, ABS overflow) come with its computed value: `NOT 10` is true with a
 *      cast error. A bare missing attribute yields false (the "cannot determine the type"
 *      rule). IN stops at the first equal element; an erroneous element before it yields false.
 *   4. Implicit casts follow §3.7, except that an implicit Integer -> Boolean cast (an
 *      integer operand of NOT, AND, OR, XOR, or compared with a Boolean) is a cast error with
 *      the value false: the TCK requires `NOT 10` to be `true` with a cast error. The explicit
 *      BOOL() function follows the §3.7 table (0 -> false, other integers -> true).
 *   5. Integer overflow in -, +, * , /, unary - and ABS raises a math error; the value is
 *      clamped to the int32 range (§3.5.2 does this for ABS(-2147483648)). Division and
 *      modulo by zero give 0 and a math error (§3.4.2).
 *   6. Strings are sequences of Unicode characters: LENGTH, LEFT, RIGHT, SUBSTRING and LIKE's
 *      `_` count code points, not bytes. `=` compares bytes (case-sensitive, no
 *      normalisation). LIKE's `\` escapes only `%` and `_`; any other backslash is literal
 *      (the TCK's `'ab\c' LIKE 'ab\c'`).
 *   7. String literals: `\'` in '...' and `\"` in "..." stand for the quote, as does the
 *      doubled quote the lexer grammar accepts; other backslashes are kept.
 *   8. Identifiers are case-insensitive (TCK: `EXISTS SOURCE`), as are keywords and function
 *      names. A sign directly before an integer in operand position belongs to the literal
 *      (so -2147483648 is valid); unlike the ANTLR lexer, `4-1` is accepted as 4 - 1.
 *   9. Calling an unknown function (or a known one with the wrong number of arguments)
 *      compiles, and evaluates to false with a missingFunction error (§3.5, TCK). Trigger
 *      filters are stricter: hr_cesql_lint rejects them when the trigger is written, since
 *      such a filter could never match.
 *  10. Casting functions INT, BOOL, STRING take any type; IS_INT / IS_BOOL are true for a
 *      value of that type or a String that INT() / BOOL() would convert without error.
 *  11. As a filter (§1.2), an event passes only when the result is the Boolean true and no
 *      error was raised. Evaluation does not stop at the first error (complete evaluation
 *      mode); expressions are small, and one code path serves filters and `herald cesql eval`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/cesql.h"
#include "filter/cesql_int.h"
#include "filter/filter_int.h"
#include "util/err.h"
#include "util/utf8.h"

/* Scratch on the stack for hr_cesql_match: enough for int -> string casts and small CONCATs
 * without touching the heap. */
#define MATCH_SCRATCH_BYTES 512

const char *hr_cesql_errkind_name(hr_cesql_errkind_t kind)
{
    static const char *const names[] = {
        "none",
        "parse",
        "math",
        "cast",
        "missingAttribute",
        "missingFunction",
        "functionEvaluation",
        "generic",
    };
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "generic";
}

int hr_cesql_compile(const char *expr, size_t len, hr_cesql_t **out, hr_cesql_error_t *err)
{
    *out = NULL;
    if (err != NULL) {
        memset(err, 0, sizeof *err);
    }
    hr_cesql_t *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return HR_ENOMEM;
    }
    int rc = HR_EINVAL;
    size_t bad;
    if (len > HR_CESQL_MAX_EXPR_BYTES) {
        /* No text is kept for the message: its position is the limit itself. */
        if (err != NULL) {
            err->kind = HR_CESQL_ERR_PARSE;
            err->offset = HR_CESQL_MAX_EXPR_BYTES;
            err->char_offset = HR_CESQL_MAX_EXPR_BYTES;
            snprintf(err->msg, sizeof err->msg,
                     "The expression is too long: %zu bytes, at most %d are allowed.", len,
                     HR_CESQL_MAX_EXPR_BYTES);
        }
        goto fail;
    }
    q->q_text = malloc(len + 1);
    if (q->q_text == NULL) {
        rc = HR_ENOMEM;
        goto fail;
    }
    memcpy(q->q_text, expr, len);
    q->q_text[len] = '\0';
    q->q_text_len = len;
    if (!hr_utf8_valid(expr, len, &bad)) {
        q->q_text_len = bad; /* count characters only over the valid part */
        hr__cesql_error_at(q, bad, HR_CESQL_ERR_PARSE, err,
                           "the expression is not valid UTF-8 (byte %zu).", bad);
        goto fail;
    }
    const char *nul = memchr(expr, '\0', len);
    if (nul != NULL) {
        hr__cesql_error_at(q, (size_t)(nul - expr), HR_CESQL_ERR_PARSE, err,
                           "the expression contains the character U+0000.");
        goto fail;
    }
    rc = hr__cesql_parse(q, err);
    if (rc != 0) {
        goto fail;
    }
    *out = q;
    return 0;
fail:
    hr_cesql_destroy(q);
    return rc;
}

int hr_cesql_lint(const hr_cesql_t *q, hr_cesql_error_t *err)
{
    const hr_cesql_node_t *n = q->q_bad_call;
    if (n == NULL) {
        return 0;
    }
    bool known = false;
    for (size_t k = 0; k <= HR_CESQL_MAX_ARGS && !known; k++) {
        known = hr__cesql_func_find(n->n_str, n->n_len, k) != NULL;
    }
    if (known) {
        hr__cesql_error_at(q, n->n_pos, HR_CESQL_ERR_MISSING_FUNCTION, err,
                           "%s does not take %u argument%s.", n->n_str, n->n_count,
                           n->n_count == 1 ? "" : "s");
    } else {
        hr__cesql_error_at(q, n->n_pos, HR_CESQL_ERR_MISSING_FUNCTION, err,
                           "unknown function %s; the functions are ABS, LENGTH, CONCAT, "
                           "CONCAT_WS, LOWER, UPPER, TRIM, LEFT, RIGHT, SUBSTRING, INT, BOOL, "
                           "STRING, IS_INT and IS_BOOL.",
                           n->n_str);
    }
    return HR_EINVAL;
}

static void run(const hr_cesql_t *q, hr_cesql_ctx_t *cx, hr_cesql_val_t *v)
{
    hr__cesql_eval_node(cx, q->q_root, v);
}

int hr_cesql_eval(const hr_cesql_t *q, const hr_ce_event_t *ev, hr_cesql_value_t *result,
                  hr_cesql_errkind_t *first_error)
{
    char scratch[MATCH_SCRATCH_BYTES];
    hr_cesql_ctx_t cx;
    hr__cesql_ctx_init(&cx, ev, scratch, sizeof scratch);
    hr_cesql_val_t v;
    run(q, &cx, &v);
    int rc = 0;
    memset(result, 0, sizeof *result);
    result->type = (hr_cesql_type_t)v.v_type;
    result->b = v.v_b;
    result->i = v.v_i;
    if (v.v_type == HR_CESQL_STRING) {
        result->s = malloc(v.v_len + 1);
        if (result->s == NULL) {
            result->type = HR_CESQL_BOOLEAN;
            rc = HR_ENOMEM;
        } else {
            memcpy(result->s, v.v_s, v.v_len);
            result->s[v.v_len] = '\0';
            result->s_len = v.v_len;
        }
    }
    if (first_error != NULL) {
        *first_error = cx.cx_errors ? cx.cx_first : HR_CESQL_ERR_NONE;
    }
    hr__cesql_ctx_done(&cx);
    return rc;
}

void hr_cesql_value_clear(hr_cesql_value_t *v)
{
    free(v->s);
    memset(v, 0, sizeof *v);
    v->type = HR_CESQL_BOOLEAN;
}

bool hr_cesql_match(const hr_cesql_t *q, const hr_ce_event_t *ev)
{
    char scratch[MATCH_SCRATCH_BYTES];
    hr_cesql_ctx_t cx;
    hr__cesql_ctx_init(&cx, ev, scratch, sizeof scratch);
    hr_cesql_val_t v;
    run(q, &cx, &v);
    hr__cesql_ctx_done(&cx);
    return cx.cx_errors == 0 && v.v_type == HR_CESQL_BOOLEAN && v.v_b;
}

/* `attr = 'literal'` with the attribute on the left: x is cast to String, so the comparison is
 * byte equality with the attribute's canonical string (also for integer and boolean
 * extensions, whose canonical forms are what the cast produces). */
static const char *eq_literal(const hr_cesql_node_t *n, const char *attr)
{
    if (n->n_kind != HR_CESQL_N_CHAIN || n->n_count != 2 || n->n_ops[0] != HR_CESQL_OP_EQ) {
        return NULL;
    }
    const hr_cesql_node_t *l = n->n_kids[0], *r = n->n_kids[1];
    if (l->n_kind != HR_CESQL_N_ATTR || strcmp(l->n_str, attr) != 0 ||
        r->n_kind != HR_CESQL_N_LIT || r->n_lit.v_type != HR_CESQL_STRING) {
        return NULL;
    }
    return r->n_lit.v_s; /* NUL-terminated by string_value */
}

static const char *required(const hr_cesql_node_t *n, const char *attr)
{
    if (n->n_kind != HR_CESQL_N_LOGIC) {
        return eq_literal(n, attr);
    }
    /* Grouped to the right, operand k is implied when every operator up to the one after it
     * is AND (the last operand: when all are). */
    for (uint32_t k = 0; k < n->n_count; k++) {
        if (k + 1 < n->n_count && n->n_ops[k] != HR_CESQL_OP_AND) {
            return NULL;
        }
        const char *v = required(n->n_kids[k], attr);
        if (v != NULL) {
            return v;
        }
    }
    return NULL;
}

const char *hr_cesql_required_exact(const hr_cesql_t *q, const char *attr)
{
    return required(q->q_root, attr);
}

void hr_cesql_destroy(hr_cesql_t *q)
{
    if (q == NULL) {
        return;
    }
    while (q->q_chunks != NULL) {
        hr_cesql_chunk_t *next = q->q_chunks->ch_next;
        free(q->q_chunks);
        q->q_chunks = next;
    }
    free(q->q_text);
    free(q);
}

/* ---- the filter dialect ---- */

static int dialect_compile(hr_filter_cc_t *cc, const json_t *value, hr_filter_node_t *node)
{
    const char *name = node->fn_dialect->name;
    if (!json_is_string(value)) {
        return hr__filter_fail(cc,
                               "The value of \"%s\" must be a JSON string holding a CloudEvents "
                               "SQL expression, e.g. {\"%s\": \"type = 'com.example.x'\"}; got "
                               "%s.",
                               name, name, hr__filter_json_kind(value));
    }
    hr_cesql_t *q;
    hr_cesql_error_t err;
    int rc = hr_cesql_compile(json_string_value(value), json_string_length(value), &q, &err);
    if (rc == HR_ENOMEM) {
        return rc;
    }
    if (rc == 0 && hr_cesql_lint(q, &err) != 0) {
        hr_cesql_destroy(q);
        rc = HR_EINVAL;
    }
    if (rc != 0) {
        return hr__filter_fail(cc, "Invalid CloudEvents SQL expression. %s", err.msg);
    }
    node->fn_u.fn_state = q;
    return 0;
}

static bool dialect_match(const hr_filter_node_t *node, const hr_ce_event_t *ev)
{
    return hr_cesql_match(node->fn_u.fn_state, ev);
}

static void dialect_destroy(hr_filter_node_t *node)
{
    hr_cesql_destroy(node->fn_u.fn_state);
    node->fn_u.fn_state = NULL;
}

static const char *dialect_required(const hr_filter_node_t *node, const char *attr)
{
    return hr_cesql_required_exact(node->fn_u.fn_state, attr);
}

const hr_filter_dialect_t hr__filter_cesql = {"cesql", dialect_compile, dialect_match,
                                              dialect_destroy, dialect_required};
const hr_filter_dialect_t hr__filter_sql = {"sql", dialect_compile, dialect_match, dialect_destroy,
                                            dialect_required};
