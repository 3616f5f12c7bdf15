/* pg: what every PostgreSQL connection of mqsync shares: how it connects, and the timestamp format
 * both live delivery (plugin) and sync (mqsyncd) must render identically. */
#include "pg.h"

#include <stdlib.h>

PGconn *mqs_pg_connect(const char *conninfo, const char *app, const char *connect_timeout, const char *options)
{
	const char *keys[] = {"dbname",
	                      "connect_timeout",
	                      "application_name",
	                      "keepalives",
	                      "keepalives_idle",
	                      "keepalives_interval",
	                      "keepalives_count",
	                      "tcp_user_timeout",
	                      options ? "options" : NULL,
	                      NULL};
	const char *vals[] = {conninfo, connect_timeout, app, "1", "5", "2", "3", "10000", options, NULL};
	return PQconnectdbParams(keys, vals, 1);
}

int64_t mqs_pg_int(const PGresult *res, int row, int col)
{
	if(PQgetisnull(res, row, col)) return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}
