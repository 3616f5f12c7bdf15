/* migrate: applies the embedded sql/NNNN_*.sql migrations in order, each once, under an advisory
 * lock (SPEC 1). */
#ifndef MQS_MIGRATE_H
#define MQS_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "util.h"

struct mqs_migration {
	int version;
	const char *name; /* file name, e.g. "0001_init.sql" */
	const char *sql;
};

/* The migrations compiled into this binary, in version order (generated from sql/ at build). */
extern const struct mqs_migration mqs_migrations[];
extern const size_t mqs_migrations_count;

/* Applies every pending migration on conn. Each runs in its own transaction together with its
 * schema_migrations row, so a failure leaves the schema at the previous version. Concurrent
 * callers serialize on an advisory lock; the second finds nothing to do.
 * Returns the number applied (>= 0), or -1 with a message in err (size errlen). */
MQS_MUST_CHECK int mqs_migrate(PGconn *conn, char *err, size_t errlen);

/* The highest applied version, 0 for an empty database, -1 on error. */
int mqs_schema_version(PGconn *conn);

#endif
