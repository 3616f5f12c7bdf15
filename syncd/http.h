/* http: the libmicrohttpd server: request lifecycle, body limits, routing, JSON responses. */
#ifndef MQS_SYNCD_HTTP_H
#define MQS_SYNCD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pool.h"

#define SYNCD_BODY_MAX (1024 * 1024)

struct syncd;

/* What a handler sees of one request. */
struct syncd_call {
	struct syncd *sd;
	const char *method;
	const char *path;
	const char *body; /* NUL-terminated, may be NULL when empty */
	size_t body_len;
	void *conn; /* struct MHD_Connection *, for query arguments and headers */
};

/* A handler's answer: status, and either a JSON body (stolen) or a plain text one (copied). */
struct syncd_reply {
	unsigned status;
	json_t *json;
	char *text; /* malloc'ed, freed by the server; used when json is NULL */
	const char *content_type;
};

/* Sets reply to the SPEC 5 error object. Always returns status, for `return syncd_error(...)`. */
unsigned syncd_error(struct syncd_reply *reply, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Starts the server described by cfg. Returns NULL with a log line on failure. */
struct syncd *syncd_start(const struct syncd_config *cfg);

/* Stops accepting, waits for in-flight requests, frees everything. Accepts NULL. */
void syncd_stop(struct syncd *sd);

/* The database pool of a running server. */
struct syncd_pool *syncd_pool(struct syncd *sd);

#endif
