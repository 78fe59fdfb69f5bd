/* SPDX-License-Identifier: MIT */
/*
 * The CESQL built-in functions (spec §3.5, and the casting functions INT, BOOL, STRING,
 * IS_INT, IS_BOOL of the CESQL drafts, which the TCK and the spec's §3.7 refer to). Looked up
 * by name and arity at compile time; called by the evaluator (cesql_eval.c) with arguments
 * already cast to the declared parameter types, on any thread.
 *
 * Strings are counted in Unicode characters (code points of the UTF-8 text): LENGTH, LEFT,
 * RIGHT and SUBSTRING never split a character. TRIM removes the characters with the Unicode
 * White_Space property. LOWER and UPPER apply the simple (one-to-one) case mappings of the
 * Latin, Greek, Cyrillic and Armenian blocks and of the fullwidth Latin letters; other
 * characters (and mappings that change a character into several, like ß -> SS) are kept.
 *
 * Functions that return a part of their argument return a slice of it; CONCAT, CONCAT_WS,
 * LOWER and UPPER build their result in the evaluation's scratch arena.
 */
#include <limits.h>
#include <string.h>

#include "filter/cesql_int.h"
#include "util/utf8.h"

/* ---- Unicode helpers ---- */

/* Decodes the character at s[i]; a byte that starts no valid sequence counts as one
 * character (U+FFFD). Returns its length. */
static size_t next_char(const char *s, size_t len, size_t i, uint32_t *cp)
{
    size_t n = hr_utf8_decode((const uint8_t *)s + i, len - i, cp);
    if (n == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return n;
}

static size_t count_chars(const char *s, size_t len)
{
    size_t n = 0;
    uint32_t cp;
    for (size_t i = 0; i < len; i += next_char(s, len, i, &cp)) {
        n++;
    }
    return n;
}

/* Byte offset of character number `k` (0-based) of s, or len when s is shorter. */
static size_t char_offset(const char *s, size_t len, size_t k)
{
    size_t i = 0;
    uint32_t cp;
    while (k > 0 && i < len) {
        i += next_char(s, len, i, &cp);
        k--;
    }
    return i;
}

static bool is_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Ranges where upper and lower case alternate: even code point upper, odd lower (or the
 * reverse when `odd_upper`). */
static const struct {
    uint32_t lo, hi;
    bool odd_upper;
} alternating[] = {
    {0x0100, 0x012F, false}, {0x0132, 0x0137, false}, {0x0139, 0x0148, true},
    {0x014A, 0x0177, false}, {0x0179, 0x017E, true},  {0x0182, 0x0185, false},
    {0x01A0, 0x01A5, false}, {0x01CD, 0x01DC, true},  {0x01DE, 0x01EF, false},
    {0x01F8, 0x021F, false}, {0x0222, 0x0233, false}, {0x0246, 0x024F, false},
    {0x0370, 0x0373, false}, {0x03D8, 0x03EF, false}, {0x0460, 0x0481, false},
    {0x048A, 0x04BF, false}, {0x04C1, 0x04CE, true},  {0x04D0, 0x052F, false},
    {0x1E00, 0x1E95, false}, {0x1EA0, 0x1EFF, false},
};

/* Ranges whose lower-case letters are the upper-case ones plus `delta`. */
static const struct {
    uint32_t lo, hi; /* upper-case range */
    int32_t delta;
} shifted[] = {
    {0x0041, 0x005A, 32}, {0x00C0, 0x00D6, 32}, {0x00D8, 0x00DE, 32}, {0x0391, 0x03A1, 32},
    {0x03A3, 0x03AB, 32}, {0x0388, 0x038A, 37}, {0x038E, 0x038F, 63}, {0x0410, 0x042F, 32},
    {0x0400, 0x040F, 80}, {0x0531, 0x0556, 48}, {0xFF21, 0xFF3A, 32},
};

/* Single pairs (upper, lower) that fit no range. */
static const uint32_t pairs[][2] = {
    {0x0178, 0x00FF}, {0x0386, 0x03AC}, {0x038C, 0x03CC}, {0x0130, 0x0069},
    {0x0049, 0x0131}, {0x0053, 0x017F}, {0x03A3, 0x03C2},
};

static uint32_t map_case(uint32_t c, bool upper)
{
    for (size_t i = 0; i < sizeof shifted / sizeof shifted[0]; i++) {
        if (upper && c >= shifted[i].lo + (uint32_t)shifted[i].delta &&
            c <= shifted[i].hi + (uint32_t)shifted[i].delta) {
            return c - (uint32_t)shifted[i].delta;
        }
        if (!upper && c >= shifted[i].lo && c <= shifted[i].hi) {
            return c + (uint32_t)shifted[i].delta;
        }
    }
    for (size_t i = 0; i < sizeof alternating / sizeof alternating[0]; i++) {
        if (c >= alternating[i].lo && c <= alternating[i].hi) {
            bool is_upper = ((c & 1) != 0) == alternating[i].odd_upper;
            if (is_upper && !upper && c + 1 <= alternating[i].hi) {
                return c + 1;
            }
            if (!is_upper && upper && c - 1 >= alternating[i].lo) {
                return c - 1;
            }
            return c;
        }
    }
    /* Pairs: the first match wins, so I <-> i comes from the ASCII range, not from ı. */
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (upper && c == pairs[i][1]) {
            return pairs[i][0];
        }
        if (!upper && c == pairs[i][0]) {
            return pairs[i][1];
        }
    }
    return c;
}

/* ---- results ---- */

static void ret_int(hr_cesql_val_t *out, int32_t v)
{
    hr__cesql_zero(HR_CESQL_INTEGER, out);
    out->v_i = v;
}

static void ret_bool(hr_cesql_val_t *out, bool v)
{
    hr__cesql_zero(HR_CESQL_BOOLEAN, out);
    out->v_b = v;
}

static void ret_str(hr_cesql_val_t *out, const char *s, size_t len)
{
    hr__cesql_zero(HR_CESQL_STRING, out);
    out->v_s = s;
    out->v_len = len;
}

/* ---- string functions (spec §3.5.1) ---- */

static void fn_length(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)cx;
    (void)n;
    /* An attribute is far shorter than 2^31 characters, a built string at most the scratch. */
    ret_int(out, (int32_t)count_chars(a[0].v_s, a[0].v_len));
}

/* CONCAT (sep == NULL) and CONCAT_WS. */
static void concat(hr_cesql_ctx_t *cx, const hr_cesql_val_t *sep, const hr_cesql_val_t *a, size_t n,
                   hr_cesql_val_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += a[i].v_len + (sep != NULL && i > 0 ? sep->v_len : 0);
    }
    if (n == 1) {
        ret_str(out, a[0].v_s, a[0].v_len);
        return;
    }
    char *d = total ? hr__cesql_scratch(cx, total) : NULL;
    if (total != 0 && d == NULL) {
        return; /* the zero value "", with the error raised by the scratch */
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (sep != NULL && i > 0) {
            memcpy(d + pos, sep->v_s, sep->v_len);
            pos += sep->v_len;
        }
        if (a[i].v_len) {
            memcpy(d + pos, a[i].v_s, a[i].v_len);
            pos += a[i].v_len;
        }
    }
    ret_str(out, d ? d : "", pos);
}

static void fn_concat(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    concat(cx, NULL, a, n, out);
}

static void fn_concat_ws(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    concat(cx, &a[0], a + 1, n - 1, out);
}

static void change_case(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, bool upper,
                        hr_cesql_val_t *out)
{
    const char *s = a->v_s;
    size_t len = a->v_len, need = 0;
    uint32_t cp;
    uint8_t tmp[4];
    for (size_t i = 0; i < len;) {
        size_t k = next_char(s, len, i, &cp);
        size_t m = hr_utf8_encode(map_case(cp, upper), tmp);
        need += m ? m : k;
        i += k;
    }
    char *d = need ? hr__cesql_scratch(cx, need) : NULL;
    if (need != 0 && d == NULL) {
        return;
    }
    size_t pos = 0;
    for (size_t i = 0; i < len;) {
        size_t k = next_char(s, len, i, &cp);
        size_t m = hr_utf8_encode(map_case(cp, upper), (uint8_t *)d + pos);
        if (m == 0) { /* not a character: keep the byte(s) */
            memcpy(d + pos, s + i, k);
            m = k;
        }
        pos += m;
        i += k;
    }
    ret_str(out, d ? d : "", pos);
}

static void fn_lower(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    change_case(cx, a, false, out);
}

static void fn_upper(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    change_case(cx, a, true, out);
}

static void fn_trim(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)cx;
    (void)n;
    const char *s = a->v_s;
    size_t len = a->v_len, b = 0, e = len;
    uint32_t cp;
    while (b < len) {
        size_t k = next_char(s, len, b, &cp);
        if (!is_space(cp)) {
            break;
        }
        b += k;
    }
    /* From the end: step back to the start of each character. */
    while (e > b) {
        size_t st = e - 1;
        while (st > b && ((uint8_t)s[st] & 0xC0) == 0x80 && e - st < 4) {
            st--;
        }
        if (next_char(s, e, st, &cp) != e - st || !is_space(cp)) {
            break;
        }
        e = st;
    }
    ret_str(out, s + b, e - b);
}

/* LEFT and RIGHT: y < 0 returns x with a functionEvaluation error. */
static void left_right(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, bool right, hr_cesql_val_t *out)
{
    const char *s = a[0].v_s;
    size_t len = a[0].v_len;
    int32_t y = a[1].v_i;
    if (y < 0) {
        hr__cesql_raise(cx, HR_CESQL_ERR_FUNCTION_EVALUATION);
        ret_str(out, s, len);
        return;
    }
    size_t chars = count_chars(s, len);
    if ((size_t)y >= chars) {
        ret_str(out, s, len);
        return;
    }
    size_t cut = char_offset(s, len, right ? chars - (size_t)y : (size_t)y);
    if (right) {
        ret_str(out, s + cut, len - cut);
    } else {
        ret_str(out, s, cut);
    }
}

static void fn_left(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    left_right(cx, a, false, out);
}

static void fn_right(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    left_right(cx, a, true, out);
}

/* SUBSTRING(x, pos [, len]): pos counts from 1, from the end when negative; 0 gives "". */
static void fn_substring(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    const char *s = a[0].v_s;
    size_t len = a[0].v_len;
    int64_t pos = a[1].v_i, chars = (int64_t)count_chars(s, len);
    hr__cesql_zero(HR_CESQL_STRING, out);
    if (pos > chars || pos < -chars || (n == 3 && a[2].v_i < 0)) {
        hr__cesql_raise(cx, HR_CESQL_ERR_FUNCTION_EVALUATION);
        return;
    }
    if (pos == 0) {
        return;
    }
    int64_t first = pos > 0 ? pos - 1 : chars + pos; /* 0-based */
    int64_t count = n == 3 ? a[2].v_i : chars - first;
    if (count > chars - first) {
        count = chars - first;
    }
    size_t b = char_offset(s, len, (size_t)first);
    size_t e = b + char_offset(s + b, len - b, (size_t)count);
    ret_str(out, s + b, e - b);
}

/* ---- math (spec §3.5.2) ---- */

static void fn_abs(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    if (a[0].v_i == INT32_MIN) {
        hr__cesql_raise(cx, HR_CESQL_ERR_MATH);
        ret_int(out, INT32_MAX);
        return;
    }
    ret_int(out, a[0].v_i < 0 ? -a[0].v_i : a[0].v_i);
}

/* ---- casting functions ---- */

static void fn_int(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    ret_int(out, hr__cesql_to_int(cx, &a[0]));
}

static void fn_bool(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    ret_bool(out, hr__cesql_to_bool(cx, &a[0], true));
}

static void fn_string(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)n;
    const char *s;
    size_t len;
    hr__cesql_to_str(cx, &a[0], &s, &len);
    ret_str(out, s, len);
}

/* IS_INT: an Integer, or a String that INT() would convert without error. */
static void fn_is_int(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)cx;
    (void)n;
    int32_t i;
    ret_bool(out,
             a[0].v_type == HR_CESQL_INTEGER ||
                 (a[0].v_type == HR_CESQL_STRING && hr__cesql_parse_int(a[0].v_s, a[0].v_len, &i)));
}

/* IS_BOOL: a Boolean, or a String that BOOL() would convert without error. */
static void fn_is_bool(hr_cesql_ctx_t *cx, const hr_cesql_val_t *a, size_t n, hr_cesql_val_t *out)
{
    (void)cx;
    (void)n;
    bool b;
    ret_bool(out,
             a[0].v_type == HR_CESQL_BOOLEAN || (a[0].v_type == HR_CESQL_STRING &&
                                                 hr__cesql_parse_bool(a[0].v_s, a[0].v_len, &b)));
}

/* ---- the table ---- */

#define S HR_CESQL_STRING
#define I HR_CESQL_INTEGER
#define B HR_CESQL_BOOLEAN
#define A HR_CESQL_ANY
#define VAR HR_CESQL_MAX_ARGS

static const hr_cesql_func_t funcs[] = {
    {"ABS", 1, 1, I, {I, I, I}, fn_abs},         {"LENGTH", 1, 1, I, {S, S, S}, fn_length},
    {"CONCAT", 0, VAR, S, {S, S, S}, fn_concat}, {"CONCAT_WS", 1, VAR, S, {S, S, S}, fn_concat_ws},
    {"LOWER", 1, 1, S, {S, S, S}, fn_lower},     {"UPPER", 1, 1, S, {S, S, S}, fn_upper},
    {"TRIM", 1, 1, S, {S, S, S}, fn_trim},       {"LEFT", 2, 2, S, {S, I, I}, fn_left},
    {"RIGHT", 2, 2, S, {S, I, I}, fn_right},     {"SUBSTRING", 2, 3, S, {S, I, I}, fn_substring},
    {"INT", 1, 1, I, {A, A, A}, fn_int},         {"BOOL", 1, 1, B, {A, A, A}, fn_bool},
    {"STRING", 1, 1, S, {A, A, A}, fn_string},   {"IS_INT", 1, 1, B, {A, A, A}, fn_is_int},
    {"IS_BOOL", 1, 1, B, {A, A, A}, fn_is_bool},
};

#undef S
#undef I
#undef B
#undef A
#undef VAR

const hr_cesql_func_t *hr__cesql_func_find(const char *name, size_t len, size_t n_args)
{
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
        if (strlen(funcs[i].f_name) == len && memcmp(funcs[i].f_name, name, len) == 0 &&
            n_args >= funcs[i].f_min_args && n_args <= funcs[i].f_max_args) {
            return &funcs[i];
        }
    }
    return NULL;
}
