/* db: thin helpers over libpq for the data layer (see db.h). */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "slog.h"

static const struct {
	const char *name;
	const char *sql;
	int nparams;
} stmts[DB_STMT_COUNT] = {
        [DB_STMT_AUTH] = {"mqs_auth", "SELECT user_id FROM user_tokens WHERE token_hash = decode($1, 'hex')", 1},
        [DB_STMT_SYNC_GROUPS] = {"mqs_sync_groups", MQS_SQL_SYNC_GROUPS, 2},
        [DB_STMT_SYNC_MESSAGES] = {"mqs_sync_messages", MQS_SQL_SYNC_MESSAGES, 3},
};

bool db_prepare_all(PGconn *c)
{
	for(int i = 0; i < DB_STMT_COUNT; i++) {
		PGresult *res = PQprepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
		bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok)
			syncd_log(MQS_LOG_WARN, NULL, "cannot prepare %s (is the schema migrated?): %s", stmts[i].name,
			          PQerrorMessage(c));
		PQclear(res);
		if(!ok) return false;
	}
	return true;
}

/* Never NULL (see db_exec); logs a failure other than a constraint violation. */
static PGresult *checked(struct db_conn *c, PGresult *res)
{
	if(res == NULL) res = PQmakeEmptyPGresult(c->pg, PGRES_FATAL_ERROR);
	if(!db_ok(res)) {
		const char *st = db_sqlstate(res);
		/* Class 23 (constraint violations) is an expected outcome the caller maps to a status. */
		if(strncmp(st, "23", 2) != 0)
			syncd_log(MQS_LOG_WARN, c->ctx, "query failed: %s", PQerrorMessage(c->pg));
	}
	return res;
}

PGresult *db_exec_stmt(struct db_conn *c, enum db_stmt stmt, int n, const char *const *vals, bool binary)
{
	return checked(c, PQexecPrepared(c->pg, stmts[stmt].name, n, vals, NULL, NULL, binary ? 1 : 0));
}

PGresult *db_exec(struct db_conn *c, const char *sql, int n, const char *const *vals, bool binary)
{
	return db_exec_params(c, sql, n, vals, NULL, NULL, binary);
}

PGresult *db_exec_params(struct db_conn *c, const char *sql, int n, const char *const *vals, const int *lengths,
                         const int *formats, bool binary)
{
	return checked(c, PQexecParams(c->pg, sql, n, NULL, vals, lengths, formats, binary ? 1 : 0));
}

bool db_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

const char *db_sqlstate(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return s ? s : "";
}

bool db_cmd(struct db_conn *c, const char *sql)
{
	PGresult *res = PQexec(c->pg, sql);
	bool ok = res != NULL && db_ok(res);
	if(!ok) syncd_log(MQS_LOG_WARN, c->ctx, "%s failed: %s", sql, PQerrorMessage(c->pg));
	PQclear(res);
	return ok;
}

bool db_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

int64_t db_bin_int8(const PGresult *res, int row, int col)
{
	if(PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8) return 0;
	return (int64_t)mqs_be64_get(PQgetvalue(res, row, col));
}

void db_idlist_add(struct db_idlist *l, const char *s, size_t len)
{
	if(l->oom) return;
	if(l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		void *id = realloc(l->id, cap * sizeof(*l->id));
		if(id == NULL) {
			l->oom = true;
			return;
		}
		l->id = id;
		l->cap = cap;
	}
	if(len > MQS_ID_MAX) len = MQS_ID_MAX;
	memcpy(l->id[l->n], s, len);
	l->id[l->n][len] = '\0';
	l->n++;
}

void db_idlist_free(struct db_idlist *l)
{
	free(l->id);
	memset(l, 0, sizeof(*l));
}

const char *db_idlist_literal(struct mqs_pgarr *a, const struct db_idlist *l)
{
	if(l->oom) return NULL;
	mqs_pgarr_reset(a);
	for(size_t i = 0; i < l->n; i++) mqs_pgarr_add_str(a, l->id[i], strlen(l->id[i]));
	return mqs_pgarr_text(a);
}

char *db_i64(char *buf, int64_t v)
{
	snprintf(buf, 21, "%" PRId64, v);
	return buf;
}
