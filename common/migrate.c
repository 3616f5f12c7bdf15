/* migrate: applies the embedded sql/NNNN_*.sql migrations in order, each once, under an advisory
 * lock (SPEC 1). */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MQS_MIGRATE_LOCK_KEY "7411020001" /* any constant shared by all mqsync processes */

static int exec_ok(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	int ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
	if(!ok) snprintf(err, errlen, "%s", PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

int mqs_schema_version(PGconn *conn)
{
	PGresult *res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	int v = -1;
	if(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) v = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

int mqs_migrate(PGconn *conn, char *err, size_t errlen)
{
	int applied = 0;

	err[0] = '\0';
	if(!exec_ok(conn, "SELECT pg_advisory_lock(" MQS_MIGRATE_LOCK_KEY ")", err, errlen)) return -1;
	if(!exec_ok(conn,
	            "SET client_min_messages = warning;"
	            "CREATE TABLE IF NOT EXISTS schema_migrations ("
	            " version integer PRIMARY KEY, name text NOT NULL,"
	            " applied_at timestamptz NOT NULL DEFAULT now())",
	            err, errlen))
		goto fail;

	int current = mqs_schema_version(conn);
	if(current < 0) {
		snprintf(err, errlen, "cannot read schema_migrations: %s", PQerrorMessage(conn));
		goto fail;
	}
	for(size_t i = 0; i < mqs_migrations_count; i++) {
		const struct mqs_migration *m = &mqs_migrations[i];
		if(m->version <= current) continue;
		if(!exec_ok(conn, "BEGIN", err, errlen)) goto fail;
		if(!exec_ok(conn, m->sql, err, errlen)) {
			char detail[512];
			snprintf(detail, sizeof(detail), "%s", err);
			snprintf(err, errlen, "%s: %s", m->name, detail);
			exec_ok(conn, "ROLLBACK", detail, sizeof(detail));
			goto fail;
		}
		char v[16];
		snprintf(v, sizeof(v), "%d", m->version);
		const char *params[2] = {v, m->name};
		PGresult *res = PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
		                             NULL, params, NULL, NULL, 0);
		int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok) snprintf(err, errlen, "%s: %s", m->name, PQresultErrorMessage(res));
		PQclear(res);
		if(!ok || !exec_ok(conn, "COMMIT", err, errlen)) {
			char ignore[256];
			exec_ok(conn, "ROLLBACK", ignore, sizeof(ignore));
			goto fail;
		}
		applied++;
	}
	exec_ok(conn, "SELECT pg_advisory_unlock(" MQS_MIGRATE_LOCK_KEY ")", err, errlen);
	return applied;

fail:;
	char ignore[256];
	exec_ok(conn, "SELECT pg_advisory_unlock(" MQS_MIGRATE_LOCK_KEY ")", ignore, sizeof(ignore));
	return -1;
}
