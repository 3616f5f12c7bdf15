/* db: thin helpers over libpq for the store layer (store_*.c, the only callers): parameterized
 * statements, transactions, result accessors and the id lists handlers collect (array literals are common/pgarr). Every
 * statement goes through PQexecParams: no SQL is ever built from request data (array literals hold only validated ids
 * and integers, passed as parameters). */
#ifndef MQS_SYNCD_DB_H
#define MQS_SYNCD_DB_H

#include <libpq-fe.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "pg.h"
#include "pgarr.h"
#include "syncsql.h"
#include "util.h"

/* A connection as the store sees it: a pooled (or CLI) connection and what it serves, which
 * prefixes the log line of a failed statement. Both borrowed. */
struct db_conn {
	PGconn *pg;
	const char *ctx; /* "GET /messages/sync", "user add", or NULL */
};

/* The message columns every message query selects (see store_msgs_view in store_messages.c). ts is formatted
 * with exactly the plugin's expression, so sync and live delivery show the same string. */
#define DB_MSG_COLUMNS MQS_SQL_MSG_COLUMNS /* common/syncsql.h */

/* Statements prepared on every pooled connection when it connects: the per-request hot path
 * (authentication and sync), which then skips parse and plan. */
enum db_stmt {
	DB_STMT_AUTH,          /* $1 token hash (hex) -> user_id */
	DB_STMT_SYNC_GROUPS,   /* $1 user, $2 group or NULL -> group_id, joined_seq, delivered_seq, last_seq */
	DB_STMT_SYNC_MESSAGES, /* $1 gids[], $2 exclusive lower seqs[], $3 inclusive upper seqs[] -> messages */
	DB_STMT_COUNT
};

/* Prepares every enum db_stmt on c. Returns false (logged) when one fails, e.g. before the schema
 * is migrated; the pool then treats the connection as failed. */
MQS_MUST_CHECK bool db_prepare_all(PGconn *c);

/* Runs a prepared statement; same contract as db_exec. */
MQS_MUST_CHECK PGresult *db_exec_stmt(struct db_conn *c, enum db_stmt stmt, int n, const char *const *vals,
                                      bool binary);

/* Runs sql with n text parameters (NULL entries are SQL NULL). binary=true asks for binary
 * results (used for bytea payloads). Returns the result (caller PQclear()s; never NULL: libpq's
 * out-of-memory result is replaced by an empty fatal one). Logs failures other than constraint
 * violations. */
MQS_MUST_CHECK PGresult *db_exec(struct db_conn *c, const char *sql, int n, const char *const *vals, bool binary);

/* db_exec with per-parameter lengths and formats (1 = binary, e.g. a token hash); either may be NULL. */
MQS_MUST_CHECK PGresult *db_exec_params(struct db_conn *c, const char *sql, int n, const char *const *vals,
                                        const int *lengths, const int *formats, bool binary);

/* True when res is COMMAND_OK or TUPLES_OK. */
bool db_ok(const PGresult *res);

/* The SQLSTATE of a failed result, or "" when none. */
const char *db_sqlstate(const PGresult *res);

/* Runs a parameterless command (BEGIN, COMMIT, ROLLBACK). Returns false on failure. */
MQS_MUST_CHECK bool db_cmd(struct db_conn *c, const char *sql);

/* Text-format accessors (integers: mqs_pg_int, common/pg.h). */
bool db_bool(const PGresult *res, int row, int col);

/* Binary-format accessor for int8 columns. */
int64_t db_bin_int8(const PGresult *res, int row, int col);

/* A list of validated ids ([A-Za-z0-9_-]{1,64}) that a handler collects for the store. */
struct db_idlist {
	char (*id)[MQS_ID_MAX + 1];
	size_t n, cap;
	bool oom; /* an add failed: the list is incomplete */
};
/* Appends the len bytes of s (len <= MQS_ID_MAX); sets oom on allocation failure. */
void db_idlist_add(struct db_idlist *l, const char *s, size_t len);
/* Frees the list's memory (accepts a zeroed list). */
void db_idlist_free(struct db_idlist *l);

/* The text array literal of l's ids in a (emptied first; common/pgarr): owned by a, or NULL on out
 * of memory. */
MQS_MUST_CHECK const char *db_idlist_literal(struct mqs_pgarr *a, const struct db_idlist *l);

/* Formats an int64 into buf (at least 21 bytes); returns buf. */
char *db_i64(char *buf, int64_t v);

#endif
