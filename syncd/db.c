/* db: thin helpers over libpq for the data layer (see db.h). */
#include "db.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const struct {
	const char *name;
	const char *sql;
	int nparams;
} stmts[DB_STMT_COUNT] = {
        [DB_STMT_AUTH] = {"mqs_auth", "SELECT user_id FROM user_tokens WHERE token_hash = decode($1, 'hex')", 1},
        [DB_STMT_SYNC_GROUPS] = {"mqs_sync_groups",
                                 "SELECT m.group_id, m.joined_seq, m.delivered_seq, g.last_seq "
                                 "FROM memberships m JOIN groups g ON g.id = m.group_id "
                                 "WHERE m.user_id = $1 AND ($2::text IS NULL OR m.group_id = $2) "
                                 "ORDER BY m.group_id COLLATE \"C\"",
                                 2},
        [DB_STMT_SYNC_MESSAGES] = {"mqs_sync_messages",
                                   "SELECT " DB_MSG_COLUMNS " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) "
                                   "AS r(gid, lo, hi) "
                                   "JOIN messages m ON m.group_id = r.gid AND m.seq > r.lo AND m.seq <= r.hi "
                                   "ORDER BY m.group_id COLLATE \"C\", m.seq",
                                   3},
};

bool db_prepare_all(PGconn *c)
{
	for(int i = 0; i < DB_STMT_COUNT; i++) {
		PGresult *res = PQprepare(c, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
		bool ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok)
			mqs_log(MQS_LOG_WARN, "cannot prepare %s (is the schema migrated?): %s", stmts[i].name,
			        PQerrorMessage(c));
		PQclear(res);
		if(!ok) return false;
	}
	return true;
}

static PGresult *checked(PGconn *c, PGresult *res)
{
	if(res == NULL) res = PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR);
	if(!db_ok(res)) {
		const char *st = db_sqlstate(res);
		/* Class 23 (constraint violations) is an expected outcome the caller maps to a status. */
		if(strncmp(st, "23", 2) != 0) mqs_log(MQS_LOG_WARN, "query failed: %s", PQerrorMessage(c));
	}
	return res;
}

PGresult *db_exec_stmt(PGconn *c, enum db_stmt stmt, int n, const char *const *vals, bool binary)
{
	return checked(c, PQexecPrepared(c, stmts[stmt].name, n, vals, NULL, NULL, binary ? 1 : 0));
}

PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *vals, bool binary)
{
	return checked(c, PQexecParams(c, sql, n, NULL, vals, NULL, NULL, binary ? 1 : 0));
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

bool db_cmd(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	bool ok = res != NULL && db_ok(res);
	if(!ok) mqs_log(MQS_LOG_WARN, "%s failed: %s", sql, PQerrorMessage(c));
	PQclear(res);
	return ok;
}

int64_t db_int(const PGresult *res, int row, int col)
{
	if(PQgetisnull(res, row, col)) return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool db_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

int64_t db_bin_int8(const PGresult *res, int row, int col)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
	uint64_t v = 0;

	if(PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8) return 0;
	for(int i = 0; i < 8; i++) v = v << 8 | p[i];
	return (int64_t)v;
}

static void buf_grow(struct db_buf *b, size_t need)
{
	if(b->oom || b->len + need + 1 <= b->cap) return;
	size_t cap = b->cap ? b->cap : 256;
	while(cap < b->len + need + 1) cap *= 2;
	char *s = realloc(b->s, cap);
	if(s == NULL) {
		b->oom = true;
		return;
	}
	b->s = s;
	b->cap = cap;
}

void db_buf_add(struct db_buf *b, const char *s)
{
	size_t n = strlen(s);
	buf_grow(b, n);
	if(b->oom) return;
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

void db_buf_add_id(struct db_buf *b, const char *id)
{
	db_buf_add(b, "\"");
	db_buf_add(b, id);
	db_buf_add(b, "\"");
}

void db_buf_addf(struct db_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	db_buf_add(b, tmp);
}

void db_buf_free(struct db_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

char *db_i64(char *buf, int64_t v)
{
	snprintf(buf, 21, "%" PRId64, v);
	return buf;
}
