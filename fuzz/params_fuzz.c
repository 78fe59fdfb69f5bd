/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the small parsers of request parameters and documents: ISO 8601
 * durations (with a format/parse round trip), RFC 3339 times, bus config documents (with a
 * to_json/parse round trip) and the route table's path matching.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/bus.h"
#include "http/routes.h"
#include "util/duration.h"
#include "util/rfc3339.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    uint64_t ms;
    if (hr_duration_parse(s, &ms) == 0) {
        char buf[64];
        uint64_t back;
        hr_duration_format(ms, buf, sizeof buf);
        if (hr_duration_parse(buf, &back) != 0 || back != ms) {
            abort();
        }
    }
    uint64_t ns;
    (void)hr_rfc3339_parse(s, size, &ns);

    hr_bus_config_t c;
    hr_bus_config_default(&c);
    char err[256], field[64];
    if (hr_bus_config_parse(s, size, &c, err, sizeof err, field, sizeof field) == 0) {
        hr_buf_t out = HR_BUF_INIT;
        hr_buf_putc(&out, '{');
        hr_bus_config_to_json(&c, &out);
        hr_buf_putc(&out, '}');
        hr_bus_config_t c2;
        hr_bus_config_default(&c2);
        if (hr_bus_config_parse((const char *)out.data, out.len, &c2, err, sizeof err, field,
                                sizeof field) != 0 ||
            c.fsync != c2.fsync || c.fsync_interval_ms != c2.fsync_interval_ms ||
            c.retention_age_ms != c2.retention_age_ms || c.retention_bytes != c2.retention_bytes ||
            c.dedup_window_ms != c2.dedup_window_ms) {
            abort();
        }
        hr_buf_free(&out);
    }

    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    char *params[HR_ROUTE_MAX_PARAMS] = {0};
    size_t n = 0;
    bool known;
    if (hr_routes_match(methods[size % 4], s, params, &n, &known)) {
        for (size_t i = 0; i < n; i++) {
            free(params[i]);
        }
    }
    free(s);
    return 0;
}
