/* store: what every store_*.c returns (a code, never an HTTP status) and the store's one
 * statement that belongs to no table (the health check). The store owns every SQL statement of
 * mqsyncd; handlers parse, call it, render, and map its code with syncd_store_error (http.c). */
#ifndef MQS_SYNCD_STORE_H
#define MQS_SYNCD_STORE_H

#include <jansson.h>

#include "db.h"
#include "pg.h"
#include "util.h"

/* SQL: true when user uid (an SQL expression) has a live MQTT connection on some broker node. */
#define STORE_SQL_ONLINE(uid)                                                                                          \
	"EXISTS (SELECT 1 FROM presence p WHERE p.user_id = " uid                                                      \
	" AND p.connections > 0 AND " MQS_SQL_ONLINE("p.last_seen") ")"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND,  /* the group, user or message named does not exist */
	STORE_NOT_MEMBER, /* the caller is not a member of the group concerned */
	STORE_CONFLICT,   /* it already exists */
	STORE_INVALID,    /* the request contradicts the database (e.g. a seq past last_seq) */
	STORE_DB_ERROR,   /* the database failed (logged by db.c) */
	STORE_NO_MEMORY,
};

/* Appends v (a new reference, stolen; NULL after a failed json_pack) to the array *arr. On any
 * failure *arr is freed and set to NULL, so a list is never silently short. No-op when *arr is NULL. */
void store_append(json_t **arr, json_t *v);

/* SELECT 1: STORE_OK or STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_ping(struct db_conn *db);

#endif
