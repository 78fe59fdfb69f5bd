/* SPDX-License-Identifier: MIT */
/* Bus internals shared by bus.c and buses.c (the registry). */
#ifndef HR_BROKER_BUS_INT_H
#define HR_BROKER_BUS_INT_H

#include "broker/bus.h"

#include <pthread.h>
#include <stdatomic.h>

struct hr_bus {
    char *name;
    char *dir;
    uint64_t created_ns;
    hr_bus_config_t cfg; /* guarded by cfg_mu (the commit thread reads dedup_window_ms below) */
    pthread_mutex_t cfg_mu;
    hr_log_t *log;
    /* Commit-thread state. */
    hr_dedup_t *dedup;
    uint64_t dedup_last_ns;
    uint64_t dedup_cur_ms;
    atomic_uint_least64_t dedup_window_ms; /* written by configure, read by the admit hook */
    /* Lifetime. */
    atomic_int refs;
    atomic_bool deleted;
    /* Watchers (SSE streams, later the dispatcher). */
    pthread_mutex_t watch_mu;
    hr_bus_watch_t *watchers;
    hr_buses_t *reg;
};

int hr__bus_open(const char *name, const char *dir, const hr_bus_config_t *cfg, uint64_t created_ns,
                 hr_bus_t **out);
void hr__bus_configure(hr_bus_t *bus, const hr_bus_config_t *cfg);
void hr__bus_close(hr_bus_t *bus);
/* Wakes every watcher (after a commit, or when the bus is deleted). */
void hr__bus_wake(hr_bus_t *bus);

#endif
