/* store_users: users and their tokens in the database (SPEC 5.5): no HTTP, so the `user add`
 * command links it without the server. */
#ifndef MQS_SYNCD_STORE_USERS_H
#define MQS_SYNCD_STORE_USERS_H

#include <stdbool.h>

#include "store.h"
#include "token.h"

/* Creates user id (admin or not) with one fresh token, written into token (shown once, never
 * stored: only its hash is). One statement: on any failure nothing is written, and token is wiped.
 * STORE_OK, STORE_INVALID (id does not match [A-Za-z0-9_-]{1,64}), STORE_CONFLICT (exists),
 * STORE_DB_ERROR (also a failed random source). */
MQS_MUST_CHECK enum store_rc store_user_create(struct db_conn *db, const char *id, bool admin,
                                               char token[MQS_TOKEN_LEN + 1]);

/* Replaces every token of user id by one fresh token (written into token), in one statement:
 * the old tokens stop working at commit, for HTTP at once and for MQTT as soon as the brokers
 * see the mqsync_state notification. STORE_OK, STORE_NOT_FOUND, STORE_INVALID, STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_user_rotate_token(struct db_conn *db, const char *id, char token[MQS_TOKEN_LEN + 1]);

/* Deletes user id with its tokens and memberships (ON DELETE CASCADE). STORE_OK, STORE_NOT_FOUND,
 * STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_user_remove(struct db_conn *db, const char *id);

/* Whose token has this SHA-256: STORE_OK with uid filled, STORE_NOT_FOUND, STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_user_by_token(struct db_conn *db, const unsigned char hash[MQS_TOKEN_HASH_LEN],
                                                 char uid[MQS_ID_MAX + 1]);

#endif
