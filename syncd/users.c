/* users: the data layer for users and their tokens. */
#include "users.h"

#include <string.h>

#include "ids.h"
#include "log.h"

static bool command_ok(PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

enum users_result users_create(PGconn *conn, const char *id, bool admin, char token[MQS_TOKEN_LEN + 1])
{
	unsigned char hash[MQS_TOKEN_HASH_LEN];
	enum users_result rc = USERS_DB_ERROR;

	if(!mqs_id_valid(id)) return USERS_INVALID;
	if(!mqs_token_new(token) || !mqs_token_hash(token, MQS_TOKEN_LEN, hash)) return USERS_DB_ERROR;

	/* A single statement is its own transaction: both rows or neither. */
	const char *params[3] = {id, admin ? "t" : "f", (const char *)hash};
	int lengths[3] = {0, 0, MQS_TOKEN_HASH_LEN};
	int formats[3] = {0, 0, 1};
	PGresult *res = PQexecParams(conn,
	                             "WITH u AS (INSERT INTO users (id, is_admin) VALUES ($1, $2) RETURNING id) "
	                             "INSERT INTO user_tokens (token_hash, user_id) SELECT $3, id FROM u",
	                             3, NULL, params, lengths, formats, 0);
	if(command_ok(res)) {
		rc = USERS_OK;
	} else {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if(state != NULL && !strcmp(state, "23505"))
			rc = USERS_EXISTS;
		else
			mqs_log(MQS_LOG_ERR, "users_create: %s", PQresultErrorMessage(res));
	}
	PQclear(res);
	if(rc != USERS_OK) memset(token, 0, MQS_TOKEN_LEN + 1);
	return rc;
}
