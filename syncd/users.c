/* users: the /users endpoints: parse, call store_users, answer. */
#include "users.h"

#include <openssl/crypto.h>
#include <string.h>

#include "http.h"
#include "input.h"
#include "store_users.h"

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
	enum store_rc rc = store_user_create(call->db, id, admin, token);
	if(rc == STORE_OK) return token_reply(reply, id, token);
	if(rc == STORE_INVALID) return syncd_bad_request(reply, "id: must match [A-Za-z0-9_-]{1,64}");
	return syncd_store_error(reply, rc, "user '%s' already exists", id);
}

unsigned users_rotate(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *id = call->params[0];
	char token[MQS_TOKEN_LEN + 1];

	if(call->auth != SYNCD_AUTH_ADMIN && strcmp(call->user, id) != 0)
		return syncd_error(reply, 403, "forbidden",
		                   "only the user itself or the admin token may rotate a token");
	enum store_rc rc = store_user_rotate_token(call->db, id, token);
	if(rc == STORE_OK) return token_reply(reply, id, token);
	return syncd_store_error(reply, rc, "no user '%s'", id);
}

unsigned users_delete(struct syncd_call *call, struct syncd_reply *reply)
{
	enum store_rc rc = store_user_remove(call->db, call->params[0]);
	if(rc == STORE_OK) return syncd_no_content(reply);
	return syncd_store_error(reply, rc, "no user '%s'", call->params[0]);
}
