/* store_users: the users and user_tokens statements (see store_users.h). */
#include "store_users.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"

enum store_rc store_user_create(struct db_conn *db, const char *id, bool admin, char token[MQS_TOKEN_LEN + 1])
{
	unsigned char hash[MQS_TOKEN_HASH_LEN];
	enum store_rc rc = STORE_DB_ERROR;

	if(!mqs_id_valid(id)) return STORE_INVALID;
	if(!mqs_token_new(token) || !mqs_token_hash(token, MQS_TOKEN_LEN, hash)) return STORE_DB_ERROR;
	/* A single statement is its own transaction: both rows or neither. */
	const char *params[3] = {id, admin ? "t" : "f", (const char *)hash};
	int lengths[3] = {0, 0, MQS_TOKEN_HASH_LEN};
	int formats[3] = {0, 0, 1};
	PGresult *res = db_exec_params(db,
	                               "WITH u AS (INSERT INTO users (id, is_admin) VALUES ($1, $2) RETURNING id) "
	                               "INSERT INTO user_tokens (token_hash, user_id) SELECT $3, id FROM u",
	                               3, params, lengths, formats, false);
	if(db_ok(res))
		rc = STORE_OK;
	else if(!strcmp(db_sqlstate(res), "23505"))
		rc = STORE_CONFLICT;
	PQclear(res);
	if(rc != STORE_OK) OPENSSL_cleanse(token, MQS_TOKEN_LEN + 1);
	return rc;
}

enum store_rc store_user_rotate_token(struct db_conn *db, const char *id, char token[MQS_TOKEN_LEN + 1])
{
	unsigned char hash[MQS_TOKEN_HASH_LEN];
	enum store_rc rc = STORE_DB_ERROR;

	if(!mqs_id_valid(id)) return STORE_INVALID;
	if(!mqs_token_new(token) || !mqs_token_hash(token, MQS_TOKEN_LEN, hash)) return STORE_DB_ERROR;
	/* One statement: the new token exists exactly when the old ones are gone. */
	const char *params[2] = {id, (const char *)hash};
	int lengths[2] = {0, MQS_TOKEN_HASH_LEN};
	int formats[2] = {0, 1};
	PGresult *res =
	        db_exec_params(db,
	                       "WITH u AS (SELECT id FROM users WHERE id = $1 FOR UPDATE), "
	                       "d AS (DELETE FROM user_tokens t USING u WHERE t.user_id = u.id) "
	                       "INSERT INTO user_tokens (token_hash, user_id) SELECT $2, id FROM u RETURNING user_id",
	                       2, params, lengths, formats, false);
	if(db_ok(res)) rc = PQntuples(res) == 1 ? STORE_OK : STORE_NOT_FOUND;
	PQclear(res);
	if(rc != STORE_OK) OPENSSL_cleanse(token, MQS_TOKEN_LEN + 1);
	return rc;
}

enum store_rc store_user_remove(struct db_conn *db, const char *id)
{
	const char *p[1] = {id};
	PGresult *res = db_exec(db, "DELETE FROM users WHERE id = $1", 1, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	if(db_ok(res)) rc = !strcmp(PQcmdTuples(res), "1") ? STORE_OK : STORE_NOT_FOUND;
	PQclear(res);
	return rc;
}

enum store_rc store_user_by_token(struct db_conn *db, const unsigned char hash[MQS_TOKEN_HASH_LEN],
                                  char uid[MQS_ID_MAX + 1])
{
	char hex[2 * MQS_TOKEN_HASH_LEN + 1];
	enum store_rc rc = STORE_DB_ERROR;

	for(int i = 0; i < MQS_TOKEN_HASH_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	const char *vals[1] = {hex};
	PGresult *res = db_exec_stmt(db, DB_STMT_AUTH, 1, vals, false);
	if(db_ok(res)) {
		rc = PQntuples(res) == 1 ? STORE_OK : STORE_NOT_FOUND;
		if(rc == STORE_OK) snprintf(uid, MQS_ID_MAX + 1, "%s", PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return rc;
}
