/* SPDX-License-Identifier: MIT */
/*
 * CESQL internals shared by the parser (cesql_parse.c), the evaluator (cesql_eval.c), the
 * built-in functions (cesql_func.c) and the public glue (cesql.c).
 *
 * A compiled expression is a tree of hr_cesql_node_t allocated, with its strings, from one
 * arena owned by the hr_cesql_t. Chains of operators of one precedence level are flattened
 * into one node with n operands and n - 1 operators, so a long `a AND b AND c ...` or
 * `1 + 2 + 3 ...` does not make the tree deep: the tree's depth is bounded by
 * HR_CESQL_MAX_DEPTH and evaluation recurses at most that deep.
 *
 * Evaluation state (hr_cesql_ctx_t) lives on the evaluating thread's stack; strings built
 * during one evaluation come from its scratch arena (a stack buffer, then heap chunks).
 */
#ifndef HR_FILTER_CESQL_INT_H
#define HR_FILTER_CESQL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ce/event.h"
#include "filter/cesql.h"

/* ---- values during evaluation ---- */

/* The value of a subexpression. v_err is set when evaluating it raised any error (an absent
 * attribute included): the operator or function that receives such an operand yields the zero
 * value of its own return type without computing (spec §3.2, and the TCK's
 * `true AND (1 != 1 / 0)` -> false). */
typedef struct hr_cesql_val {
    uint8_t v_type; /* hr_cesql_type_t */
    bool v_err;
    bool v_b;
    int32_t v_i;
    const char *v_s; /* STRING: not NUL-terminated; valid for the evaluation */
    size_t v_len;
} hr_cesql_val_t;

/* ---- the compiled tree ---- */

typedef enum hr_cesql_op {
    HR_CESQL_OP_MUL,
    HR_CESQL_OP_DIV,
    HR_CESQL_OP_MOD,
    HR_CESQL_OP_ADD,
    HR_CESQL_OP_SUB,
    HR_CESQL_OP_EQ,
    HR_CESQL_OP_NE, /* != and <> */
    HR_CESQL_OP_LT,
    HR_CESQL_OP_LE,
    HR_CESQL_OP_GT,
    HR_CESQL_OP_GE,
    HR_CESQL_OP_AND,
    HR_CESQL_OP_OR,
    HR_CESQL_OP_XOR,
} hr_cesql_op_t;

typedef enum hr_cesql_nkind {
    HR_CESQL_N_LIT,    /* n_lit */
    HR_CESQL_N_ATTR,   /* n_str = lower-case name, n_attr */
    HR_CESQL_N_EXISTS, /* as ATTR */
    HR_CESQL_N_NOT,    /* n_kids[0] */
    HR_CESQL_N_NEG,    /* n_kids[0] */
    HR_CESQL_N_CHAIN,  /* arithmetic or comparison, left to right: n_kids, n_ops */
    HR_CESQL_N_LOGIC,  /* AND / OR / XOR, grouped to the right (the grammar's assoc=right) */
    HR_CESQL_N_LIKE,   /* n_kids[0], n_like, n_negate */
    HR_CESQL_N_IN,     /* n_kids[0] IN n_kids[1..], n_negate */
    HR_CESQL_N_CALL,   /* n_func (NULL: no such function), n_kids = arguments, n_str = name */
} hr_cesql_nkind_t;

/* Where an attribute lives: one of the context attributes with a struct member, or an
 * extension (looked up by name). */
typedef enum hr_cesql_attr {
    HR_CESQL_A_EXT = 0,
    HR_CESQL_A_SPECVERSION,
    HR_CESQL_A_ID,
    HR_CESQL_A_SOURCE,
    HR_CESQL_A_TYPE,
    HR_CESQL_A_DATACONTENTTYPE,
    HR_CESQL_A_DATASCHEMA,
    HR_CESQL_A_SUBJECT,
    HR_CESQL_A_TIME,
} hr_cesql_attr_t;

/* One element of a compiled LIKE pattern. */
typedef enum hr_cesql_like_kind {
    HR_CESQL_LIKE_TEXT, /* the bytes (s, len) literally */
    HR_CESQL_LIKE_ONE,  /* _: exactly one character */
    HR_CESQL_LIKE_ANY,  /* %: any number of characters */
} hr_cesql_like_kind_t;

typedef struct hr_cesql_like_el {
    uint8_t le_kind;
    const char *le_s;
    size_t le_len;
} hr_cesql_like_el_t;

typedef struct hr_cesql_func hr_cesql_func_t;
typedef struct hr_cesql_node hr_cesql_node_t;

struct hr_cesql_node {
    uint8_t n_kind;   /* hr_cesql_nkind_t */
    uint8_t n_attr;   /* ATTR, EXISTS: hr_cesql_attr_t */
    bool n_negate;    /* LIKE, IN: NOT LIKE, NOT IN */
    uint32_t n_pos;   /* byte offset of the node's first token, for messages */
    uint32_t n_count; /* number of n_kids */
    hr_cesql_val_t n_lit;
    const char *n_str; /* NUL-terminated */
    size_t n_len;
    hr_cesql_node_t **n_kids;
    uint8_t *n_ops; /* CHAIN, LOGIC: n_count - 1 hr_cesql_op_t */
    const hr_cesql_func_t *n_func;
    hr_cesql_like_el_t *n_like;
    size_t n_like_count;
};

/* A block of memory owned by a compiled expression or an evaluation. */
typedef struct hr_cesql_chunk hr_cesql_chunk_t;
struct hr_cesql_chunk {
    hr_cesql_chunk_t *ch_next;
    size_t ch_cap, ch_used;
    max_align_t ch_data[]; /* ch_cap bytes */
};

struct hr_cesql {
    hr_cesql_node_t *q_root;
    hr_cesql_chunk_t *q_chunks; /* the compile arena */
    size_t q_nodes;
    /* The first call of an unknown function (for hr_cesql_lint), or NULL. */
    const hr_cesql_node_t *q_bad_call;
    char *q_text; /* the expression, NUL-terminated, for messages */
    size_t q_text_len;
};

/* ---- evaluation context ---- */

typedef struct hr_cesql_ctx {
    const hr_ce_event_t *cx_ev;
    unsigned cx_errors;          /* bit (1 << kind) per error kind raised */
    unsigned cx_count;           /* errors raised so far */
    hr_cesql_errkind_t cx_first; /* the first error raised */
    char *cx_buf;                /* the current scratch block */
    size_t cx_cap, cx_used;      /* its size and fill */
    size_t cx_total;             /* scratch bytes handed out, against the limit */
    hr_cesql_chunk_t *cx_heap;   /* heap blocks, freed by hr__cesql_ctx_done */
} hr_cesql_ctx_t;

/* Starts an evaluation of `ev` with the caller's stack buffer (buf, cap) as first scratch. */
void hr__cesql_ctx_init(hr_cesql_ctx_t *cx, const hr_ce_event_t *ev, char *buf, size_t cap);
/* Frees the heap scratch of an evaluation. */
void hr__cesql_ctx_done(hr_cesql_ctx_t *cx);
/* Records an error of `kind`. */
void hr__cesql_raise(hr_cesql_ctx_t *cx, hr_cesql_errkind_t kind);
/* `n` bytes of scratch valid until hr__cesql_ctx_done, or NULL (a functionEvaluation error
 * past HR_CESQL_MAX_SCRATCH_BYTES, a generic error when out of memory; both raised here). */
char *hr__cesql_scratch(hr_cesql_ctx_t *cx, size_t n);

/* Evaluates node `n` into *out. Recursion depth is bounded by the tree's depth. */
void hr__cesql_eval_node(hr_cesql_ctx_t *cx, const hr_cesql_node_t *n, hr_cesql_val_t *out);

/* Casts (spec §3.7). Each raises a cast error when the value cannot be cast, and then
 * returns the zero value. `explicit_cast` is true for the BOOL() function, false for the
 * implicit casts of operators (where Integer -> Boolean is a cast error; see cesql.c). */
int32_t hr__cesql_to_int(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v);
bool hr__cesql_to_bool(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v, bool explicit_cast);
void hr__cesql_to_str(hr_cesql_ctx_t *cx, const hr_cesql_val_t *v, const char **s, size_t *len);
/* Casts without raising: true when `v` is (or is a String spelling) an Integer / a Boolean. */
bool hr__cesql_parse_int(const char *s, size_t len, int32_t *out);
bool hr__cesql_parse_bool(const char *s, size_t len, bool *out);

/* ---- built-in functions (cesql_func.c) ---- */

/* Parameter and return types; HR_CESQL_ANY takes the argument as it is. */
enum { HR_CESQL_ANY = 4 };

struct hr_cesql_func {
    const char *f_name; /* upper case */
    uint8_t f_min_args;
    uint8_t f_max_args;  /* HR_CESQL_MAX_ARGS for variadic functions */
    uint8_t f_ret;       /* hr_cesql_type_t */
    uint8_t f_params[3]; /* the types of the first parameters; the last repeats */
    /* Computes the result from arguments already cast to f_params. Raises its own errors. */
    void (*f_fn)(hr_cesql_ctx_t *cx, const hr_cesql_val_t *args, size_t n, hr_cesql_val_t *out);
};

/* The built-in function named (name, len) (upper case) taking `n_args` arguments, or NULL. */
const hr_cesql_func_t *hr__cesql_func_find(const char *name, size_t len, size_t n_args);

/* The zero value of `type` (spec §3.1). */
void hr__cesql_zero(uint8_t type, hr_cesql_val_t *out);

/* ---- parsing (cesql_parse.c) ---- */

/* Parses q->q_text into q->q_root. Returns 0, HR_EINVAL (err filled in) or HR_ENOMEM. */
int hr__cesql_parse(hr_cesql_t *q, hr_cesql_error_t *err);
/* Arena allocation for the compiled tree (zeroed), or NULL when out of memory. */
void *hr__cesql_arena_alloc(hr_cesql_t *q, size_t n);
/* Formats a message into *err with the position of byte `off` in q's text. */
void hr__cesql_error_at(const hr_cesql_t *q, size_t off, hr_cesql_errkind_t kind,
                        hr_cesql_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
