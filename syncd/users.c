/* users: the data layer for users and their tokens, and the /users endpoints. */
#include "users.h"

#include <openssl/crypto.h>
#include <string.h>

#include "db.h"
#include "ids.h"
#include "input.h"
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

enum users_result users_rotate_token(PGconn *conn, const char *id, char token[MQS_TOKEN_LEN + 1])
{
	unsigned char hash[MQS_TOKEN_HASH_LEN];
	enum users_result rc = USERS_DB_ERROR;

	if(!mqs_id_valid(id)) return USERS_INVALID;
	if(!mqs_token_new(token) || !mqs_token_hash(token, MQS_TOKEN_LEN, hash)) return USERS_DB_ERROR;
	/* One statement: the new token exists exactly when the old ones are gone. */
	const char *params[2] = {id, (const char *)hash};
	int lengths[2] = {0, MQS_TOKEN_HASH_LEN};
	int formats[2] = {0, 1};
	PGresult *res =
	        PQexecParams(conn,
	                     "WITH u AS (SELECT id FROM users WHERE id = $1 FOR UPDATE), "
	                     "d AS (DELETE FROM user_tokens t USING u WHERE t.user_id = u.id) "
	                     "INSERT INTO user_tokens (token_hash, user_id) SELECT $2, id FROM u RETURNING user_id",
	                     2, NULL, params, lengths, formats, 0);
	if(command_ok(res))
		rc = PQntuples(res) == 1 ? USERS_OK : USERS_NOT_FOUND;
	else
		mqs_log(MQS_LOG_ERR, "users_rotate_token: %s", PQresultErrorMessage(res));
	PQclear(res);
	if(rc != USERS_OK) OPENSSL_cleanse(token, MQS_TOKEN_LEN + 1);
	return rc;
}

enum users_result users_remove(PGconn *conn, const char *id)
{
	const char *p[1] = {id};
	PGresult *res = db_exec(conn, "DELETE FROM users WHERE id = $1", 1, p, false);
	enum users_result rc = USERS_DB_ERROR;

	if(db_ok(res)) rc = !strcmp(PQcmdTuples(res), "1") ? USERS_OK : USERS_NOT_FOUND;
	PQclear(res);
	return rc;
}

/* The 201 {"id", "token"} answer; wipes token afterwards. */
static unsigned token_reply(struct syncd_reply *reply, const char *id, char *token)
{
	unsigned rc = syncd_reply_json(reply, 201, json_pack("{s:s,s:s}", "id", id, "token", token));
	OPENSSL_cleanse(token, MQS_TOKEN_LEN + 1);
	return rc;
}

static const char *const user_keys[] = {"id", "admin", NULL};

unsigned users_post(struct syncd_call *call, struct syncd_reply *reply)
{
	char err[256];
	char token[MQS_TOKEN_LEN + 1];
	const char *id;
	bool admin = false;

	if(!input_only_keys(call->body, user_keys, err, sizeof(err)) ||
	   !input_field_id(call->body, "id", "id", true, &id, NULL, err, sizeof(err)) ||
	   !input_field_bool(call->body, "admin", "admin", false, &admin, NULL, err, sizeof(err)))
		return syncd_bad_request(reply, err);
	switch(users_create(call->db, id, admin, token)) {
	case USERS_OK:
		return token_reply(reply, id, token);
	case USERS_EXISTS:
		return syncd_error(reply, 409, "conflict", "user '%s' already exists", id);
	case USERS_INVALID:
		return syncd_bad_request(reply, "id: must match [A-Za-z0-9_-]{1,64}");
	default:
		return syncd_db_error(reply);
	}
}

unsigned users_rotate(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *id = call->params[0];
	char token[MQS_TOKEN_LEN + 1];

	if(call->auth != SYNCD_AUTH_ADMIN && strcmp(call->user, id) != 0)
		return syncd_error(reply, 403, "forbidden",
		                   "only the user itself or the admin token may rotate a token");
	switch(users_rotate_token(call->db, id, token)) {
	case USERS_OK:
		return token_reply(reply, id, token);
	case USERS_NOT_FOUND:
		return syncd_error(reply, 404, "not_found", "no user '%s'", id);
	default:
		return syncd_db_error(reply);
	}
}

unsigned users_delete(struct syncd_call *call, struct syncd_reply *reply)
{
	switch(users_remove(call->db, call->params[0])) {
	case USERS_OK:
		reply->status = 204;
		return 204;
	case USERS_NOT_FOUND:
		return syncd_error(reply, 404, "not_found", "no user '%s'", call->params[0]);
	default:
		return syncd_db_error(reply);
	}
}
