/* db: thin helpers over libpq for the data layer: parameterized statements, transactions, result
 * accessors and array literals. Every statement goes through PQexecParams: no SQL is ever built
 * from request data (array literals hold only validated ids and integers, passed as parameters). */
#ifndef MQS_SYNCD_DB_H
#define MQS_SYNCD_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Runs sql with n text parameters (NULL entries are SQL NULL). binary=true asks for binary
 * results (used for bytea payloads). Returns the result (caller PQclear()s; never NULL: libpq's
 * out-of-memory result is replaced by an empty fatal one). Logs failures other than constraint
 * violations. */
PGresult *db_exec(PGconn *c, const char *sql, int n, const char *const *vals, bool binary);

/* True when res is COMMAND_OK or TUPLES_OK. */
bool db_ok(const PGresult *res);

/* The SQLSTATE of a failed result, or "" when none. */
const char *db_sqlstate(const PGresult *res);

/* Runs a parameterless command (BEGIN, COMMIT, ROLLBACK). Returns false on failure. */
bool db_cmd(PGconn *c, const char *sql);

/* Text-format accessors. db_int returns 0 for NULL. */
int64_t db_int(const PGresult *res, int row, int col);
bool db_bool(const PGresult *res, int row, int col);

/* Binary-format accessor for int8 columns. */
int64_t db_bin_int8(const PGresult *res, int row, int col);

/* A growable string buffer for array literals such as {a,b,c}. */
struct db_buf {
	char *s;
	size_t len, cap;
	bool oom;
};
void db_buf_add(struct db_buf *b, const char *s);
void db_buf_addf(struct db_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the buffer's memory (accepts an empty buffer). */
void db_buf_free(struct db_buf *b);

/* Formats an int64 into buf (at least 21 bytes); returns buf. */
char *db_i64(char *buf, int64_t v);

#endif
