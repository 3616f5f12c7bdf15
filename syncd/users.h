/* users: the data layer for users and their tokens. */
#ifndef MQS_SYNCD_USERS_H
#define MQS_SYNCD_USERS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "token.h"

enum users_result { USERS_OK = 0, USERS_EXISTS, USERS_NOT_FOUND, USERS_INVALID, USERS_DB_ERROR };

/* Creates user id (admin or not) with one fresh token, written into token (shown once, never
 * stored: only its hash is). One transaction: on any failure nothing is written. */
enum users_result users_create(PGconn *conn, const char *id, bool admin, char token[MQS_TOKEN_LEN + 1]);

#endif
