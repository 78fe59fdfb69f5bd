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
    /* 2 */
    "CREATE TABLE triggers (name TEXT PRIMARY KEY, bus TEXT NOT NULL, doc TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, cursor INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,"
    " retried INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE deadletters (id INTEGER PRIMARY KEY AUTOINCREMENT, bus TEXT NOT NULL,"
    " trigger TEXT NOT NULL, seq INTEGER NOT NULL, time_ns INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, code TEXT NOT NULL, data TEXT NOT NULL, dest TEXT NOT NULL,"
    " event BLOB NOT NULL);"
    "CREATE INDEX deadletters_by_trigger ON deadletters(bus, trigger, id);",
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

/* ---- triggers ---- */

int hr_meta_trigger_put(hr_meta_t *m, const hr_meta_trigger_t *t)
{
    int rc = HR_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db,
                           "INSERT INTO triggers(name, bus, doc, created_ns, cursor) "
                           "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET "
                           "bus = excluded.bus, doc = excluded.doc",
                           -1, &st, NULL) != SQLITE_OK) {
        goto out;
    }
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->bus, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->doc_json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)t->created_ns);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)t->cursor);
    if (sqlite3_step(st) == SQLITE_DONE) {
        rc = 0;
    }
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int hr_meta_trigger_delete(hr_meta_t *m, const char *name)
{
    int rc = HR_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db, "DELETE FROM triggers WHERE name = ?1", -1, &st, NULL) !=
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

int hr_meta_trigger_each(hr_meta_t *m, hr_meta_trigger_fn fn, void *arg)
{
    int rc = 0, step;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db,
                           "SELECT name, bus, doc, created_ns, cursor, delivered, retried, failed "
                           "FROM triggers ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = HR_EIO;
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        hr_meta_trigger_t t = {
            (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
            (const char *)sqlite3_column_text(st, 2), (uint64_t)sqlite3_column_int64(st, 3),
            (uint64_t)sqlite3_column_int64(st, 4),    (uint64_t)sqlite3_column_int64(st, 5),
            (uint64_t)sqlite3_column_int64(st, 6),    (uint64_t)sqlite3_column_int64(st, 7)};
        if ((rc = fn(arg, &t)) != 0) {
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

/* ---- dead letters and cursors, in one transaction ---- */

static int step_done(sqlite3_stmt *st)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r == SQLITE_DONE ? 0 : HR_EIO;
}

int hr_meta_commit(hr_meta_t *m, hr_meta_dl_t *dls, size_t n_dls, const hr_meta_trigger_t *cursors,
                   size_t n_cursors, const int64_t *done_ids, size_t n_done)
{
    int rc = 0;
    sqlite3_stmt *ins = NULL, *upd = NULL, *del = NULL;
    pthread_mutex_lock(&m->mu);
    if (exec(m->db, "BEGIN IMMEDIATE") != 0) {
        pthread_mutex_unlock(&m->mu);
        return HR_EIO;
    }
    if (sqlite3_prepare_v2(m->db,
                           "INSERT INTO deadletters(bus, trigger, seq, time_ns, attempts, code, "
                           "data, dest, event) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m->db,
                           "UPDATE triggers SET cursor = ?2, delivered = ?3, retried = ?4, "
                           "failed = ?5 WHERE name = ?1",
                           -1, &upd, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(m->db, "DELETE FROM deadletters WHERE id = ?1", -1, &del, NULL) !=
            SQLITE_OK) {
        rc = HR_EIO;
        goto out;
    }
    for (size_t i = 0; i < n_dls && rc == 0; i++) {
        hr_meta_dl_t *d = &dls[i];
        sqlite3_bind_text(ins, 1, d->bus, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, d->trigger, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)d->seq);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64)d->time_ns);
        sqlite3_bind_int64(ins, 5, d->attempts);
        sqlite3_bind_text(ins, 6, d->code, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 7, d->data, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 8, d->dest, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 9, d->event, (int)d->event_len, SQLITE_STATIC);
        rc = step_done(ins);
        d->id = sqlite3_last_insert_rowid(m->db);
    }
    for (size_t i = 0; i < n_cursors && rc == 0; i++) {
        const hr_meta_trigger_t *c = &cursors[i];
        sqlite3_bind_text(upd, 1, c->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(upd, 2, (sqlite3_int64)c->cursor);
        sqlite3_bind_int64(upd, 3, (sqlite3_int64)c->delivered);
        sqlite3_bind_int64(upd, 4, (sqlite3_int64)c->retried);
        sqlite3_bind_int64(upd, 5, (sqlite3_int64)c->failed);
        rc = step_done(upd);
    }
    for (size_t i = 0; i < n_done && rc == 0; i++) {
        sqlite3_bind_int64(del, 1, done_ids[i]);
        rc = step_done(del);
    }
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    sqlite3_finalize(del);
    if (rc == 0) {
        rc = exec(m->db, "COMMIT");
    }
    if (rc != 0) {
        exec(m->db, "ROLLBACK");
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int hr_meta_dl_each(hr_meta_t *m, const char *bus, const char *trigger, int64_t after_id,
                    uint64_t seq_from, uint64_t seq_to, size_t limit, hr_meta_dl_fn fn, void *arg)
{
    int rc = 0, step;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db,
                           "SELECT id, bus, trigger, seq, time_ns, attempts, code, data, dest, "
                           "event FROM deadletters WHERE bus = ?1 AND (?2 = '' OR trigger = ?2) "
                           "AND id > ?3 AND (?5 = 0 OR seq BETWEEN ?4 AND ?5) ORDER BY id LIMIT ?6",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = HR_EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, bus, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, trigger ? trigger : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, after_id);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)seq_from);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)seq_to);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)limit);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        hr_meta_dl_t d = {sqlite3_column_int64(st, 0),
                          (const char *)sqlite3_column_text(st, 1),
                          (const char *)sqlite3_column_text(st, 2),
                          (uint64_t)sqlite3_column_int64(st, 3),
                          (uint64_t)sqlite3_column_int64(st, 4),
                          (uint32_t)sqlite3_column_int64(st, 5),
                          (const char *)sqlite3_column_text(st, 6),
                          (const char *)sqlite3_column_text(st, 7),
                          (const char *)sqlite3_column_text(st, 8),
                          sqlite3_column_blob(st, 9),
                          (size_t)sqlite3_column_bytes(st, 9)};
        if ((rc = fn(arg, &d)) != 0) {
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

int hr_meta_dl_count(hr_meta_t *m, const char *bus, const char *trigger, uint64_t *out)
{
    int rc = HR_EIO;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&m->mu);
    if (sqlite3_prepare_v2(m->db,
                           "SELECT count(*) FROM deadletters WHERE bus = ?1 AND trigger = ?2", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, bus, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, trigger, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = (uint64_t)sqlite3_column_int64(st, 0);
            rc = 0;
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
