/* SPDX-License-Identifier: MIT */
/* Bus management (PUT/GET/DELETE /v1/buses/{bus}, GET /v1/buses) and GET /healthz. */
#include "http/routes.h"
#include "util/err.h"

#include <string.h>

static const char *const no_params[] = {NULL};

void hr_h_bus_put(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    if (!hr_bus_name_valid(name)) {
        hr_http_error(req, 400, "bus",
                      "invalid bus name \"%s\": use 1 to 63 characters of a-z, 0-9, '.', '_' and "
                      "'-', starting with a letter or digit",
                      name);
        return;
    }
    hr_bus_config_t cfg;
    hr_bus_config_default(&cfg);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), name);
    if (bus) {
        /* an update starts from the current config: members not given stay as they are */
        hr_buf_t cur = HR_BUF_INIT;
        hr_bus_to_json(bus, &cur);
        char err[256], field[64];
        hr_bus_config_parse((const char *)cur.data, cur.len, &cfg, err, sizeof err, field,
                            sizeof field);
        hr_buf_free(&cur);
        hr_bus_release(bus);
    }
    const hr_buf_t *body = hr_http_body(req);
    char err[256], field[64];
    if (hr_bus_config_parse((const char *)body->data, body->len, &cfg, err, sizeof err, field,
                            sizeof field) != 0) {
        hr_http_error(req, 400, field, "%s", err);
        return;
    }
    bool created = false;
    int rc = hr_buses_put(hr_http_buses(req), name, &cfg, &created, &bus);
    if (rc != 0) {
        hr_http_error(req, 500, NULL, "could not store bus \"%s\": %s", name, hr_strerror(rc));
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_bus_to_json(bus, &out);
    hr_bus_release(bus);
    hr_http_reply(req, created ? 201 : 200, &out);
    hr_buf_free(&out);
}

void hr_h_bus_get(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    hr_bus_t *bus = hr_buses_get(hr_http_buses(req), name);
    if (bus == NULL) {
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", name);
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_bus_to_json(bus, &out);
    hr_bus_release(bus);
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
}

void hr_h_bus_delete(hr_http_req_t *req)
{
    static const char *const allowed[] = {"force", NULL};
    if (!hr_http_check_query(req, allowed)) {
        return;
    }
    const char *name = hr_http_param(req, 0);
    const char *f = hr_http_query(req, "force");
    if (f && strcmp(f, "true") != 0 && strcmp(f, "false") != 0) {
        hr_http_error(req, 400, "force", "\"force\" must be true or false, got \"%s\"", f);
        return;
    }
    size_t n_trig = hr_triggers_on_bus(hr_http_triggers(req), name);
    if (n_trig) {
        hr_http_error(req, 409, "bus", "bus \"%s\" has %zu trigger%s: delete them first", name,
                      n_trig, n_trig == 1 ? "" : "s");
        return;
    }
    int rc = hr_buses_delete(hr_http_buses(req), name, f && strcmp(f, "true") == 0);
    switch (rc) {
    case 0:
        hr_http_reply(req, 204, NULL);
        break;
    case HR_ENOTFOUND:
        hr_http_error(req, 404, "bus", "no bus named \"%s\"", name);
        break;
    case HR_EINVAL:
        hr_http_error(req, 409, "bus", "the default bus cannot be deleted");
        break;
    case HR_ECONFLICT:
        hr_http_error(req, 409, "force",
                      "bus \"%s\" holds events: add ?force=true to delete it with its events",
                      name);
        break;
    default:
        hr_http_error(req, 500, NULL, "could not delete bus \"%s\": %s", name, hr_strerror(rc));
    }
}

typedef struct list_ctx {
    hr_buf_t *out;
    size_t n;
} list_ctx_t;

static int list_one(void *arg, hr_bus_t *bus)
{
    list_ctx_t *c = arg;
    if (c->n++) {
        hr_buf_putc(c->out, ',');
    }
    return hr_bus_to_json(bus, c->out);
}

void hr_h_bus_list(hr_http_req_t *req)
{
    if (!hr_http_check_query(req, no_params)) {
        return;
    }
    hr_buf_t out = HR_BUF_INIT;
    hr_buf_puts(&out, "{\"buses\":[");
    list_ctx_t c = {&out, 0};
    hr_buses_each(hr_http_buses(req), list_one, &c);
    hr_buf_puts(&out, "]}");
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
}

void hr_h_health(hr_http_req_t *req)
{
    hr_buf_t out = HR_BUF_INIT;
    hr_buf_puts(&out, "{\"status\":\"ok\"}");
    hr_http_reply(req, 200, &out);
    hr_buf_free(&out);
}
