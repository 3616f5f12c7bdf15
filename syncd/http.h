/* http: the libmicrohttpd server: request lifecycle, body limits, routing, authentication,
 * long-poll suspension and JSON responses. Handlers live in messages.c, groups.c and users.c. */
#ifndef MQS_SYNCD_HTTP_H
#define MQS_SYNCD_HTTP_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "ids.h"
#include "pool.h"
#include "waiters.h"

#define SYNCD_BODY_MAX (1024 * 1024)

/* A handler returns this instead of a status to hold the request (see struct syncd_longpoll). */
#define SYNCD_SUSPEND 0u

struct syncd;

enum syncd_auth {
	SYNCD_AUTH_NONE,  /* public route */
	SYNCD_AUTH_USER,  /* a user's token: call->user is set */
	SYNCD_AUTH_ADMIN, /* the admin token: no user */
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
	PGconn *db; /* a pooled connection, idle (no open transaction) on entry and on return */
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

/* Sets a JSON reply (stealing json; NULL means out of memory and becomes a 503). Returns status. */
unsigned syncd_reply_json(struct syncd_reply *reply, unsigned status, json_t *json);

/* A query-string argument, or NULL. */
const char *syncd_query(struct syncd_call *call, const char *name);

/* Rejects (400, false) any query argument not in allowed (NULL-terminated). */
bool syncd_query_only(struct syncd_call *call, const char *const *allowed, struct syncd_reply *reply);

/* Counts messages returned, for /metrics. */
void syncd_count_messages(struct syncd_call *call, size_t n);

/* Starts the server described by cfg (which must outlive it). NULL with a log line on failure. */
struct syncd *syncd_start(const struct syncd_config *cfg);

/* Stops accepting, answers held long-polls, waits for in-flight requests, frees everything.
 * Accepts NULL. */
void syncd_stop(struct syncd *sd);

#endif
