/* SPDX-License-Identifier: MIT */
/*
 * Content patterns: a semantics table (pattern + JSON document or CloudEvent -> match or not),
 * invalid patterns with their error paths (through the standalone compiler and the "pattern"
 * filter dialect), hr_pattern_required_exact, and the vendored aws/event-ruler fixtures:
 * arrayRule/arrayEvent, bigEvent (with timing), the $or rule files and the 51
 * correctness-cases, each with an expectation and where it came from (see test_correctness).
 *
 * JSON in the tables is written with single quotes for readability; load() turns them into
 * double quotes (no test value contains an apostrophe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "ce/event.h"
#include "filter/filter.h"
#include "filter/pattern.h"
#include "filter/pattern_int.h"
#include "util/err.h"
#include "util/utf8.h"

#define ER_DIR HR_CONFORMANCE_DIR "/event-ruler/src/test"

static char *quotes(const char *text)
{
    char *s = strdup(text);
    for (char *p = s; *p; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    return s;
}

static json_t *load(const char *text)
{
    char *s = quotes(text);
    json_error_t jerr;
    json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    }
    free(s);
    return j;
}

static hr_ce_event_t *event(const char *text)
{
    char *s = quotes(text);
    hr_ce_event_t *ev = NULL;
    hr_ce_error_t err;
    if (hr_ce_from_structured((const uint8_t *)s, strlen(s), &ev, &err) != 0) {
        fail_msg("bad test event %s: %s", text, err.msg);
    }
    free(s);
    return ev;
}

static hr_pattern_t *compile_ok(const char *text)
{
    json_t *j = load(text);
    hr_pattern_t *p = NULL;
    char err[256], path[128];
    if (hr_pattern_compile(j, &p, err, sizeof err, path, sizeof path) != 0) {
        fail_msg("pattern %s rejected at %s: %s", text, path, err);
    }
    json_decref(j);
    return p;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static json_t *load_file(const char *path)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        fail_msg("cannot parse %s: %s", path, jerr.text);
    }
    return j;
}

/* ---- the semantics table ---- */

enum { J, C }; /* J: hr_pattern_match_json on a document; C: hr_pattern_match on a CloudEvent */
enum { NO, YES };

typedef struct pcase {
    int mode;
    const char *pattern;
    const char *input; /* a JSON document (J) or a structured CloudEvent (C) */
    int expect;
} pcase_t;

#define EV                                                                                         \
    "{'specversion':'1.0','id':'1','source':'/orders','type':'com.example.order.created',"         \
    "'subject':'eu/123','time':'2024-03-05T10:20:30Z','count':42,'flag':true,'city':'Zürich',"    \
    "'data':{'price':10.0,'items':[{'sku':'A','qty':2},{'sku':'B','qty':0}],'ip':'10.1.2.3'}}"
#define EV_MIN "{'specversion':'1.0','id':'2','source':'/s','type':'t'}"
#define EV_TEXT                                                                                    \
    "{'specversion':'1.0','id':'3','source':'/s','type':'t','datacontenttype':'text/plain',"       \
    "'data':'hello'}"
#define EV_ARR                                                                                     \
    "{'specversion':'1.0','id':'4','source':'/s','type':'t','data':[{'a':'1'},{'b':'2'}]}"
#define EV_STR "{'specversion':'1.0','id':'5','source':'/s','type':'t','data':'hi'}"
#define EV_BIG                                                                                     \
    "{'specversion':'1.0','id':'6','source':'/s','type':'t',"                                      \
    "'data':{'big':123456789012345678901234567890}}"
/* The employees example of event-ruler's README ("JSON Array Matching"). */
#define EMPLOYEES                                                                                  \
    "{'employees':[[{'firstName':'John','lastName':'Doe'},{'firstName':'Anna','lastName':'Smith'}" \
    "],"                                                                                           \
    "[{'firstName':'Peter','lastName':'Jones'}]]}"

static const pcase_t cases[] = {
    /* ---- exact values: strings, numbers (numerically), booleans, null ---- */
    {J, "{'a':['x']}", "{'a':'x'}", YES},
    {J, "{'a':['x']}", "{'a':'y'}", NO},
    {J, "{'a':['x','y']}", "{'a':'y'}", YES},
    {J, "{'a':['x']}", "{}", NO},
    {J, "{'a':['x']}", "{'a':'X'}", NO},
    {J, "{'a':[10]}", "{'a':10.0}", YES},
    {J, "{'a':[10]}", "{'a':1e1}", YES},
    {J, "{'a':[1e1]}", "{'a':10}", YES},
    {J, "{'a':[10.5]}", "{'a':10.50}", YES},
    {J, "{'a':[10]}", "{'a':11}", NO},
    {J, "{'a':[10]}", "{'a':'10'}", NO},
    {J, "{'a':['10']}", "{'a':10}", NO},
    {J, "{'a':[9007199254740993]}", "{'a':9007199254740992}", NO},
    {J, "{'a':[123456789012]}", "{'a':123456789012}", YES},
    {J, "{'a':[true]}", "{'a':true}", YES},
    {J, "{'a':[true]}", "{'a':'true'}", NO},
    {J, "{'a':[false]}", "{'a':false}", YES},
    {J, "{'a':[false]}", "{'a':0}", NO},
    {J, "{'a':[null]}", "{'a':null}", YES},
    {J, "{'a':[null]}", "{}", NO},
    {J, "{'a':['']}", "{'a':''}", YES},
    {J, "{'a':['東京']}", "{'a':'東京'}", YES},
    {J, "{'a':{'b':['x']}}", "{'a':{'b':'x'}}", YES},
    {J, "{'a':{'b':['x']}}", "{'a':'x'}", NO},
    {J, "{'a':{'b':['x']},'c':['y']}", "{'a':{'b':'x'},'c':'z'}", NO},
    /* ---- prefix, suffix, equals-ignore-case ---- */
    {J, "{'a':[{'prefix':'ab'}]}", "{'a':'abc'}", YES},
    {J, "{'a':[{'prefix':'ab'}]}", "{'a':'xab'}", NO},
    {J, "{'a':[{'prefix':''}]}", "{'a':'anything'}", YES},
    {J, "{'a':[{'prefix':'1'}]}", "{'a':10}", NO},
    {J, "{'a':[{'suffix':'.png'}]}", "{'a':'x.png'}", YES},
    {J, "{'a':[{'suffix':'.png'}]}", "{'a':'x.PNG'}", NO},
    {J, "{'a':[{'suffix':'.png'}]}", "{'a':'png'}", NO},
    {J, "{'a':[{'prefix':{'equals-ignore-case':'EventB'}}]}", "{'a':'eventbridge'}", YES},
    {J, "{'a':[{'prefix':{'equals-ignore-case':'EventB'}}]}", "{'a':'eventa'}", NO},
    {J, "{'a':[{'suffix':{'equals-ignore-case':'.png'}}]}", "{'a':'X.PNG'}", YES},
    {J, "{'a':[{'suffix':{'equals-ignore-case':'ÉTÉ'}}]}", "{'a':'bel été'}", YES},
    {J, "{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'ALICE'}", YES},
    {J, "{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'ALICES'}", NO},
    {J, "{'a':[{'equals-ignore-case':'alice'}]}", "{'a':'alic'}", NO},
    {J, "{'a':[{'equals-ignore-case':'ÄÖÜ'}]}", "{'a':'äöü'}", YES},
    {J, "{'a':[{'equals-ignore-case':'ΣΊΣΥΦΟΣ'}]}", "{'a':'σίσυφος'}", YES},
    {J, "{'a':[{'equals-ignore-case':'Привет'}]}", "{'a':'пРИВЕТ'}", YES},
    {J, "{'a':[{'prefix':{'equals-ignore-case':'ŽLUŤ'}}]}", "{'a':'žluťoučký'}", YES},
    {J, "{'a':[{'equals-ignore-case':'straße'}]}", "{'a':'STRASSE'}", NO},
    {J, "{'a':[{'equals-ignore-case':'1'}]}", "{'a':1}", NO},
    /* ---- wildcard ---- */
    {J, "{'a':[{'wildcard':'a*b'}]}", "{'a':'ab'}", YES},
    {J, "{'a':[{'wildcard':'a*b'}]}", "{'a':'axxb'}", YES},
    {J, "{'a':[{'wildcard':'a*b'}]}", "{'a':'axxbc'}", NO},
    {J, "{'a':[{'wildcard':'*'}]}", "{'a':''}", YES},
    {J, "{'a':[{'wildcard':'*/lib/*'}]}", "{'a':'usr/lib/x'}", YES},
    {J, "{'a':[{'wildcard':'*/lib/*'}]}", "{'a':'usr/bin/x'}", NO},
    {J, "{'a':[{'wildcard':'a\\\\*b'}]}", "{'a':'a*b'}", YES},
    {J, "{'a':[{'wildcard':'a\\\\*b'}]}", "{'a':'axb'}", NO},
    {J, "{'a':[{'wildcard':'a\\\\\\\\b'}]}", "{'a':'a\\\\b'}", YES},
    {J, "{'a':[{'wildcard':'*a*a*'}]}", "{'a':'aa'}", YES},
    {J, "{'a':[{'wildcard':'*a*a*'}]}", "{'a':'a'}", NO},
    {J, "{'a':[{'wildcard':'ab*ba'}]}", "{'a':'aba'}", NO},
    {J, "{'a':[{'wildcard':'x'}]}", "{'a':'xx'}", NO},
    {J, "{'a':[{'wildcard':'*'}]}", "{'a':5}", NO},
    /* ---- anything-but ---- */
    {J, "{'a':[{'anything-but':'x'}]}", "{'a':'y'}", YES},
    {J, "{'a':[{'anything-but':'x'}]}", "{'a':'x'}", NO},
    {J, "{'a':[{'anything-but':'x'}]}", "{}", NO},
    {J, "{'a':[{'anything-but':'x'}]}", "{'a':5}", YES},
    {J, "{'a':[{'anything-but':['x','y']}]}", "{'a':'y'}", NO},
    {J, "{'a':[{'anything-but':['x','y']}]}", "{'a':'z'}", YES},
    {J, "{'a':[{'anything-but':123}]}", "{'a':123.0}", NO},
    {J, "{'a':[{'anything-but':123}]}", "{'a':124}", YES},
    {J, "{'a':[{'anything-but':[100,200]}]}", "{'a':2e2}", NO},
    {J, "{'a':[{'anything-but':[100,200]}]}", "{'a':'abc'}", YES},
    {J, "{'a':[{'anything-but':{'prefix':'init'}}]}", "{'a':'initializing'}", NO},
    {J, "{'a':[{'anything-but':{'prefix':'init'}}]}", "{'a':'running'}", YES},
    {J, "{'a':[{'anything-but':{'suffix':'.png'}}]}", "{'a':'a.png'}", NO},
    {J, "{'a':[{'anything-but':{'suffix':'.png'}}]}", "{'a':'a.jpg'}", YES},
    {J, "{'a':[{'anything-but':{'equals-ignore-case':'initializing'}}]}", "{'a':'INITIALIZING'}",
     NO},
    {J, "{'a':[{'anything-but':{'equals-ignore-case':'initializing'}}]}", "{'a':'run'}", YES},
    {J, "{'a':[{'anything-but':{'equals-ignore-case':['a','b']}}]}", "{'a':'B'}", NO},
    {J, "{'a':[{'anything-but':{'wildcard':'*/lib/*'}}]}", "{'a':'/usr/lib/x'}", NO},
    {J, "{'a':[{'anything-but':{'wildcard':'*/lib/*'}}]}", "{'a':'/usr/bin/x'}", YES},
    {J, "{'a':[{'anything-but':{'wildcard':['*.png','*.jpg']}}]}", "{'a':'x.jpg'}", NO},
    {J, "{'a':[{'anything-but':'banned'}]}", "{'a':['banned','ok']}", YES},
    {J, "{'a':[{'anything-but':'banned'}]}", "{'a':['banned']}", NO},
    /* ---- numeric ---- */
    {J, "{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':5}", YES},
    {J, "{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':0}", NO},
    {J, "{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':5.0001}", NO},
    {J, "{'a':[{'numeric':['>',0,'<=',5]}]}", "{'a':0.1}", YES},
    {J, "{'a':[{'numeric':['>=',0,'<',5]}]}", "{'a':0}", YES},
    {J, "{'a':[{'numeric':['>=',0,'<',5]}]}", "{'a':5}", NO},
    {J, "{'a':[{'numeric':['=',10]}]}", "{'a':1e1}", YES},
    {J, "{'a':[{'numeric':['=',1e1]}]}", "{'a':10}", YES},
    {J, "{'a':[{'numeric':['=',10]}]}", "{'a':10.000001}", NO},
    {J, "{'a':[{'numeric':['<',10]}]}", "{'a':9.99}", YES},
    {J, "{'a':[{'numeric':['<',10]}]}", "{'a':10}", NO},
    {J, "{'a':[{'numeric':['<=',10]}]}", "{'a':10}", YES},
    {J, "{'a':[{'numeric':['>=',10]}]}", "{'a':10}", YES},
    {J, "{'a':[{'numeric':['>',10]}]}", "{'a':10}", NO},
    {J, "{'a':[{'numeric':['>',-1e9,'<',-1]}]}", "{'a':-5}", YES},
    {J, "{'a':[{'numeric':['>',0]}]}", "{'a':'5'}", NO},
    {J, "{'a':[{'numeric':['>',0]}]}", "{}", NO},
    {J, "{'a':[{'numeric':['>',0,'<',10]}]}", "{'a':[100,5,200]}", YES},
    {J, "{'a':[{'numeric':['>',0]}, 'x']}", "{'a':'x'}", YES},
    /* ---- exists ---- */
    {J, "{'a':[{'exists':true}]}", "{'a':'x'}", YES},
    {J, "{'a':[{'exists':true}]}", "{'a':null}", YES},
    {J, "{'a':[{'exists':true}]}", "{}", NO},
    {J, "{'a':[{'exists':false}]}", "{}", YES},
    {J, "{'a':[{'exists':false}]}", "{'a':null}", NO},
    {J, "{'a':[{'exists':false}]}", "{'a':''}", NO},
    {J, "{'a':[{'exists':false}]}", "{'a':{'b':1}}", YES},
    {J, "{'a':[{'exists':true}]}", "{'a':{'b':1}}", NO},
    {J, "{'a':[{'exists':true}]}", "{'a':[]}", NO},
    {J, "{'a':[{'exists':false}]}", "{'a':[]}", YES},
    {J, "{'a':[{'exists':true}]}", "{'a':[1]}", YES},
    {J, "{'a':{'b':[{'exists':false}]}}", "{}", YES},
    {J, "{'a':{'b':[{'exists':false}]}}", "{'a':'x'}", YES},
    {J, "{'a':{'b':[{'exists':false}]}}", "{'a':[]}", YES},
    {J, "{'a':{'b':[{'exists':false}]}}", "{'a':{'b':0}}", NO},
    /* ---- cidr ---- */
    {J, "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.0.255'}", YES},
    {J, "{'ip':[{'cidr':'10.0.0.0/24'}]}", "{'ip':'10.0.1.0'}", NO},
    {J, "{'ip':[{'cidr':'10.0.0.0/25'}]}", "{'ip':'10.0.0.127'}", YES},
    {J, "{'ip':[{'cidr':'10.0.0.0/25'}]}", "{'ip':'10.0.0.128'}", NO},
    {J, "{'ip':[{'cidr':'0.0.0.0/0'}]}", "{'ip':'8.8.8.8'}", YES},
    {J, "{'ip':[{'cidr':'0.0.0.0/0'}]}", "{'ip':'::1'}", NO},
    {J, "{'ip':[{'cidr':'10.0.0.1/32'}]}", "{'ip':'10.0.0.1'}", YES},
    {J, "{'ip':[{'cidr':'10.0.0.1/32'}]}", "{'ip':'10.0.0.2'}", NO},
    {J, "{'ip':[{'cidr':'10.9.9.9/8'}]}", "{'ip':'10.1.2.3'}", YES},
    {J, "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db8:ffff::1'}", YES},
    {J, "{'ip':[{'cidr':'2001:db8::/32'}]}", "{'ip':'2001:db9::1'}", NO},
    {J, "{'ip':[{'cidr':'::/0'}]}", "{'ip':'::1'}", YES},
    {J, "{'ip':[{'cidr':'::/0'}]}", "{'ip':'1.2.3.4'}", NO},
    {J, "{'ip':[{'cidr':'2001:db8::1/128'}]}", "{'ip':'2001:DB8:0::1'}", YES},
    {J, "{'ip':[{'cidr':'2001:db8::1/128'}]}", "{'ip':'2001:db8::2'}", NO},
    {J, "{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'not-an-ip'}", NO},
    {J, "{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':'10.0.0.1/8'}", NO},
    {J, "{'ip':[{'cidr':'10.0.0.0/8'}]}", "{'ip':10}", NO},
    /* ---- $or ---- */
    {J, "{'$or':[{'a':['1']},{'b':['2']}]}", "{'b':'2'}", YES},
    {J, "{'$or':[{'a':['1']},{'b':['2']}]}", "{'c':'1'}", NO},
    {J, "{'s':['x'],'$or':[{'a':['1']},{'b':['2']}]}", "{'s':'y','a':'1'}", NO},
    {J, "{'s':['x'],'$or':[{'a':['1']},{'b':['2']}]}", "{'s':'x','a':'1'}", YES},
    {J, "{'$or':[{'a':['1']},{'b':['2'],'$or':[{'c':['3']},{'d':['4']}]}]}", "{'b':'2','d':'4'}",
     YES},
    {J, "{'$or':[{'a':['1']},{'b':['2'],'$or':[{'c':['3']},{'d':['4']}]}]}", "{'b':'2'}", NO},
    {J, "{'d':{'$or':[{'x':['1']},{'y':['2']}]}}", "{'d':{'y':'2'}}", YES},
    {J, "{'d':{'$or':[{'x':['1']},{'y':['2']}]}}", "{'x':'1'}", NO},
    {J, "{'d':{'a':['1'],'$or':[{'b':['2']},{'c':['3']}]}}", "{'d':[{'a':'1'},{'b':'2'}]}", NO},
    {J, "{'d':{'a':['1'],'$or':[{'b':['2']},{'c':['3']}]}}", "{'d':[{'a':'1'},{'a':'1','c':'3'}]}",
     YES},
    {J, "{'$or':[{'a':[{'exists':false}]},{'a':['x']}]}", "{}", YES},
    /* ---- arrays and array consistency ---- */
    {J, "{'tags':['admin']}", "{'tags':['user','admin']}", YES},
    {J, "{'tags':['root']}", "{'tags':['user','admin']}", NO},
    {J, "{'a':['x']}", "{'a':[['y',['x']]]}", YES},
    {J, "{'d':{'a':['1'],'b':['2']}}", "{'d':[{'a':'1'},{'b':'2'}]}", NO},
    {J, "{'d':{'a':['1'],'b':['2']}}", "{'d':[{'a':'1'},{'a':'1','b':'2'}]}", YES},
    {J, "{'d':['x']}", "{'d':[{'x':1}]}", NO},
    {J, "{'d':{'a':[{'exists':false}]}}", "{'d':[{'a':1},{}]}", YES},
    {J, "{'employees':{'firstName':['Anna'],'lastName':['Jones']}}", EMPLOYEES, NO},
    {J, "{'employees':{'firstName':['Anna'],'lastName':['Smith']}}", EMPLOYEES, YES},
    {J, "{'employees':{'firstName':['Anna']}}", EMPLOYEES, YES},
    /* ---- CloudEvents: attributes and data ---- */
    {C, "{'type':['com.example.order.created']}", EV, YES},
    {C, "{'type':[{'prefix':'com.example.'}],'source':['/orders']}", EV, YES},
    {C, "{'type':['x']}", EV, NO},
    {C, "{'subject':[{'exists':false}]}", EV_MIN, YES},
    {C, "{'subject':[{'exists':false}]}", EV, NO},
    {C, "{'subject':['eu/123']}", EV_MIN, NO},
    {C, "{'time':[{'prefix':'2024-03'}],'specversion':['1.0']}", EV, YES},
    {C, "{'count':[42]}", EV, YES},
    {C, "{'count':[4.2e1]}", EV, YES},
    {C, "{'count':['42']}", EV, YES},
    {C, "{'count':[{'numeric':['>',40,'<',43]}]}", EV, YES},
    {C, "{'count':[{'numeric':['>',50]}]}", EV, NO},
    {C, "{'count':[{'anything-but':42}]}", EV, NO},
    {C, "{'flag':[true]}", EV, YES},
    {C, "{'flag':['true']}", EV, YES},
    {C, "{'flag':[false]}", EV, NO},
    {C, "{'id':[1]}", EV, NO},
    {C, "{'id':[{'numeric':['=',1]}]}", EV, NO},
    {C, "{'city':[{'equals-ignore-case':'ZÜRICH'}]}", EV, YES},
    {C, "{'data':{'price':[10]}}", EV, YES},
    {C, "{'data':{'price':[{'numeric':['>',0,'<=',10]}]}}", EV, YES},
    {C, "{'data':{'items':{'sku':['B'],'qty':[{'numeric':['>',0]}]}}}", EV, NO},
    {C, "{'data':{'items':{'sku':['A'],'qty':[{'numeric':['>',0]}]}}}", EV, YES},
    {C, "{'data':{'ip':[{'cidr':'10.0.0.0/8'}]}}", EV, YES},
    {C, "{'data':{'x':['hello']}}", EV_TEXT, NO},
    {C, "{'data':{'x':[{'exists':false}]}}", EV_TEXT, YES},
    {C, "{'data':[{'exists':false}]}", EV_TEXT, YES},
    {C, "{'data':[{'exists':false}]}", EV_MIN, YES},
    {C, "{'data':['hello']}", EV_TEXT, NO},
    {C, "{'data':[{'exists':true}]}", EV, NO},
    {C, "{'data':['hi']}", EV_STR, YES},
    {C, "{'data':{'a':['1']}}", EV_ARR, YES},
    {C, "{'data':{'a':['1'],'b':['2']}}", EV_ARR, NO},
    {C, "{'data':{'big':[{'numeric':['>',1e29]}]}}", EV_BIG, YES},
    {C, "{'$or':[{'type':['nope']},{'data':{'price':[10]}}]}", EV, YES},
    {C, "{'$or':[{'type':['nope']},{'data':{'price':[11]}}]}", EV, NO},
    {C, "{'type':['com.example.order.created'],'data':{'price':[11]}}", EV, NO},
};

static void test_table(void **state)
{
    (void)state;
    size_t n = sizeof cases / sizeof cases[0], n_yes = 0;
    for (size_t i = 0; i < n; i++) {
        const pcase_t *c = &cases[i];
        hr_pattern_t *p = compile_ok(c->pattern);
        bool m;
        if (c->mode == J) {
            json_t *doc = load(c->input);
            m = hr_pattern_match_json(p, doc);
            json_decref(doc);
        } else {
            hr_ce_event_t *ev = event(c->input);
            m = hr_pattern_match(p, ev);
            json_t *data = ev->data_kind == HR_CE_DATA_JSON
                               ? json_loadb((const char *)ev->data, ev->data_len,
                                            JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL)
                               : NULL;
            assert_int_equal(hr_pattern_match_data(p, ev, data), m);
            json_decref(data);
            hr_ce_event_free(ev);
        }
        if (m != (c->expect == YES)) {
            fail_msg("case %zu %s on %s: match %d, expected %d", i, c->pattern, c->input, m,
                     c->expect == YES);
        }
        n_yes += m;
        hr_pattern_destroy(p);
    }
    assert_true(n >= 80);
    print_message("%zu pattern cases (%zu match)\n", n, n_yes);
}

/* The dialect: patterns inside a trigger's filters, with the other dialects. */
static void test_dialect(void **state)
{
    (void)state;
    static const struct {
        const char *filters, *event;
        int expect;
    } rows[] = {
        {"[{'pattern':{'type':['t']}}]", EV_MIN, YES},
        {"[{'pattern':{'type':['u']}}]", EV_MIN, NO},
        {"[{'pattern':{'data':{'price':[10]}}},{'exact':{'type':'com.example.order.created'}}]", EV,
         YES},
        {"[{'not':{'pattern':{'data':{'price':[10]}}}}]", EV, NO},
        {"[{'any':[{'pattern':{'type':['x']}},{'pattern':{'count':[42]}}]}]", EV, YES},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *j = load(rows[i].filters);
        hr_filter_t *f;
        hr_filter_error_t err;
        if (hr_filter_compile(j, &f, &err) != 0) {
            fail_msg("%s rejected at %s: %s", rows[i].filters, err.path, err.msg);
        }
        hr_ce_event_t *ev = event(rows[i].event);
        assert_int_equal(hr_filter_match(f, ev), rows[i].expect == YES);
        hr_ce_event_free(ev);
        hr_filter_destroy(f);
        json_decref(j);
    }
}

/* ---- invalid patterns ---- */

typedef struct ecase {
    int dialect; /* 1: inside [{"pattern": ...}] via hr_filter_compile; 0: hr_pattern_compile */
    const char *pattern;
    const char *path;
    const char *needle; /* part of the message */
} ecase_t;

static const ecase_t errors[] = {
    {1, "{'data':{'price':[{'numeric':['>']}]}}", "filters[0].pattern.data.price",
     "numeric needs an operator followed by a number"},
    {1, "{'data':{'price':[{'numeric':['>','5']}]}}", "filters[0].pattern.data.price",
     "numeric needs an operator followed by a number"},
    {1, "{'data':{'price':[{'numeric':['<',5,'>',0]}]}}", "filters[0].pattern.data.price",
     "numeric ranges are written"},
    {1, "{'data':{'price':[{'numeric':['>',5,'<',5]}]}}", "filters[0].pattern.data.price",
     "numeric range is empty"},
    {1, "{'data':{'price':[{'numeric':['>',0,'<=']}]}}", "filters[0].pattern.data.price",
     "numeric needs"},
    {1, "{'data':{'price':[{'numeric':['==',5]}]}}", "filters[0].pattern.data.price",
     "numeric needs"},
    {1, "{'type':'x'}", "filters[0].pattern.type", "needs a list of values"},
    {1, "{'type':{'prefix':'x'}}", "filters[0].pattern.type", "needs a list of values"},
    {1, "{'data':{'a':'x'}}", "filters[0].pattern.data.a", "needs a list of values"},
    {1, "{'data':{'a':{'prefix':'x'}}}", "filters[0].pattern.data.a.prefix",
     "operators go inside the list"},
    {1, "{'data':{'a':[{'regex':'x'}]}}", "filters[0].pattern.data.a",
     "Unknown operator \"regex\""},
    {1, "{'data':{'a':[{'prefix':'x','suffix':'y'}]}}", "filters[0].pattern.data.a",
     "exactly one key"},
    {1, "{'data':{'ip':[{'cidr':'10.0.0.0/33'}]}}", "filters[0].pattern.data.ip",
     "is not a valid range"},
    {1, "{'data':{'ip':[{'cidr':'10.0.0.0'}]}}", "filters[0].pattern.data.ip",
     "is not a valid range"},
    {1, "{'data':{'ip':[{'cidr':'300.0.0.0/8'}]}}", "filters[0].pattern.data.ip",
     "is not a valid range"},
    {1, "{'data':{'ip':[{'cidr':'::/129'}]}}", "filters[0].pattern.data.ip",
     "is not a valid range"},
    {1, "{'type':[]}", "filters[0].pattern.type", "must not be empty"},
    {1, "{'data':{}}", "filters[0].pattern.data", "empty objects are not allowed"},
    {1, "{}", "filters[0].pattern", "empty objects are not allowed"},
    {1, "['x']", "filters[0].pattern", "must be a JSON object"},
    {1, "{'data':{'f':[{'wildcard':'a**b'}]}}", "filters[0].pattern.data.f", "consecutive '*'"},
    {1, "{'data':{'f':[{'wildcard':'a\\\\b'}]}}", "filters[0].pattern.data.f", "invalid escape"},
    {1, "{'data':{'f':[{'wildcard':'ab\\\\'}]}}", "filters[0].pattern.data.f", "invalid escape"},
    {1, "{'data':{'f':[{'anything-but':{'anything-but':'x'}}]}}", "filters[0].pattern.data.f",
     "anything-but does not support \"anything-but\""},
    {1, "{'data':{'f':[{'anything-but':[]}]}}", "filters[0].pattern.data.f",
     "only strings or only"},
    {1, "{'data':{'f':[{'anything-but':['a',1]}]}}", "filters[0].pattern.data.f",
     "only strings or only"},
    {1, "{'data':{'f':[{'anything-but':true}]}}", "filters[0].pattern.data.f", "got true"},
    {1, "{'data':{'f':[{'anything-but':{'prefix':''}}]}}", "filters[0].pattern.data.f",
     "non-empty string"},
    {1, "{'data':{'f':[{'anything-but':{'exists':true}}]}}", "filters[0].pattern.data.f",
     "does not support \"exists\""},
    {1, "{'data':{'f':[{'anything-but':{'wildcard':'a**'}}]}}", "filters[0].pattern.data.f",
     "consecutive"},
    {1, "{'data':{'f':[{'exists':'yes'}]}}", "filters[0].pattern.data.f",
     "exists needs true or false"},
    {1, "{'data':{'f':[{'prefix':5}]}}", "filters[0].pattern.data.f", "prefix needs a string"},
    {1, "{'data':{'f':[{'suffix':{'equals-ignore-case':1}}]}}", "filters[0].pattern.data.f",
     "suffix needs a string"},
    {1, "{'data':{'f':[{'equals-ignore-case':['a']}]}}", "filters[0].pattern.data.f",
     "equals-ignore-case needs a string"},
    {1, "{'type':[['x']]}", "filters[0].pattern.type", "Value 0 is a list"},
    {1, "{'$or':[{'type':['a']}]}", "filters[0].pattern.$or", "at least two pattern objects"},
    {1, "{'$or':{'type':['a']}}", "filters[0].pattern.$or", "got an object"},
    {1, "{'$or':[{'type':['a']},['x']]}", "filters[0].pattern.$or[1]", "must be a pattern object"},
    {1, "{'$or':[{'type':['a']},{}]}", "filters[0].pattern.$or[1]", "empty objects"},
    {1, "{'data':{'$or':[{'prefix':['a']},{'b':['c']}]}}", "filters[0].pattern.data.$or[0].prefix",
     "operator name"},
    {1, "{'Type':['x']}", "filters[0].pattern.Type", "is not a CloudEvents attribute name"},
    {1, "{'detail-type':['x']}", "filters[0].pattern.detail-type",
     "is not a CloudEvents attribute"},
    {1, "{'$or':[{'type':['a']},{'source':{'x':['y']}}]}", "filters[0].pattern.$or[1].source",
     "Attribute \"source\" needs a list of values"},
    {0, "{'detail':{'a':[{'numeric':[]}]}}", "detail.a", "numeric needs"},
    {0, "{'a':{'b':{'c':[{'cidr':1}]}}}", "a.b.c", "cidr needs a string"},
    {0, "{'$or':[{'a':['1']},{'b':['2'],'$or':[{'c':['3']}]}]}", "$or[1].$or",
     "at least two pattern objects"},
    {0, "'x'", "", "must be a JSON object"},
};

static void test_errors(void **state)
{
    (void)state;
    size_t n = sizeof errors / sizeof errors[0];
    for (size_t i = 0; i < n; i++) {
        const ecase_t *e = &errors[i];
        json_t *j = load(e->pattern);
        const char *path, *msg;
        hr_filter_error_t ferr;
        char perr[256], ppath[128];
        hr_filter_t *f = (hr_filter_t *)1;
        hr_pattern_t *p = (hr_pattern_t *)1;
        if (e->dialect) {
            json_t *filters = json_pack("[{s:O}]", "pattern", j);
            assert_int_equal(hr_filter_compile(filters, &f, &ferr), HR_EINVAL);
            assert_null(f);
            json_decref(filters);
            path = ferr.path;
            msg = ferr.msg;
        } else {
            assert_int_equal(hr_pattern_compile(j, &p, perr, sizeof perr, ppath, sizeof ppath),
                             HR_EINVAL);
            assert_null(p);
            path = ppath;
            msg = perr;
        }
        if (strcmp(path, e->path) != 0 || strstr(msg, e->needle) == NULL) {
            fail_msg("%s: got %s: %s; want %s: ...%s...", e->pattern, path, msg, e->path,
                     e->needle);
        }
        size_t len = strlen(msg);
        assert_true(len > 20 && msg[len - 1] == '.');
        assert_true(hr_utf8_valid(msg, len, NULL));
        json_decref(j);
    }
    assert_true(n >= 15);
    print_message("%zu invalid patterns\n", n);
}

/* Deep nesting is refused; truncated buffers stay NUL-terminated. */
static void test_limits(void **state)
{
    (void)state;
    char text[1024] = "";
    for (int i = 0; i < 40; i++) {
        strcat(text, "{'a':");
    }
    strcat(text, "['x']");
    for (int i = 0; i < 40; i++) {
        strcat(text, "}");
    }
    json_t *j = load(text);
    hr_pattern_t *p;
    char err[16], path[8];
    assert_int_equal(hr_pattern_compile(j, &p, err, sizeof err, path, sizeof path), HR_EINVAL);
    assert_true(strlen(err) == sizeof err - 1 && strlen(path) == sizeof path - 1);
    assert_int_equal(hr_pattern_compile(j, &p, NULL, 0, NULL, 0), HR_EINVAL);
    json_decref(j);

    /* 32 levels are fine. */
    text[0] = '\0';
    for (int i = 0; i < 32; i++) {
        strcat(text, "{'a':");
    }
    strcat(text, "['x']");
    for (int i = 0; i < 32; i++) {
        strcat(text, "}");
    }
    p = compile_ok(text);
    hr_pattern_destroy(p);
    hr_pattern_destroy(NULL);
}

/* ---- required exact values ---- */

static void test_required_exact(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *attr, *want;
    } rows[] = {
        {"{'type':['a']}", "type", "a"},
        {"{'type':['a','a']}", "type", "a"},
        {"{'type':['a','b']}", "type", NULL},
        {"{'type':['a']}", "source", NULL},
        {"{'type':[{'prefix':'a'}]}", "type", NULL},
        {"{'type':['a',{'prefix':'a'}]}", "type", NULL},
        {"{'type':[{'equals-ignore-case':'a'}]}", "type", NULL},
        {"{'$or':[{'type':['a']},{'type':['a'],'source':['x']}]}", "type", "a"},
        {"{'$or':[{'type':['a']},{'type':['b']}]}", "type", NULL},
        {"{'$or':[{'type':['a']},{'source':['x']}]}", "type", NULL},
        {"{'source':['s'],'$or':[{'type':['a']},{'type':['b']}]}", "source", "s"},
        {"{'data':{'type':['a']}}", "type", NULL},
        {"{'data':['x']}", "data", NULL},
        {"{'type':['a\\u0000b']}", "type", NULL},
        {"{'count':['42']}", "count", "42"},
        {"{'count':[42]}", "count", NULL},
        {"{'type':[{'exists':true}]}", "type", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        hr_pattern_t *p = compile_ok(rows[i].pattern);
        const char *r = hr_pattern_required_exact(p, rows[i].attr);
        if ((r == NULL) != (rows[i].want == NULL) || (r != NULL && strcmp(r, rows[i].want) != 0)) {
            fail_msg("%s / %s: got %s, want %s", rows[i].pattern, rows[i].attr, r ? r : "NULL",
                     rows[i].want ? rows[i].want : "NULL");
        }
        hr_pattern_destroy(p);
    }
    /* Through the filter: a pattern's requirement is the filter's. */
    json_t *j = load("[{'pattern':{'type':['com.example.order.created'],'data':{'x':['y']}}}]");
    hr_filter_t *f;
    assert_int_equal(hr_filter_compile(j, &f, NULL), 0);
    assert_string_equal(hr_filter_required_exact(f, "type"), "com.example.order.created");
    assert_null(hr_filter_required_exact(f, "x"));
    hr_filter_destroy(f);
    json_decref(j);
}

/* ---- event-ruler fixtures ---- */

static void test_array_fixtures(void **state)
{
    (void)state;
    /* GenericMachineTest.nestedArraysTest: event1 -> rule1, rule2; event2 -> none; event3 ->
     * rule3 only without array consistency, so none here; event4 -> rule3. The arrayRule4
     * column is not in that test; its values follow from the rule (metricName and namespace of
     * one element among CPUUtilization/ReadLatency and AWS/EC2/AWS/ES). */
    static const bool want[4][4] = {
        /* rule1  rule2  rule3  rule4 */
        {true, true, false, false},   /* event1 */
        {false, false, false, false}, /* event2 */
        {false, false, false, true},  /* event3 */
        {false, false, true, true},   /* event4 */
    };
    hr_pattern_t *rules[4];
    for (int r = 0; r < 4; r++) {
        char path[512];
        snprintf(path, sizeof path, ER_DIR "/data/arrayRule%d.json", r + 1);
        json_t *j = load_file(path);
        char err[256], epath[128];
        assert_int_equal(hr_pattern_compile(j, &rules[r], err, sizeof err, epath, sizeof epath), 0);
        json_decref(j);
    }
    for (int e = 0; e < 4; e++) {
        char path[512];
        snprintf(path, sizeof path, ER_DIR "/data/arrayEvent%d.json", e + 1);
        json_t *doc = load_file(path);
        for (int r = 0; r < 4; r++) {
            bool m = hr_pattern_match_json(rules[r], doc);
            if (m != want[e][r]) {
                fail_msg("arrayEvent%d vs arrayRule%d: got %d", e + 1, r + 1, m);
            }
        }
        json_decref(doc);
    }
    for (int r = 0; r < 4; r++) {
        hr_pattern_destroy(rules[r]);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_big_event(void **state)
{
    (void)state;
    json_t *rule = load_file(ER_DIR "/data/bigEventRule.json");
    hr_pattern_t *p;
    assert_int_equal(hr_pattern_compile(rule, &p, NULL, 0, NULL, 0), 0);
    size_t len;
    char *text = read_all(ER_DIR "/data/bigEvent.json", &len);
    json_t *doc = json_loadb(text, len, 0, NULL);
    assert_non_null(doc);
    assert_true(hr_pattern_match_json(p, doc));

    /* The same rule under "data" of a CloudEvent carrying bigEvent.json as its data: each match
     * parses the 255 KiB of JSON once. */
    json_t *wrapped = json_pack("{s:O}", "data", rule);
    hr_pattern_t *pd;
    assert_int_equal(hr_pattern_compile(wrapped, &pd, NULL, 0, NULL, 0), 0);
    hr_ce_header_t hdrs[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "big"}, {"ce-source", "/aws"}, {"ce-type", "t"}};
    hr_ce_event_t *ev;
    assert_int_equal(
        hr_ce_from_binary(hdrs, 4, "application/json", (const uint8_t *)text, len, &ev, NULL), 0);
    assert_true(hr_pattern_match(pd, ev));

    enum { RUNS = 100 };
    double t0 = now_s();
    for (int i = 0; i < RUNS; i++) {
        assert_true(hr_pattern_match_json(p, doc));
    }
    double t1 = now_s();
    for (int i = 0; i < RUNS; i++) {
        assert_true(hr_pattern_match(pd, ev));
    }
    double t2 = now_s();
    for (int i = 0; i < RUNS; i++) {
        assert_true(hr_pattern_match_data(pd, ev, doc));
    }
    double t3 = now_s();
    print_message("bigEvent.json (%zu bytes), averaged over %d runs: %.2f us per match of the "
                  "parsed document, %.1f us per match of a CloudEvent (parse + match), %.2f us "
                  "per match of a CloudEvent with its data parsed beforehand\n",
                  len, RUNS, (t1 - t0) / RUNS * 1e6, (t2 - t1) / RUNS * 1e6,
                  (t3 - t2) / RUNS * 1e6);

    hr_ce_event_free(ev);
    hr_pattern_destroy(pd);
    hr_pattern_destroy(p);
    json_decref(wrapped);
    json_decref(doc);
    json_decref(rule);
    free(text);
}

/* The number of flat sub-rules the pattern stands for ($or expanded), as event-ruler's
 * JsonRuleCompiler counts them. */
static size_t sub_rules(const hr_pt_obj_t *o)
{
    size_t n = 1;
    for (size_t i = 0; i < o->po_nfields; i++) {
        if (o->po_fields[i].pf_obj != NULL) {
            n *= sub_rules(o->po_fields[i].pf_obj);
        }
    }
    for (size_t g = 0; g < o->po_nors; g++) {
        size_t sum = 0;
        for (size_t b = 0; b < o->po_ors[g].po_n; b++) {
            sum += sub_rules(o->po_ors[g].po_branches[b]);
        }
        n *= sum;
    }
    return n;
}

static void test_or_fixtures(void **state)
{
    (void)state;
    /* JsonRuleCompilerTest: the five rules compile to 2, 4, 3, 4 and 2 sub-rules. */
    static const size_t want[] = {2, 4, 3, 4, 2};
    json_t *rules = load_file(ER_DIR "/data/orRelationshipRules.json");
    assert_int_equal(json_array_size(rules), 5);
    for (size_t i = 0; i < 5; i++) {
        hr_pattern_t *p;
        char err[256], path[128];
        if (hr_pattern_compile(json_array_get(rules, i), &p, err, sizeof err, path, sizeof path) !=
            0) {
            fail_msg("orRelationshipRules[%zu] rejected at %s: %s", i, path, err);
        }
        assert_int_equal(sub_rules(p->p_root), want[i]);
        hr_pattern_destroy(p);
    }
    json_decref(rules);

    /* Rule 0 of the file: "source" && ("metricName" || "namespace") style matching. */
    hr_pattern_t *p = compile_ok("{'source':['aws.cloudwatch'],'$or':[{'metricName':['CPU']},"
                                 "{'metricType':['MetricType'],'namespace':['AWS/EC2']}]}");
    json_t *doc =
        load("{'source':'aws.cloudwatch','metricType':'MetricType','namespace':'AWS/EC2'}");
    assert_true(hr_pattern_match_json(p, doc));
    json_decref(doc);
    doc = load("{'source':'aws.cloudwatch','namespace':'AWS/EC2'}");
    assert_false(hr_pattern_match_json(p, doc));
    json_decref(doc);
    hr_pattern_destroy(p);

    /* Invalid "$or" (wrongOrRelationshipRules) and "$or" used as a plain field name, which the
     * $or-aware compiler rejects (normalRulesWithOrWording). */
    const char *bad[] = {ER_DIR "/data/wrongOrRelationshipRules.json",
                         ER_DIR "/data/normalRulesWithOrWording.json"};
    size_t rejected = 0;
    for (size_t f = 0; f < 2; f++) {
        json_t *arr = load_file(bad[f]);
        assert_true(json_array_size(arr) == (f == 0 ? 2 : 4));
        for (size_t i = 0; i < json_array_size(arr); i++) {
            hr_pattern_t *q;
            char err[256], path[128];
            if (hr_pattern_compile(json_array_get(arr, i), &q, err, sizeof err, path,
                                   sizeof path) != HR_EINVAL) {
                fail_msg("%s[%zu] was accepted", bad[f], i);
            }
            assert_non_null(strstr(path, "$or"));
            rejected++;
        }
        json_decref(arr);
    }
    assert_int_equal(rejected, 6);
}

/* correctness-cases.json has no expected results. Every case is run; the expectation of each
 * comes from its name (N: the name says "match", "mismatch", "no match", "fail", "same",
 * "split", "one missing", "both present", "absent", "present", "one valid", "last valid" or
 * "only valid match") or, where the name is silent, from the documented semantics (R: README
 * rules: leaf values OR, fields AND, arrays "any element" with array consistency, exists only
 * on leaves). */
static const struct {
    const char *name;
    bool want;
    char source;
} correctness[] = {
    {"flat: 2-field exists, both present", true, 'N'},
    {"flat: 2-field exists, one missing", false, 'N'},
    {"flat: exact match", true, 'N'},
    {"flat: exact mismatch", false, 'N'},
    {"flat: prefix", true, 'R'},
    {"flat: numeric range", true, 'R'},
    {"flat: anything-but", true, 'R'},
    {"objarray: same element", true, 'N'},
    {"objarray: split", false, 'N'},
    {"objarray: 3 elem, last valid", true, 'N'},
    {"objarray: 3-field, all in one", true, 'N'},
    {"objarray: 3-field, split 3 ways", false, 'N'},
    {"objarray: exact same elem", true, 'N'},
    {"objarray: exact split", false, 'N'},
    {"objarray: prefix same", true, 'N'},
    {"objarray: prefix split", false, 'N'},
    {"primarray: exists", true, 'R'},
    {"primarray: exact match", true, 'N'},
    {"primarray: no match", false, 'N'},
    {"nested: inner same", true, 'N'},
    {"nested: inner split", false, 'N'},
    {"nested: outer split", false, 'N'},
    {"nested: outer same", true, 'N'},
    {"nested2: same leaf", true, 'N'},
    {"nested2: split leaf", false, 'N'},
    {"mixed: array+scalar match", true, 'N'},
    {"mixed: array+scalar fail", false, 'N'},
    {"exists-false: absent", true, 'N'},
    {"exists-false: present", false, 'N'},
    {"empty object", false, 'R'},
    {"empty array", false, 'R'},
    {"single-field rule", true, 'R'},
    {"many elem one valid", true, 'N'},
    {"numeric+exists array", true, 'R'},
    {"anything-but array", true, 'R'},
    {"primarray: large + scalar, exists", true, 'R'},
    {"primarray: large + scalar, prefix", true, 'R'},
    {"primarray: large + scalar, no match", false, 'N'},
    {"primarray: nested under object", true, 'R'},
    {"primarray: two prim arrays + scalar", true, 'R'},
    {"primarray: exact match among many", true, 'N'},
    {"primarray: numeric in array", true, 'R'},
    {"primarray: anything-but in array", true, 'R'},
    {"primarray: single value array", true, 'R'},
    {"primarray: empty prim array", false, 'R'},
    {"mixed: obj-array + prim-array", true, 'R'},
    {"mixed: obj-array split + prim-array", false, 'N'},
    {"deep prim: nested 3 levels", true, 'R'},
    {"suffix match in array", true, 'N'},
    {"N emails, only last element has name \xe2\x80\x94 dedup loses the only valid match", true,
     'N'},
    {"suffix match split", false, 'N'},
};

static void test_correctness(void **state)
{
    (void)state;
    json_t *all = load_file(ER_DIR "/resources/correctness-cases.json");
    size_t n = json_array_size(all), by_name = 0;
    assert_int_equal(n, 51);
    assert_int_equal(sizeof correctness / sizeof correctness[0], 51);
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(all, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        if (strcmp(name, correctness[i].name) != 0) {
            fail_msg("case %zu is \"%s\", the table has \"%s\"", i, name, correctness[i].name);
        }
        hr_pattern_t *p;
        char err[256], path[128];
        if (hr_pattern_compile(json_object_get(c, "rule"), &p, err, sizeof err, path,
                               sizeof path) != 0) {
            fail_msg("%s: rule rejected at %s: %s", name, path, err);
        }
        bool m = hr_pattern_match_json(p, json_object_get(c, "event"));
        if (m != correctness[i].want) {
            fail_msg("%s: got %d, expected %d (%s)", name, m, correctness[i].want,
                     correctness[i].source == 'N' ? "from the name" : "from the rules");
        }
        by_name += correctness[i].source == 'N';
        hr_pattern_destroy(p);
    }
    print_message("51 correctness cases: %zu expectations from the name, %zu from the rules\n",
                  by_name, n - by_name);
    json_decref(all);
}

/* ---- threads ---- */

typedef struct shared {
    const hr_pattern_t *p;
    const hr_ce_event_t *yes, *no;
    int bad;
} shared_t;

static void *worker(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < 2000; i++) {
        if (!hr_pattern_match(s->p, s->yes) || hr_pattern_match(s->p, s->no)) {
            __atomic_fetch_add(&s->bad, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

/* One compiled pattern, matched from several threads at once. */
static void test_threads(void **state)
{
    (void)state;
    hr_pattern_t *p = compile_ok("{'type':[{'prefix':'com.'}],'data':{'items':{'sku':['A'],"
                                 "'qty':[{'numeric':['>',1]}]}}}");
    hr_ce_event_t *yes = event(EV), *no = event(EV_ARR);
    shared_t s = {p, yes, no, 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, worker, &s), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(s.bad, 0);
    hr_ce_event_free(yes);
    hr_ce_event_free(no);
    hr_pattern_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),          cmocka_unit_test(test_dialect),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_limits),
        cmocka_unit_test(test_required_exact), cmocka_unit_test(test_array_fixtures),
        cmocka_unit_test(test_big_event),      cmocka_unit_test(test_or_fixtures),
        cmocka_unit_test(test_correctness),    cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
