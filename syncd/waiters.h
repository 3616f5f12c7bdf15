/* waiters: long-poll support. Held sync requests are suspended libmicrohttpd connections (no
 * thread, no database connection each); one background thread owns one libpq connection that
 * LISTENs on mqsync_msg and mqsync_state and resumes the requests a notification concerns, or
 * whose time is up. */
#ifndef MQS_SYNCD_WAITERS_H
#define MQS_SYNCD_WAITERS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ids.h"
#include "util.h"

/* What one held request waits for. Lives in the request's state; the handler fills it, the
 * registry links it while the connection is suspended. */
struct waiter {
	char user[MQS_ID_MAX + 1];    /* woken by membership changes of this user */
	char (*gids)[MQS_ID_MAX + 1]; /* woken by new messages in these groups ... */
	int64_t *seen;                /* ... past these seqs (the last_seq the handler saw) */
	size_t n, cap;
	struct timespec deadline; /* CLOCK_MONOTONIC; resumed at this time at the latest */
	/* Registry-owned while suspended. */
	struct MHD_Connection *conn;
	struct waiter *prev, *next;
};

/* Forgets the groups (keeps the allocation for reuse). */
void waiter_reset(struct waiter *w);
/* Adds a group; false on out of memory. */
MQS_MUST_CHECK bool waiter_add(struct waiter *w, const char *gid, int64_t seen);
/* Frees what the waiter owns. Accepts a zeroed waiter. */
void waiter_free(struct waiter *w);

struct waiters;

/* Starts the listener thread on its own connection to conninfo (it connects, and reconnects, by
 * itself: the database may be down). Returns NULL on out of memory or thread failure. */
MQS_MUST_CHECK struct waiters *waiters_start(const char *conninfo);

enum waiters_result {
	WAITERS_SUSPENDED, /* conn is suspended; the registry will resume it exactly once */
	WAITERS_RETRY,     /* a notification newer than what w saw already arrived: query again */
	WAITERS_STOPPING,  /* shutting down: answer now */
};

/* Must be called from the access handler of conn. Registers w and suspends conn atomically with
 * respect to notifications, so none is lost between the handler's query and the suspension. */
MQS_MUST_CHECK enum waiters_result waiters_suspend(struct waiters *ws, struct waiter *w, struct MHD_Connection *conn);

/* For /metrics. */
size_t waiters_count(struct waiters *ws);
bool waiters_connected(struct waiters *ws);

/* Stops the listener thread and resumes every held request; later waiters_suspend calls return
 * WAITERS_STOPPING. Call before MHD_stop_daemon. Idempotent. */
void waiters_stop(struct waiters *ws);

/* Frees the registry (after waiters_stop). Accepts NULL. */
void waiters_free(struct waiters *ws);

#endif
