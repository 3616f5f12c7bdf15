/* pg: what every PostgreSQL connection of mqsync shares: how it connects, and the timestamp format
 * both live delivery (plugin) and sync (mqsyncd) must render identically. */
#ifndef MQS_PG_H
#define MQS_PG_H

#include <libpq-fe.h>

/* created_at as SPEC 3.1's ts: RFC 3339 UTC with milliseconds. col is an SQL expression. */
#define MQS_SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Connects to conninfo (a connection string or URI) as application app, giving up after
 * connect_timeout seconds, with TCP keepalives and a 10 s TCP user timeout so that a silently dead
 * peer is noticed within seconds. options, if not NULL, is passed as libpq's "options" (server
 * settings such as "-c statement_timeout=30000"). Returns what PQconnectdbParams returns: the
 * caller checks PQstatus and calls PQfinish in every case. */
PGconn *mqs_pg_connect(const char *conninfo, const char *app, const char *connect_timeout, const char *options);

#endif
