/* SPDX-License-Identifier: MIT */
/*
 * SQLite-backed metadata. WAL mode with synchronous=FULL: a PUT answered 2xx survives a crash.
 * The schema carries a version in PRAGMA user_version; migrations run in order at open.
 */
#include "meta/meta.h"
#include "util/alloc.h"
#include "util/err.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

struct hr_meta {
    sqlite3 *db;
    pthread_mutex_t mu;
};

static const char *const migrations[] = {
    /* 1 */
    "CREATE TABLE buses (name TEXT PRIMARY KEY, config TEXT NOT NULL, created_ns INTEGER NOT "
    "NULL);",
};

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "herald: metadata: %s: %s\n", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return HR_EIO;
    }
    return 0;
}

static int migrate(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
        return HR_EIO;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    int n = (int)(sizeof migrations / sizeof migrations[0]);
    for (int v = version; v < n; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        int rc = exec(db, "BEGIN");
        if (rc == 0) {
            rc = exec(db, migrations[v]);
        }
        if (rc == 0) {
            rc = exec(db, sql);
        }
        if (rc == 0) {
            rc = exec(db, "COMMIT");
        } else {
            exec(db, "ROLLBACK");
            return rc;
        }
    }
    return 0;
}

int hr_meta_open(const char *path, hr_meta_t **out)
{
    *out = NULL;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        fprintf(stderr, "herald: cannot open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        return HR_EIO;
    }
    sqlite3_busy_timeout(db, 5000);
    /* WAL lets readers proceed during writes; synchronous=FULL fsyncs the WAL at each commit so
     * an acknowledged change survives power loss. */
    if (exec(db, "PRAGMA journal_mode=WAL") != 0 || exec(db, "PRAGMA synchronous=FULL") != 0 ||
        migrate(db) != 0) {
        sqlite3_close(db);
        return HR_EIO;
    }
    hr_meta_t *m = hr_xcalloc(1, sizeof *m);
    m->db = db;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return 0;
}

void hr_meta_close(hr_meta_t *m)
{
    if (m == NULL) {
        return;
    }
    sqlite3_close(m->db);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int hr_meta_bus_put(hr_meta_t *m, const char *name, const char *config_json, uint64_t created_ns)
{
    int rc = HR_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db,
                           "INSERT INTO buses(name, config, created_ns) VALUES(?1, ?2, ?3) "
                           "ON CONFLICT(name) DO UPDATE SET config = excluded.config",
                           -1, &st, NULL) != SQLITE_OK) {
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, config_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)created_ns);
    if (sqlite3_step(st) == SQLITE_DONE) {
        rc = 0;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int hr_meta_bus_delete(hr_meta_t *m, const char *name)
{
    int rc = HR_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db, "DELETE FROM buses WHERE name = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        goto out;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE) {
        rc = sqlite3_changes(m->db) > 0 ? 0 : HR_ENOTFOUND;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int hr_meta_bus_each(hr_meta_t *m, hr_meta_bus_fn fn, void *arg)
{
    int rc = 0;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db, "SELECT name, config, created_ns FROM buses ORDER BY name", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = HR_EIO;
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (uint64_t)sqlite3_column_int64(st, 2));
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = HR_EIO;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
