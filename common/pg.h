/* pg: what every PostgreSQL connection of mqsync shares: how it connects, and the timestamp format
 * both live delivery (plugin) and sync (mqsyncd) must render identically. */
#ifndef MQS_PG_H
#define MQS_PG_H

#include <libpq-fe.h>
#include <stdint.h>

/* created_at as SPEC 3.1's ts: RFC 3339 UTC with milliseconds. col is an SQL expression. */
#define MQS_SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The online rule (SPEC, docs/schema.md): a presence row counts while its last_seen is younger than
 * this; brokers refresh it every 30 s for their connected users, so a dead broker stops counting
 * within this window. The one place the 90 seconds are written. */
#define MQS_ONLINE_WINDOW_S 90
#define MQS_PG_XSTR_(x)     #x
#define MQS_PG_XSTR(x)      MQS_PG_XSTR_(x)
/* The online test on the SQL expression last_seen_col, parenthesized. */
#define MQS_SQL_ONLINE(last_seen_col)                                                                                  \
	"(" last_seen_col " > now() - interval '" MQS_PG_XSTR(MQS_ONLINE_WINDOW_S) " seconds')"

/* Connects to conninfo (a connection string or URI) as application app, giving up after
 * connect_timeout seconds, with TCP keepalives and a 10 s TCP user timeout so that a silently dead
 * peer is noticed within seconds. options, if not NULL, is passed as libpq's "options" (server
 * settings such as "-c statement_timeout=30000"). Returns what PQconnectdbParams returns: the
 * caller checks PQstatus and calls PQfinish in every case. */
PGconn *mqs_pg_connect(const char *conninfo, const char *app, const char *connect_timeout, const char *options);

/* The integer in a text-format result column (int2/int4/int8, as PostgreSQL prints them); 0 for NULL. */
int64_t mqs_pg_int(const PGresult *res, int row, int col);

#endif
