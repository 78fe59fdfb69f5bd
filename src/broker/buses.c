/* SPDX-License-Identifier: MIT */
/*
 * The bus registry: name → bus, persisted in the metadata store, with bus files under
 * <data>/buses/<name>/. A deleted bus is unlinked from the registry and its directory renamed
 * into <data>/trash/ at once (so the name can be reused); its log is closed and the directory
 * removed when the last reference is released. Leftovers in trash/ are removed at start-up.
 * A mutex guards the registry; buses themselves are reference counted.
 */
#include "broker/bus_int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/err.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct hr_buses {
    char *data_dir;
    hr_meta_t *meta;
    pthread_mutex_t mu;
    hr_bus_t **buses; /* sorted by name */
    size_t n, cap;
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = hr_xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static size_t find_pos(hr_buses_t *reg, const char *name, bool *found)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(reg->buses[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static void insert_at(hr_buses_t *reg, size_t pos, hr_bus_t *bus)
{
    if (reg->n == reg->cap) {
        reg->cap = reg->cap ? reg->cap * 2 : 8;
        reg->buses = hr_xrealloc(reg->buses, reg->cap * sizeof *reg->buses);
    }
    memmove(reg->buses + pos + 1, reg->buses + pos, (reg->n - pos) * sizeof *reg->buses);
    reg->buses[pos] = bus;
    reg->n++;
    bus->reg = reg;
}

static int config_json(const hr_bus_config_t *cfg, hr_buf_t *out)
{
    int rc = hr_buf_putc(out, '{');
    rc = rc ? rc : hr_bus_config_to_json(cfg, out);
    rc = rc ? rc : hr_buf_putc(out, '}');
    return rc;
}

static int open_bus(hr_buses_t *reg, const char *name, const hr_bus_config_t *cfg,
                    uint64_t created_ns, hr_bus_t **out)
{
    char *root = path_join(reg->data_dir, "buses");
    char *dir = path_join(root, name);
    int rc = mkdir_p(root);
    if (rc == 0) {
        rc = mkdir_p(dir);
    }
    if (rc == 0) {
        rc = hr__bus_open(name, dir, cfg, created_ns, out);
    }
    free(root);
    free(dir);
    return rc;
}

static int load_one(void *arg, const char *name, const char *config_json, uint64_t created_ns)
{
    hr_buses_t *reg = arg;
    hr_bus_config_t cfg;
    char err[256], field[64];
    hr_bus_config_default(&cfg);
    if (hr_bus_config_parse(config_json, strlen(config_json), &cfg, err, sizeof err, field,
                            sizeof field) != 0) {
        fprintf(stderr, "herald: bus %s: stored config is invalid (%s); using defaults\n", name,
                err);
    }
    hr_bus_t *bus;
    int rc = open_bus(reg, name, &cfg, created_ns, &bus);
    if (rc != 0) {
        return rc;
    }
    bool found;
    size_t pos = find_pos(reg, name, &found);
    insert_at(reg, pos, bus);
    return 0;
}

int hr_buses_open(const char *data_dir, hr_meta_t *meta, hr_buses_t **out)
{
    *out = NULL;
    hr_buses_t *reg = hr_xcalloc(1, sizeof *reg);
    reg->data_dir = hr_xstrdup(data_dir);
    reg->meta = meta;
    pthread_mutex_init(&reg->mu, NULL);
    char *trash = path_join(data_dir, "trash");
    rm_rf(trash); /* buses deleted before a crash or restart */
    free(trash);
    int rc = hr_meta_bus_each(meta, load_one, reg);
    if (rc == 0) {
        hr_bus_t *def = hr_buses_get(reg, "default");
        if (def == NULL) {
            hr_bus_config_t cfg;
            bool created;
            hr_bus_config_default(&cfg);
            rc = hr_buses_put(reg, "default", &cfg, &created, &def);
        }
        hr_bus_release(def);
    }
    if (rc != 0) {
        hr_buses_close(reg);
        return rc;
    }
    *out = reg;
    return 0;
}

void hr_buses_close(hr_buses_t *reg)
{
    if (reg == NULL) {
        return;
    }
    for (size_t i = 0; i < reg->n; i++) {
        hr_bus_release(reg->buses[i]);
    }
    free(reg->buses);
    pthread_mutex_destroy(&reg->mu);
    free(reg->data_dir);
    free(reg);
}

hr_bus_t *hr_buses_get(hr_buses_t *reg, const char *name)
{
    hr_bus_t *bus = NULL;
    pthread_mutex_lock(&reg->mu);
    bool found;
    size_t pos = find_pos(reg, name, &found);
    if (found) {
        bus = reg->buses[pos];
        atomic_fetch_add(&bus->refs, 1);
    }
    pthread_mutex_unlock(&reg->mu);
    return bus;
}

void hr_bus_release(hr_bus_t *bus)
{
    if (bus == NULL || atomic_fetch_sub(&bus->refs, 1) != 1) {
        return;
    }
    char *dir = atomic_load(&bus->deleted) ? hr_xstrdup(bus->dir) : NULL;
    hr__bus_close(bus);
    if (dir) {
        rm_rf(dir);
        free(dir);
    }
}

int hr_buses_put(hr_buses_t *reg, const char *name, const hr_bus_config_t *cfg, bool *created,
                 hr_bus_t **out)
{
    *out = NULL;
    hr_buf_t doc = HR_BUF_INIT;
    int rc = config_json(cfg, &doc);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&reg->mu);
    bool found;
    size_t pos = find_pos(reg, name, &found);
    hr_bus_t *bus;
    if (found) {
        bus = reg->buses[pos];
        rc = hr_meta_bus_put(reg->meta, name, (const char *)doc.data, bus->created_ns);
        if (rc == 0) {
            hr__bus_configure(bus, cfg);
        }
    } else {
        uint64_t now = hr_wall_ns();
        /* Metadata first: a bus directory without a metadata row is ignored and reused. */
        rc = hr_meta_bus_put(reg->meta, name, (const char *)doc.data, now);
        if (rc == 0) {
            rc = open_bus(reg, name, cfg, now, &bus);
            if (rc == 0) {
                insert_at(reg, pos, bus);
            } else {
                hr_meta_bus_delete(reg->meta, name);
            }
        }
    }
    if (rc == 0) {
        atomic_fetch_add(&bus->refs, 1);
        *out = bus;
        *created = !found;
    }
    pthread_mutex_unlock(&reg->mu);
    hr_buf_free(&doc);
    return rc;
}

int hr_buses_delete(hr_buses_t *reg, const char *name, bool force)
{
    if (strcmp(name, "default") == 0) {
        return HR_EINVAL;
    }
    pthread_mutex_lock(&reg->mu);
    bool found;
    size_t pos = find_pos(reg, name, &found);
    int rc = 0;
    hr_bus_t *bus = NULL;
    if (!found) {
        rc = HR_ENOTFOUND;
        goto out;
    }
    bus = reg->buses[pos];
    if (!force && hr_bus_last_seq(bus) > 0) {
        rc = HR_ECONFLICT;
        goto out;
    }
    if ((rc = hr_meta_bus_delete(reg->meta, name)) != 0) {
        goto out;
    }
    /* Move the files out of the way now so the name can be reused at once; open file
     * descriptors stay valid across the rename. */
    char *trash = path_join(reg->data_dir, "trash");
    mkdir_p(trash);
    char leaf[128];
    snprintf(leaf, sizeof leaf, "%s.%llu", name, (unsigned long long)hr_wall_ns());
    char *dst = path_join(trash, leaf);
    if (rename(bus->dir, dst) == 0) {
        free(bus->dir);
        bus->dir = dst;
    } else {
        free(dst);
    }
    free(trash);
    atomic_store(&bus->deleted, true);
    memmove(reg->buses + pos, reg->buses + pos + 1, (reg->n - pos - 1) * sizeof *reg->buses);
    reg->n--;
out:
    pthread_mutex_unlock(&reg->mu);
    if (rc == 0) {
        /* wake streams so they notice the bus is gone, then drop the registry's reference */
        hr__bus_wake(bus);
        hr_bus_release(bus);
    }
    return rc;
}

int hr_buses_each(hr_buses_t *reg, int (*fn)(void *arg, hr_bus_t *bus), void *arg)
{
    pthread_mutex_lock(&reg->mu);
    size_t n = reg->n;
    hr_bus_t **snap = hr_xmalloc((n ? n : 1) * sizeof *snap);
    for (size_t i = 0; i < n; i++) {
        snap[i] = reg->buses[i];
        atomic_fetch_add(&snap[i]->refs, 1);
    }
    pthread_mutex_unlock(&reg->mu);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            rc = fn(arg, snap[i]);
        }
        hr_bus_release(snap[i]);
    }
    free(snap);
    return rc;
}

void hr_buses_watch_each(hr_buses_t *reg, void (*fn)(hr_bus_watch_t *w, void *arg), void *arg)
{
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->n; i++) {
        hr_bus_watch_each(reg->buses[i], fn, arg);
    }
    pthread_mutex_unlock(&reg->mu);
}
