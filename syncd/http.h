/* http: the libmicrohttpd server: request lifecycle, body limits, routing, authentication,
 * long-poll suspension and JSON responses, and the one mapping of store codes to statuses. Handlers
 * live in messages.c, groups.c, users.c and ops.c; the data they serve in store_*.c. */
#ifndef MQS_SYNCD_HTTP_H
#define MQS_SYNCD_HTTP_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "db.h"
#include "ids.h"
#include "metrics.h"
#include "pool.h"
#include "store.h"
#include "waiters.h"
#include "util.h"

#define SYNCD_BODY_MAX (1024 * 1024)

/* A handler returns this instead of a status to hold the request (see struct syncd_longpoll). Not
 * 0, which internal helpers return for "go on", and no HTTP status. */
#define SYNCD_SUSPEND 1u

struct syncd;

/* Who called (on a public route call->auth is 0: no handler there reads it). */
enum syncd_auth {
	SYNCD_AUTH_USER = 1, /* a user's token: call->user is set */
	SYNCD_AUTH_ADMIN,    /* the admin token: no user */
};

/* Long-poll state of one request, kept across suspensions. */
struct syncd_longpoll {
	bool armed;      /* the handler set deadline (first pass of a wait>0 request) */
	bool expired;    /* the deadline passed or the server is stopping: answer with what there is */
	struct waiter w; /* the handler fills deadline/user/groups before returning SYNCD_SUSPEND */
};

/* What a handler sees of one request. Everything is borrowed for the duration of the call. */
struct syncd_call {
	struct syncd *sd;
	struct db_conn *db; /* a pooled connection, idle (no open transaction) on entry and on return;
	                     * NULL on a route that runs without one (metrics) */
	const char *method;
	const char *path;
	const char *params[2]; /* path parameters ({gid}, {uid}, {id}) in order, already validated */
	json_t *body;          /* the parsed JSON object, or NULL when the request had no body */
	void *conn;            /* struct MHD_Connection *, for query arguments */
	enum syncd_auth auth;
	const char *user; /* caller's user id when auth == SYNCD_AUTH_USER */
	struct syncd_longpoll *lp;
	long receipts_max_members;
};

/* A handler's answer: status, and either a JSON body (stolen) or a plain text one (freed). */
struct syncd_reply {
	unsigned status;
	json_t *json;
	char *text; /* malloc'ed, freed by the server; used when json is NULL */
	const char *content_type;
};

typedef unsigned (*syncd_handler)(struct syncd_call *call, struct syncd_reply *reply);

/* Sets reply to the SPEC 5 error object. Always returns status, for `return syncd_error(...)`. */
unsigned syncd_error(struct syncd_reply *reply, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* 400 bad_request with message msg. */
unsigned syncd_bad_request(struct syncd_reply *reply, const char *msg);

/* 503 for a failed database operation (already logged by db.c). */
unsigned syncd_db_error(struct syncd_reply *reply);

/* 503 out of memory. */
unsigned syncd_oom(struct syncd_reply *reply);

/* 204, no body. */
unsigned syncd_no_content(struct syncd_reply *reply);

/* Maps a store code (not STORE_OK) to its status, the one place that does: NOT_FOUND 404
 * not_found, NOT_MEMBER 403 forbidden, CONFLICT 409 conflict, INVALID 400 bad_request, each with
 * the message fmt; DB_ERROR and NO_MEMORY 503 unavailable with their fixed messages. */
unsigned syncd_store_error(struct syncd_reply *reply, enum store_rc rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Sets a JSON reply (stealing json; NULL means out of memory and becomes a 503). Returns status. */
unsigned syncd_reply_json(struct syncd_reply *reply, unsigned status, json_t *json);

/* A query-string argument, or NULL. */
const char *syncd_query(struct syncd_call *call, const char *name);

/* Rejects (400, false) any query argument not in allowed (NULL-terminated). */
MQS_MUST_CHECK bool syncd_query_only(struct syncd_call *call, const char *const *allowed, struct syncd_reply *reply);

/* Counts messages returned, for /metrics. */
void syncd_count_messages(struct syncd_call *call, size_t n);

/* The server's metrics, and its gauges sampled now (for GET /metrics). */
struct syncd_metrics *syncd_metrics_of(struct syncd *sd);
void syncd_gauges_sample(struct syncd *sd, struct syncd_gauges *g);

/* Starts the server described by cfg (which must outlive it). NULL with a log line on failure. */
MQS_MUST_CHECK struct syncd *syncd_start(const struct syncd_config *cfg);

/* Stops accepting, answers held long-polls, waits for in-flight requests, frees everything.
 * Accepts NULL. */
void syncd_stop(struct syncd *sd);

#endif
