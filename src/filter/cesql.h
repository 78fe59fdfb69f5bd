/* SPDX-License-Identifier: MIT */
/*
 * CloudEvents SQL (CESQL v1.0.0): compiles an expression once, then evaluates it against any
 * number of events. Used by the {"cesql": ...} / {"sql": ...} trigger filter dialect
 * (cesql.c), by `?filter=` on reads and streams, and by `herald cesql eval`.
 *
 * Language summary (details and the decisions taken where the spec is silent are in the
 * comment at the top of cesql.c):
 *   - types Boolean, Integer (int32) and String; attributes are Strings except integer and
 *     boolean extensions; implicit casts per spec §3.7;
 *   - operators NOT, unary -, * / %, + -, = != <> < <= > >=, AND OR XOR (short-circuit),
 *     [NOT] LIKE 'pattern', [NOT] IN (set), EXISTS attr, parentheses;
 *   - built-in functions ABS, LENGTH, CONCAT, CONCAT_WS, LOWER, UPPER, TRIM, LEFT, RIGHT,
 *     SUBSTRING (2 and 3 arguments), INT, BOOL, STRING, IS_INT, IS_BOOL;
 *   - every evaluation yields a value plus a (possibly empty) set of errors; a missing
 *     attribute makes the enclosing operator or function yield its type's zero value.
 *
 * Threading: a compiled hr_cesql_t is immutable. Any number of threads may evaluate one
 * compiled expression at the same time without locking. hr_cesql_match does not allocate
 * unless the expression builds strings larger than a small stack buffer (CONCAT, LOWER, ...).
 */
#ifndef HR_FILTER_CESQL_H
#define HR_FILTER_CESQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ce/event.h"

/* Limits, checked by hr_cesql_compile with a parse error naming the limit. */
#define HR_CESQL_MAX_EXPR_BYTES 4096 /* longest expression text */
#define HR_CESQL_MAX_DEPTH 64        /* nesting: parentheses, prefix operators, calls, sets */
#define HR_CESQL_MAX_ARGS 32         /* arguments of one function call */
#define HR_CESQL_MAX_IDENT_BYTES 64  /* longest attribute name (HR_CE_EXT_NAME_MAX) */
/* Bytes of strings one evaluation may build (CONCAT, LOWER, casts ...). Past it the building
 * function returns its zero value with a functionEvaluation error. */
#define HR_CESQL_MAX_SCRATCH_BYTES (4u << 20)

/* The error kinds of spec §3.3. The names returned by hr_cesql_errkind_name are the TCK's. */
typedef enum hr_cesql_errkind {
    HR_CESQL_ERR_NONE = 0,
    HR_CESQL_ERR_PARSE,               /* "parse" */
    HR_CESQL_ERR_MATH,                /* "math": division by zero, overflow */
    HR_CESQL_ERR_CAST,                /* "cast" */
    HR_CESQL_ERR_MISSING_ATTRIBUTE,   /* "missingAttribute" */
    HR_CESQL_ERR_MISSING_FUNCTION,    /* "missingFunction": no function of that name/arity */
    HR_CESQL_ERR_FUNCTION_EVALUATION, /* "functionEvaluation" */
    HR_CESQL_ERR_GENERIC,             /* "generic": out of memory during evaluation */
} hr_cesql_errkind_t;

/* The TCK name of `kind` ("parse", "missingAttribute", ...; "none" for HR_CESQL_ERR_NONE). */
const char *hr_cesql_errkind_name(hr_cesql_errkind_t kind);

/* Why an expression was rejected. */
typedef struct hr_cesql_error {
    hr_cesql_errkind_t kind; /* HR_CESQL_ERR_PARSE, or HR_CESQL_ERR_MISSING_FUNCTION (lint) */
    size_t offset;           /* byte offset of the fault in the expression */
    size_t char_offset;      /* the same position counted in Unicode characters */
    /* A full sentence, NUL-terminated, valid UTF-8 and printable, naming the position
     * ("at character 7"), what was found and what was expected. */
    char msg[256];
} hr_cesql_error_t;

typedef enum hr_cesql_type {
    HR_CESQL_BOOLEAN = 1,
    HR_CESQL_INTEGER = 2,
    HR_CESQL_STRING = 3,
} hr_cesql_type_t;

/* The value of an evaluated expression. */
typedef struct hr_cesql_value {
    hr_cesql_type_t type;
    bool b;       /* BOOLEAN */
    int32_t i;    /* INTEGER */
    char *s;      /* STRING: NUL-terminated, owned by the value (hr_cesql_value_clear); else NULL */
    size_t s_len; /* STRING: length in bytes */
} hr_cesql_value_t;

typedef struct hr_cesql hr_cesql_t;

/* Compiles the expression (expr, len) (borrowed; need not be NUL-terminated). It must be
 * valid UTF-8, contain no U+0000, and respect the limits above.
 *
 * Returns 0 and sets *out (free with hr_cesql_destroy), HR_EINVAL with *err filled in (kind
 * HR_CESQL_ERR_PARSE; err may be NULL), or HR_ENOMEM; on failure *out is NULL. Calls to unknown
 * functions compile (the spec makes them a missingFunction error at evaluation); see
 * hr_cesql_lint. Reentrant; any thread. */
int hr_cesql_compile(const char *expr, size_t len, hr_cesql_t **out, hr_cesql_error_t *err);

/* Static checks a caller that stores expressions should apply on top of hr_cesql_compile:
 * today, that every function call names a built-in function with that many arguments (such a
 * call can only ever evaluate to an error). Returns 0, or HR_EINVAL with *err filled in (kind
 * HR_CESQL_ERR_MISSING_FUNCTION; err may be NULL) for the first offending call. */
int hr_cesql_lint(const hr_cesql_t *q, hr_cesql_error_t *err);

/* Evaluates `q` against `ev` (both borrowed) in complete evaluation mode (spec §4.1) and
 * stores the value in *result, which the caller must release with hr_cesql_value_clear.
 * *first_error (may be NULL) receives the first error raised, or HR_CESQL_ERR_NONE.
 *
 * Returns 0 (also when evaluation raised errors: they are part of the result), or HR_ENOMEM
 * when the string result could not be copied (then *result is a BOOLEAN false). Thread-safe. */
int hr_cesql_eval(const hr_cesql_t *q, const hr_ce_event_t *ev, hr_cesql_value_t *result,
                  hr_cesql_errkind_t *first_error);

/* Frees the string of a value filled by hr_cesql_eval and resets it to BOOLEAN false. */
void hr_cesql_value_clear(hr_cesql_value_t *v);

/* The filter predicate (spec §1.2): true when `q` evaluates to the Boolean true without any
 * error. Thread-safe; allocates only for large built strings (see above). */
bool hr_cesql_match(const hr_cesql_t *q, const hr_ce_event_t *ev);

/* For the matcher's index: the value attribute `attr` must have (its canonical string form,
 * as hr_ce_get returns it) for `q` to match, or NULL. Found when the expression is
 * `attr = 'literal'`, or a chain of ANDs one of whose terms is (parentheses allowed). Sound:
 * never a value the expression does not imply. The result is owned by `q`. */
const char *hr_cesql_required_exact(const hr_cesql_t *q, const char *attr);

/* Frees `q`; NULL is a no-op. No other thread may still be evaluating it. */
void hr_cesql_destroy(hr_cesql_t *q);

#endif
