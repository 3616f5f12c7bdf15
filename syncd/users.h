/* users: the data layer for users and their tokens, and the /users endpoints (SPEC 5.5). */
#ifndef MQS_SYNCD_USERS_H
#define MQS_SYNCD_USERS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "http.h"
#include "token.h"

enum users_result { USERS_OK = 0, USERS_EXISTS, USERS_NOT_FOUND, USERS_INVALID, USERS_DB_ERROR };

/* Creates user id (admin or not) with one fresh token, written into token (shown once, never
 * stored: only its hash is). One transaction: on any failure nothing is written. */
enum users_result users_create(PGconn *conn, const char *id, bool admin, char token[MQS_TOKEN_LEN + 1]);

/* Replaces every token of user id by one fresh token (written into token), in one statement:
 * the old tokens stop working at commit, for HTTP at once and for MQTT as soon as the brokers
 * see the mqsync_state notification. */
enum users_result users_rotate_token(PGconn *conn, const char *id, char token[MQS_TOKEN_LEN + 1]);

/* Deletes user id with its tokens and memberships (ON DELETE CASCADE). */
enum users_result users_remove(PGconn *conn, const char *id);

/* POST /users (admin token), POST /users/{uid}/token (admin token or the user), DELETE
 * /users/{uid} (admin token). */
unsigned users_post(struct syncd_call *call, struct syncd_reply *reply);
unsigned users_rotate(struct syncd_call *call, struct syncd_reply *reply);
unsigned users_delete(struct syncd_call *call, struct syncd_reply *reply);

#endif
