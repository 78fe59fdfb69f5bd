/* SPDX-License-Identifier: MIT */
/* The route table: matching, path parameters, 404 vs 405, percent-decoding of segments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/routes.h"

static void check(const char *method, const char *path, hr_handler_fn want, const char *param,
                  bool known)
{
    char *params[HR_ROUTE_MAX_PARAMS] = {0};
    size_t n = 0;
    bool path_known = false;
    const hr_route_t *r = hr_routes_match(method, path, params, &n, &path_known);
    if (want == NULL) {
        assert_null(r);
        assert_int_equal(path_known, known);
        return;
    }
    assert_non_null(r);
    assert_ptr_equal(r->handler, want);
    if (param) {
        assert_int_equal(n, 1);
        assert_string_equal(params[0], param);
    }
    for (size_t i = 0; i < n; i++) {
        free(params[i]);
    }
}

static void test_routes(void **state)
{
    (void)state;
    check("POST", "/v1/buses/default/events", hr_h_publish, "default", false);
    check("GET", "/v1/buses/default/events", hr_h_read, "default", false);
    check("GET", "/v1/buses/orders/stream", hr_h_stream, "orders", false);
    check("PUT", "/v1/buses/orders", hr_h_bus_put, "orders", false);
    check("GET", "/v1/buses/orders", hr_h_bus_get, "orders", false);
    check("DELETE", "/v1/buses/orders", hr_h_bus_delete, "orders", false);
    check("GET", "/v1/buses", hr_h_bus_list, NULL, false);
    check("GET", "/healthz", hr_h_health, NULL, false);
    check("GET", "/v1/buses/a%2Db", hr_h_bus_get, "a-b", false);
    /* 405: the path exists with another method */
    check("DELETE", "/v1/buses/default/events", NULL, NULL, true);
    check("POST", "/healthz", NULL, NULL, true);
    /* 404 */
    check("GET", "/v1/buses//events", NULL, NULL, false);
    check("GET", "/v1/nope", NULL, NULL, false);
    check("GET", "/v1/buses/default/events/extra", NULL, NULL, false);
    check("GET", "/v1/buses/a%2Fb", NULL, NULL, false); /* an encoded '/' is not a name */
    check("GET", "/v1/buses/a%zz", NULL, NULL, false);
    check("GET", "/v1/buses/a%4", NULL, NULL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
