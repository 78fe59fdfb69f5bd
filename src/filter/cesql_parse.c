/* SPDX-License-Identifier: MIT */
/*
 * The CESQL lexer and parser: expression text -> the tree of cesql_int.h. Called by
 * hr_cesql_compile (any thread; all state is per call).
 *
 * The grammar is the spec's ANTLR grammar (cesql/CESQLParser.g4, CESQLLexer.g4), written as
 * recursive descent with one function per precedence level, tightest last:
 *
 *   expr    := cmp ((AND | OR | XOR) cmp)*        one level, grouped to the right
 *   cmp     := add ((= | != | <> | < | <= | > | >=) add)*
 *   add     := mul ((+ | -) mul)*
 *   mul     := post ((* | / | %) post)*
 *   post    := unary ([NOT] LIKE string | [NOT] IN '(' expr (',' expr)* ')')*
 *   unary   := NOT unary | - unary | primary
 *   primary := integer | string | TRUE | FALSE | identifier | EXISTS identifier
 *            | function '(' [expr (',' expr)*] ')' | '(' expr ')'
 *
 * Lexical rules (CESQLLexer.g4): keywords, function names and identifiers are
 * case-insensitive (identifiers are lowered, function names raised); identifiers are
 * [a-zA-Z0-9]+ and not all digits; function names are a letter then letters and '_';
 * strings are '...' or "...", where a backslash followed by the quote, or the quote doubled,
 * stands for the quote and any other backslash is kept as it is (so LIKE sees `\%` and `\_`);
 * integers are decimal digits, and a '-' or '+' directly before an integer in operand position
 * makes a signed literal (so -2147483648 is valid). Integer literals must fit in 32 bits.
 * Whitespace is space, tab, CR and LF.
 *
 * Bounds: the text is at most HR_CESQL_MAX_EXPR_BYTES; every construct that nests nodes
 * (parentheses, prefix operators, LIKE / IN applied to a LIKE / IN, calls, sets) counts against
 * HR_CESQL_MAX_DEPTH, so both this recursion and the evaluator's are bounded.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/cesql_int.h"
#include "util/err.h"
#include "util/utf8.h"

/* ---- the compile arena ---- */

void *hr__cesql_arena_alloc(hr_cesql_t *q, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    hr_cesql_chunk_t *c = q->q_chunks;
    if (c == NULL || c->ch_cap - c->ch_used < n) {
        size_t cap = n > 4096 ? n : 4096;
        c = malloc(sizeof *c + cap);
        if (c == NULL) {
            return NULL;
        }
        c->ch_cap = cap;
        c->ch_used = 0;
        c->ch_next = q->q_chunks;
        q->q_chunks = c;
    }
    char *p = (char *)c->ch_data + c->ch_used;
    c->ch_used += n;
    memset(p, 0, n);
    return p;
}

/* ---- error messages ---- */

void hr__cesql_error_at(const hr_cesql_t *q, size_t off, hr_cesql_errkind_t kind,
                        hr_cesql_error_t *err, const char *fmt, ...)
{
    if (err == NULL) {
        return;
    }
    size_t chars = 0;
    for (size_t i = 0; i < off && i < q->q_text_len; i++) {
        chars += ((uint8_t)q->q_text[i] & 0xC0) != 0x80;
    }
    err->kind = kind;
    err->offset = off;
    err->char_offset = chars;
    int n = snprintf(err->msg, sizeof err->msg, "At character %zu: ", chars);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
    /* Cut a multi-byte character that vsnprintf may have truncated. */
    size_t len = strlen(err->msg);
    size_t bad;
    while (!hr_utf8_valid(err->msg, len, &bad)) {
        err->msg[bad] = '\0';
        len = bad;
    }
}

/* ---- lexer ---- */

typedef enum tok_kind {
    T_EOF,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_INT,
    T_STR,
    T_WORD,
    T_AND,
    T_OR,
    T_XOR,
    T_NOT,
    T_LIKE,
    T_EXISTS,
    T_IN,
    T_TRUE,
    T_FALSE,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_PLUS,
    T_MINUS,
    T_EQ,
    T_NE,
    T_LTGT,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
} tok_kind_t;

typedef struct tok {
    uint8_t t_kind;
    bool t_underscore; /* WORD: contains '_' */
    bool t_digit;      /* WORD: contains a digit */
    size_t t_pos, t_len;
    uint64_t t_int; /* INT: the value, saturated at 2^32 */
} tok_t;

static const struct {
    const char *name;
    tok_kind_t kind;
} keywords[] = {
    {"AND", T_AND},       {"OR", T_OR}, {"XOR", T_XOR},   {"NOT", T_NOT},     {"LIKE", T_LIKE},
    {"EXISTS", T_EXISTS}, {"IN", T_IN}, {"TRUE", T_TRUE}, {"FALSE", T_FALSE},
};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char to_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

typedef struct parser {
    hr_cesql_t *p_q;
    const char *p_s;
    size_t p_len;
    tok_t *p_toks;
    size_t p_n, p_i; /* tokens, current token */
    unsigned p_depth;
    hr_cesql_error_t *p_err;
    int p_rc; /* first failure: HR_EINVAL or HR_ENOMEM */
} parser_t;

/* Records a parse error at byte `off` (the first one wins) and returns NULL. */
__attribute__((format(printf, 3, 4))) static void *fail(parser_t *p, size_t off, const char *fmt,
                                                        ...)
{
    if (p->p_rc != 0) {
        return NULL;
    }
    p->p_rc = HR_EINVAL;
    if (p->p_err != NULL) {
        char msg[224];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        hr__cesql_error_at(p->p_q, off, HR_CESQL_ERR_PARSE, p->p_err, "%s", msg);
    }
    return NULL;
}

static void *nomem(parser_t *p)
{
    if (p->p_rc == 0) {
        p->p_rc = HR_ENOMEM;
    }
    return NULL;
}

/* Scans a quoted string starting at s[i] (the quote). Returns the index after the closing
 * quote, or 0 when the string is not terminated. */
static size_t scan_string(const char *s, size_t len, size_t i)
{
    char q = s[i++];
    while (i < len) {
        if (s[i] == '\\' && i + 1 < len) {
            i += 2;
        } else if (s[i] == q) {
            if (i + 1 < len && s[i + 1] == q) {
                i += 2; /* doubled quote */
            } else {
                return i + 1;
            }
        } else {
            i++;
        }
    }
    return 0;
}

/* Reads the operator at s[i]; returns its length (0: not an operator). */
static size_t scan_operator(const char *s, size_t len, size_t i, uint8_t *kind)
{
    char c = s[i], d = i + 1 < len ? s[i + 1] : '\0';
    static const char singles[] = "(),*/%+-=<>";
    static const uint8_t single_kinds[] = {T_LPAREN, T_RPAREN, T_COMMA, T_STAR, T_SLASH, T_PERCENT,
                                           T_PLUS,   T_MINUS,  T_EQ,    T_LT,   T_GT};
    if (c == '!' && d == '=') {
        *kind = T_NE;
        return 2;
    }
    if (c == '<' && (d == '=' || d == '>')) {
        *kind = d == '=' ? T_LE : T_LTGT;
        return 2;
    }
    if (c == '>' && d == '=') {
        *kind = T_GE;
        return 2;
    }
    const char *hit = c != '\0' ? strchr(singles, c) : NULL;
    if (hit == NULL) {
        return 0;
    }
    *kind = single_kinds[hit - singles];
    return 1;
}

static void classify_word(const char *s, tok_t *t)
{
    if (!t->t_underscore && !t->t_digit) {
        for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++) {
            const char *kw = keywords[k].name;
            size_t n = strlen(kw), j = 0;
            while (j < n && j < t->t_len && to_upper(s[t->t_pos + j]) == kw[j]) {
                j++;
            }
            if (j == n && n == t->t_len) {
                t->t_kind = (uint8_t)keywords[k].kind;
                return;
            }
        }
    }
    t->t_kind = T_WORD;
}

/* Splits the text into p->p_toks (ending with T_EOF). Returns 0 or the failure code. */
static int tokenize(parser_t *p)
{
    const char *s = p->p_s;
    size_t len = p->p_len, i = 0;
    p->p_toks = malloc((len + 1) * sizeof *p->p_toks);
    if (p->p_toks == NULL) {
        nomem(p);
        return p->p_rc;
    }
    while (true) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
            i++;
        }
        tok_t *t = &p->p_toks[p->p_n++];
        memset(t, 0, sizeof *t);
        t->t_pos = i;
        if (i == len) {
            t->t_kind = T_EOF;
            return 0;
        }
        char c = s[i];
        if (c == '\'' || c == '"') {
            size_t end = scan_string(s, len, i);
            if (end == 0) {
                fail(p, i, "the string starting here is not terminated: add the closing %c.", c);
                return p->p_rc;
            }
            t->t_kind = T_STR;
            t->t_len = end - i;
            i = end;
        } else if (is_alpha(c) || is_digit(c) || c == '_') {
            size_t j = i;
            while (j < len && (is_alpha(s[j]) || is_digit(s[j]) || s[j] == '_')) {
                t->t_underscore |= s[j] == '_';
                t->t_digit |= is_digit(s[j]);
                j++;
            }
            t->t_len = j - i;
            bool all_digits = true;
            for (size_t k = i; k < j; k++) {
                all_digits = all_digits && is_digit(s[k]);
            }
            if (all_digits) {
                t->t_kind = T_INT;
                for (size_t k = i; k < j; k++) {
                    t->t_int = t->t_int * 10 + (uint64_t)(s[k] - '0');
                    if (t->t_int > ((uint64_t)1 << 32)) {
                        t->t_int = (uint64_t)1 << 32;
                    }
                }
            } else {
                classify_word(s, t);
            }
            i = j;
        } else {
            uint8_t kind;
            size_t n = scan_operator(s, len, i, &kind);
            if (n == 0) {
                uint32_t cp = (uint8_t)c;
                hr_utf8_decode((const uint8_t *)s + i, len - i, &cp);
                if (cp >= 0x21 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0)) {
                    char ch[5] = {0};
                    hr_utf8_encode(cp, (uint8_t *)ch);
                    fail(p, i, "unexpected character '%s'.", ch);
                } else {
                    fail(p, i, "unexpected character U+%04X.", (unsigned)cp);
                }
                return p->p_rc;
            }
            t->t_kind = kind;
            t->t_len = n;
            i += n;
        }
    }
}

/* ---- parser helpers ---- */

static const tok_t *cur(const parser_t *p)
{
    return &p->p_toks[p->p_i];
}

static const tok_t *peek(const parser_t *p, size_t ahead)
{
    size_t i = p->p_i + ahead;
    return &p->p_toks[i < p->p_n ? i : p->p_n - 1];
}

/* The number of characters before byte `off`. */
static size_t char_offset(const parser_t *p, size_t off)
{
    size_t n = 0;
    for (size_t i = 0; i < off; i++) {
        n += ((uint8_t)p->p_s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* Describes a token for messages: "the end of the expression", "')'", "'abc'"; at most 24
 * bytes of it, control characters shown as '?'. */
static void describe(const parser_t *p, const tok_t *t, char *buf, size_t cap)
{
    if (t->t_kind == T_EOF) {
        snprintf(buf, cap, "the end of the expression");
        return;
    }
    size_t n = t->t_len > 24 ? 24 : t->t_len;
    /* Do not cut a multi-byte character. */
    while (n > 0 && n < t->t_len && ((uint8_t)p->p_s[t->t_pos + n] & 0xC0) == 0x80) {
        n--;
    }
    char text[32];
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)p->p_s[t->t_pos + i];
        text[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    const char *quote = t->t_kind == T_STR ? "" : "'";
    snprintf(buf, cap, "%s%.*s%s%s", quote, (int)n, text, n < t->t_len ? "..." : "", quote);
}

static void *unexpected(parser_t *p, const char *expected)
{
    char d[48];
    describe(p, cur(p), d, sizeof d);
    return fail(p, cur(p)->t_pos, "expected %s, found %s.", expected, d);
}

static hr_cesql_node_t *new_node(parser_t *p, uint8_t kind, size_t pos)
{
    hr_cesql_node_t *n = hr__cesql_arena_alloc(p->p_q, sizeof *n);
    if (n == NULL) {
        return nomem(p);
    }
    n->n_kind = kind;
    n->n_pos = (uint32_t)pos;
    p->p_q->q_nodes++;
    return n;
}

/* Enters one nesting level; false (error recorded) past HR_CESQL_MAX_DEPTH. */
static bool enter(parser_t *p, size_t pos)
{
    if (++p->p_depth > HR_CESQL_MAX_DEPTH) {
        fail(p, pos,
             "the expression is nested too deeply: at most %d levels of parentheses, prefix "
             "operators, LIKE / IN, function calls and sets are allowed.",
             HR_CESQL_MAX_DEPTH);
        return false;
    }
    return true;
}

/* A growable list of operands and operators while a chain is parsed. */
typedef struct list {
    hr_cesql_node_t **l_nodes;
    uint8_t *l_ops;
    size_t l_n, l_cap;
} list_t;

static bool list_push(parser_t *p, list_t *l, hr_cesql_node_t *n, uint8_t op)
{
    if (l->l_n == l->l_cap) {
        size_t cap = l->l_cap ? l->l_cap * 2 : 8;
        hr_cesql_node_t **nodes = realloc(l->l_nodes, cap * sizeof *nodes);
        if (nodes == NULL) {
            nomem(p);
            return false;
        }
        l->l_nodes = nodes;
        uint8_t *ops = realloc(l->l_ops, cap);
        if (ops == NULL) {
            nomem(p);
            return false;
        }
        l->l_ops = ops;
        l->l_cap = cap;
    }
    l->l_nodes[l->l_n] = n;
    l->l_ops[l->l_n] = op; /* the operator before operand n (unused for the first) */
    l->l_n++;
    return true;
}

/* Moves the list into node n's kids (and operators when `ops`). Frees the list. */
static bool list_finish(parser_t *p, list_t *l, hr_cesql_node_t *n, bool ops)
{
    bool ok = false;
    n->n_kids = hr__cesql_arena_alloc(p->p_q, l->l_n * sizeof *n->n_kids);
    if (n->n_kids == NULL) {
        nomem(p);
        goto end;
    }
    memcpy(n->n_kids, l->l_nodes, l->l_n * sizeof *n->n_kids);
    n->n_count = (uint32_t)l->l_n;
    if (ops && l->l_n > 1) {
        n->n_ops = hr__cesql_arena_alloc(p->p_q, l->l_n - 1);
        if (n->n_ops == NULL) {
            nomem(p);
            goto end;
        }
        memcpy(n->n_ops, l->l_ops + 1, l->l_n - 1);
    }
    ok = true;
end:
    free(l->l_nodes);
    free(l->l_ops);
    memset(l, 0, sizeof *l);
    return ok;
}

static void list_free(list_t *l)
{
    free(l->l_nodes);
    free(l->l_ops);
    memset(l, 0, sizeof *l);
}

/* ---- literals ---- */

/* Copies the content of string token t into the arena, unescaped (see the file comment). */
static bool string_value(parser_t *p, const tok_t *t, const char **out, size_t *out_len)
{
    const char *s = p->p_s + t->t_pos + 1;
    size_t len = t->t_len - 2, n = 0;
    char q = s[-1];
    char *d = hr__cesql_arena_alloc(p->p_q, len + 1);
    if (d == NULL) {
        nomem(p);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((s[i] == '\\' || s[i] == q) && i + 1 < len && s[i + 1] == q) {
            d[n++] = q;
            i++;
        } else if (s[i] == '\\' && i + 1 < len) {
            d[n++] = s[i++];
            d[n++] = s[i];
        } else {
            d[n++] = s[i];
        }
    }
    d[n] = '\0';
    *out = d;
    *out_len = n;
    return true;
}

/* Compiles a LIKE pattern (already unescaped as a string literal) into n->n_like. */
static bool like_compile(parser_t *p, hr_cesql_node_t *n, const char *pat, size_t len)
{
    /* At most one element per pattern byte. */
    hr_cesql_like_el_t *els = hr__cesql_arena_alloc(p->p_q, (len + 1) * sizeof *els);
    char *text = hr__cesql_arena_alloc(p->p_q, len + 1);
    if (els == NULL || text == NULL) {
        nomem(p);
        return false;
    }
    size_t n_els = 0, t = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        bool escaped = c == '\\' && i + 1 < len && (pat[i + 1] == '%' || pat[i + 1] == '_');
        if (!escaped && (c == '%' || c == '_')) {
            uint8_t kind = c == '%' ? HR_CESQL_LIKE_ANY : HR_CESQL_LIKE_ONE;
            if (kind == HR_CESQL_LIKE_ANY && n_els > 0 &&
                els[n_els - 1].le_kind == HR_CESQL_LIKE_ANY) {
                continue; /* %% is % */
            }
            els[n_els++].le_kind = kind;
            continue;
        }
        if (escaped) {
            c = pat[++i];
        }
        if (n_els == 0 || els[n_els - 1].le_kind != HR_CESQL_LIKE_TEXT) {
            els[n_els].le_kind = HR_CESQL_LIKE_TEXT;
            els[n_els].le_s = text + t;
            els[n_els].le_len = 0;
            n_els++;
        }
        text[t++] = c;
        els[n_els - 1].le_len++;
    }
    n->n_like = els;
    n->n_like_count = n_els;
    return true;
}

static hr_cesql_node_t *parse_expr(parser_t *p);

/* Signed integer literal: sign (+1 / -1, 0 for none) and the INT token. */
static hr_cesql_node_t *int_literal(parser_t *p, const tok_t *t, int sign, size_t pos)
{
    uint64_t limit = sign < 0 ? (uint64_t)INT32_MAX + 1 : (uint64_t)INT32_MAX;
    if (t->t_int > limit) {
        return fail(p, pos,
                    "the integer literal %s%.*s is out of range: integers are 32-bit, from "
                    "-2147483648 to 2147483647.",
                    sign < 0 ? "-" : "", t->t_len > 30 ? 30 : (int)t->t_len, p->p_s + t->t_pos);
    }
    hr_cesql_node_t *n = new_node(p, HR_CESQL_N_LIT, pos);
    if (n == NULL) {
        return NULL;
    }
    n->n_lit.v_type = HR_CESQL_INTEGER;
    n->n_lit.v_i = (int32_t)(sign < 0 ? -(int64_t)t->t_int : (int64_t)t->t_int);
    return n;
}

/* ---- identifiers and calls ---- */

static hr_cesql_attr_t attr_of(const char *name)
{
    static const char *const names[] = {"specversion",     "id",         "source",  "type",
                                        "datacontenttype", "dataschema", "subject", "time"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i]) == 0) {
            return (hr_cesql_attr_t)(i + 1);
        }
    }
    return HR_CESQL_A_EXT;
}

/* An attribute reference (for ATTR and EXISTS nodes) from WORD token t. */
static hr_cesql_node_t *attr_node(parser_t *p, const tok_t *t, uint8_t kind, size_t pos)
{
    if (t->t_kind != T_WORD) {
        return unexpected(p, "an attribute name");
    }
    const char *s = p->p_s + t->t_pos;
    if (t->t_underscore) {
        return fail(p, t->t_pos,
                    "'%.*s' is not a valid attribute name: attribute names contain only "
                    "letters and digits (a function call needs parentheses).",
                    t->t_len > 64 ? 64 : (int)t->t_len, s);
    }
    if (t->t_len > HR_CESQL_MAX_IDENT_BYTES) {
        return fail(p, t->t_pos,
                    "the attribute name '%.24s...' is too long: names have at most %d "
                    "characters, as no event attribute can be longer.",
                    s, HR_CESQL_MAX_IDENT_BYTES);
    }
    hr_cesql_node_t *n = new_node(p, kind, pos);
    char *name = n ? hr__cesql_arena_alloc(p->p_q, t->t_len + 1) : NULL;
    if (name == NULL) {
        return nomem(p);
    }
    for (size_t i = 0; i < t->t_len; i++) {
        name[i] = to_lower(s[i]);
    }
    n->n_str = name;
    n->n_len = t->t_len;
    n->n_attr = (uint8_t)attr_of(name);
    return n;
}

/* name '(' [expr (',' expr)*] ')' with the current token at the name. */
static hr_cesql_node_t *call_node(parser_t *p)
{
    const tok_t *t = cur(p);
    const char *s = p->p_s + t->t_pos;
    if (t->t_digit || !is_alpha(s[0])) {
        return fail(p, t->t_pos,
                    "'%.*s' is not a valid function name: function names are a letter followed "
                    "by letters and '_'.",
                    t->t_len > 64 ? 64 : (int)t->t_len, s);
    }
    hr_cesql_node_t *n = new_node(p, HR_CESQL_N_CALL, t->t_pos);
    char *name = n ? hr__cesql_arena_alloc(p->p_q, t->t_len + 1) : NULL;
    if (name == NULL) {
        return nomem(p);
    }
    for (size_t i = 0; i < t->t_len; i++) {
        name[i] = to_upper(s[i]);
    }
    n->n_str = name;
    n->n_len = t->t_len;
    p->p_i += 2; /* name and '(' */
    list_t args = {0};
    if (cur(p)->t_kind != T_RPAREN) {
        while (true) {
            if (args.l_n == HR_CESQL_MAX_ARGS) {
                list_free(&args);
                return fail(p, cur(p)->t_pos,
                            "too many arguments for %s: a function call takes at most %d.", name,
                            HR_CESQL_MAX_ARGS);
            }
            hr_cesql_node_t *a = parse_expr(p);
            if (a == NULL || !list_push(p, &args, a, 0)) {
                list_free(&args);
                return NULL;
            }
            if (cur(p)->t_kind != T_COMMA) {
                break;
            }
            p->p_i++;
        }
    }
    if (cur(p)->t_kind != T_RPAREN) {
        list_free(&args);
        return unexpected(p, "',' or ')' in the argument list");
    }
    p->p_i++;
    if (args.l_n > 0 && !list_finish(p, &args, n, false)) {
        return NULL;
    }
    n->n_func = hr__cesql_func_find(name, n->n_len, n->n_count);
    if (n->n_func == NULL && p->p_q->q_bad_call == NULL) {
        p->p_q->q_bad_call = n;
    }
    return n;
}

/* ---- precedence levels ---- */

static hr_cesql_node_t *parse_primary(parser_t *p)
{
    const tok_t *t = cur(p);
    hr_cesql_node_t *n;
    switch (t->t_kind) {
    case T_INT:
        p->p_i++;
        return int_literal(p, t, 0, t->t_pos);
    case T_PLUS: /* a signed literal, the lexer's ('+' | '-')? INT_DIGIT+ */
        if (peek(p, 1)->t_kind == T_INT) {
            p->p_i += 2;
            return int_literal(p, &p->p_toks[p->p_i - 1], 1, t->t_pos);
        }
        return unexpected(p, "an expression");
    case T_STR:
        n = new_node(p, HR_CESQL_N_LIT, t->t_pos);
        if (n == NULL || !string_value(p, t, &n->n_lit.v_s, &n->n_lit.v_len)) {
            return NULL;
        }
        n->n_lit.v_type = HR_CESQL_STRING;
        p->p_i++;
        return n;
    case T_TRUE:
    case T_FALSE:
        n = new_node(p, HR_CESQL_N_LIT, t->t_pos);
        if (n == NULL) {
            return NULL;
        }
        n->n_lit.v_type = HR_CESQL_BOOLEAN;
        n->n_lit.v_b = t->t_kind == T_TRUE;
        p->p_i++;
        return n;
    case T_EXISTS:
        p->p_i++;
        n = attr_node(p, cur(p), HR_CESQL_N_EXISTS, t->t_pos);
        p->p_i += n != NULL;
        return n;
    case T_WORD:
        if (peek(p, 1)->t_kind == T_LPAREN) {
            return call_node(p); /* each argument is one level deeper (parse_expr) */
        }
        n = attr_node(p, t, HR_CESQL_N_ATTR, t->t_pos);
        p->p_i += n != NULL;
        return n;
    case T_LPAREN:
        p->p_i++;
        n = parse_expr(p);
        if (n == NULL) {
            return NULL;
        }
        if (cur(p)->t_kind != T_RPAREN) {
            char d[48];
            describe(p, cur(p), d, sizeof d);
            return fail(p, cur(p)->t_pos,
                        "expected ')' to close the '(' at character %zu, found %s.",
                        char_offset(p, t->t_pos), d);
        }
        p->p_i++;
        return n;
    default:
        return unexpected(p, "an expression");
    }
}

static hr_cesql_node_t *parse_unary(parser_t *p)
{
    const tok_t *t = cur(p);
    if (t->t_kind == T_MINUS && peek(p, 1)->t_kind == T_INT) {
        p->p_i += 2;
        return int_literal(p, &p->p_toks[p->p_i - 1], -1, t->t_pos);
    }
    if (t->t_kind != T_NOT && t->t_kind != T_MINUS) {
        return parse_primary(p);
    }
    if (!enter(p, t->t_pos)) {
        return NULL;
    }
    p->p_i++;
    hr_cesql_node_t *kid = parse_unary(p);
    p->p_depth--;
    if (kid == NULL) {
        return NULL;
    }
    hr_cesql_node_t *n =
        new_node(p, t->t_kind == T_NOT ? HR_CESQL_N_NOT : HR_CESQL_N_NEG, t->t_pos);
    if (n == NULL) {
        return NULL;
    }
    n->n_kids = hr__cesql_arena_alloc(p->p_q, sizeof *n->n_kids);
    if (n->n_kids == NULL) {
        return nomem(p);
    }
    n->n_kids[0] = kid;
    n->n_count = 1;
    return n;
}

/* x [NOT] IN '(' expr (',' expr)* ')' with the current token at '('. */
static hr_cesql_node_t *in_node(parser_t *p, hr_cesql_node_t *x, bool negate, size_t pos)
{
    if (cur(p)->t_kind != T_LPAREN) {
        return unexpected(p, "'(' and a list of values after IN");
    }
    p->p_i++;
    list_t set = {0};
    if (!list_push(p, &set, x, 0)) {
        list_free(&set);
        return NULL;
    }
    while (true) {
        hr_cesql_node_t *e = parse_expr(p);
        if (e == NULL || !list_push(p, &set, e, 0)) {
            list_free(&set);
            return NULL;
        }
        if (cur(p)->t_kind != T_COMMA) {
            break;
        }
        p->p_i++;
    }
    if (cur(p)->t_kind != T_RPAREN) {
        list_free(&set);
        return unexpected(p, "',' or ')' in the IN list");
    }
    p->p_i++;
    hr_cesql_node_t *n = new_node(p, HR_CESQL_N_IN, pos);
    if (n == NULL || !list_finish(p, &set, n, false)) {
        list_free(&set);
        return NULL;
    }
    n->n_negate = negate;
    return n;
}

static hr_cesql_node_t *parse_post(parser_t *p)
{
    size_t pos = cur(p)->t_pos;
    unsigned saved = p->p_depth;
    hr_cesql_node_t *x = parse_unary(p);
    while (x != NULL) {
        const tok_t *t = cur(p);
        bool negate = t->t_kind == T_NOT;
        uint8_t k = negate ? peek(p, 1)->t_kind : t->t_kind;
        if (k != T_LIKE && k != T_IN) {
            if (negate) {
                p->p_i++;
                x = unexpected(p, "LIKE or IN after NOT");
            }
            break;
        }
        if (!enter(p, t->t_pos)) {
            x = NULL;
            break;
        }
        p->p_i += negate ? 2 : 1;
        if (k == T_IN) {
            x = in_node(p, x, negate, pos);
            continue;
        }
        const tok_t *pt = cur(p);
        if (pt->t_kind != T_STR) {
            x = unexpected(p, "a string literal as the LIKE pattern");
            break;
        }
        hr_cesql_node_t *n = new_node(p, HR_CESQL_N_LIKE, pos);
        const char *pat;
        size_t pat_len;
        if (n == NULL || !string_value(p, pt, &pat, &pat_len) ||
            !like_compile(p, n, pat, pat_len)) {
            x = NULL;
            break;
        }
        n->n_str = pat;
        n->n_len = pat_len;
        n->n_negate = negate;
        n->n_kids = hr__cesql_arena_alloc(p->p_q, sizeof *n->n_kids);
        if (n->n_kids == NULL) {
            x = nomem(p);
            break;
        }
        n->n_kids[0] = x;
        n->n_count = 1;
        p->p_i++;
        x = n;
    }
    p->p_depth = saved;
    return x;
}

/* Operator of token kind k at chain level `level` (0 mul, 1 add, 2 cmp, 3 logic), or -1. */
static int level_op(int level, uint8_t k)
{
    static const struct {
        uint8_t tok, op, level;
    } ops[] = {
        {T_STAR, HR_CESQL_OP_MUL, 0},    {T_SLASH, HR_CESQL_OP_DIV, 0},
        {T_PERCENT, HR_CESQL_OP_MOD, 0}, {T_PLUS, HR_CESQL_OP_ADD, 1},
        {T_MINUS, HR_CESQL_OP_SUB, 1},   {T_EQ, HR_CESQL_OP_EQ, 2},
        {T_NE, HR_CESQL_OP_NE, 2},       {T_LTGT, HR_CESQL_OP_NE, 2},
        {T_LT, HR_CESQL_OP_LT, 2},       {T_LE, HR_CESQL_OP_LE, 2},
        {T_GT, HR_CESQL_OP_GT, 2},       {T_GE, HR_CESQL_OP_GE, 2},
        {T_AND, HR_CESQL_OP_AND, 3},     {T_OR, HR_CESQL_OP_OR, 3},
        {T_XOR, HR_CESQL_OP_XOR, 3},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (ops[i].tok == k && ops[i].level == level) {
            return ops[i].op;
        }
    }
    return -1;
}

/* One binary level: operand (op operand)* flattened into one CHAIN or LOGIC node. */
static hr_cesql_node_t *parse_level(parser_t *p, int level)
{
    size_t pos = cur(p)->t_pos;
    hr_cesql_node_t *first = level == 0 ? parse_post(p) : parse_level(p, level - 1);
    if (first == NULL) {
        return NULL;
    }
    int op = level_op(level, cur(p)->t_kind);
    if (op < 0) {
        return first;
    }
    list_t l = {0};
    if (!list_push(p, &l, first, 0)) {
        return NULL;
    }
    while ((op = level_op(level, cur(p)->t_kind)) >= 0) {
        p->p_i++;
        hr_cesql_node_t *next = level == 0 ? parse_post(p) : parse_level(p, level - 1);
        if (next == NULL || !list_push(p, &l, next, (uint8_t)op)) {
            list_free(&l);
            return NULL;
        }
    }
    hr_cesql_node_t *n = new_node(p, level == 3 ? HR_CESQL_N_LOGIC : HR_CESQL_N_CHAIN, pos);
    if (n == NULL || !list_finish(p, &l, n, true)) {
        list_free(&l);
        return NULL;
    }
    return n;
}

static hr_cesql_node_t *parse_expr(parser_t *p)
{
    if (!enter(p, cur(p)->t_pos)) {
        return NULL;
    }
    hr_cesql_node_t *n = parse_level(p, 3);
    p->p_depth--;
    return n;
}

int hr__cesql_parse(hr_cesql_t *q, hr_cesql_error_t *err)
{
    parser_t p = {.p_q = q, .p_s = q->q_text, .p_len = q->q_text_len, .p_err = err};
    if (tokenize(&p) == 0) {
        if (cur(&p)->t_kind == T_EOF) {
            fail(&p, 0,
                 "the expression is empty; write a condition such as type = 'com.example.x'.");
        } else {
            q->q_root = parse_expr(&p);
            if (q->q_root != NULL && cur(&p)->t_kind != T_EOF) {
                q->q_root = unexpected(&p, "an operator or the end of the expression");
            }
        }
    }
    free(p.p_toks);
    return p.p_rc;
}
