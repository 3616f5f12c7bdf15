/* pool: a fixed set of PostgreSQL connections shared by the HTTP worker threads. */
#ifndef MQS_SYNCD_POOL_H
#define MQS_SYNCD_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include "util.h"

struct syncd_pool;

/* Called on every new connection before it is handed out (e.g. to prepare statements); returning
 * false makes the pool close it and count the attempt as a failed connection. */
typedef bool (*syncd_pool_setup)(PGconn *conn);

/* Creates a pool of size connections to conninfo. Connections are opened lazily, so the pool can
 * be created while the database is down. setup may be NULL. Returns NULL on out of memory. Free
 * with syncd_pool_free. */
MQS_MUST_CHECK struct syncd_pool *syncd_pool_new(const char *conninfo, int size, syncd_pool_setup setup);

/* Borrows a healthy connection, waiting up to timeout_ms for one to be free. Reconnects a broken
 * connection (libpq connect_timeout applies). Returns NULL if none is free in time or the database
 * cannot be reached: the caller answers 503. Give it back with syncd_pool_put. */
MQS_MUST_CHECK PGconn *syncd_pool_get(struct syncd_pool *pool, int timeout_ms);

/* Returns a connection. broken=true (or a connection whose status is bad, or one left inside a
 * transaction) makes the pool close it and reconnect on next use. */
void syncd_pool_put(struct syncd_pool *pool, PGconn *conn, bool broken);

/* Counts for /metrics. */
void syncd_pool_stats(struct syncd_pool *pool, int *size, int *in_use);

void syncd_pool_free(struct syncd_pool *pool);

#endif
