/* syncsql: the statements of one sync page, one text for mqsyncd's GET /messages/sync (syncd/db.c
 * prepares them) and the plugin's catch-up over MQTT (plugin/catchup.c), and the two steps between
 * them and common/syncpage's plan: reading the groups, building the ranges. */
#ifndef MQS_SYNCSQL_H
#define MQS_SYNCSQL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "pg.h"
#include "pgarr.h"
#include "syncpage.h"
#include "util.h"

/* MQS_SQL_MSG_COLUMNS: the message columns every message query selects (binary results: id int8,
 * group_id, seq int8, sender, ts, payload bytea, cid); ts is formatted with exactly the plugin's
 * live expression (common/pg.h), so sync and live delivery show the same string.
 * MQS_SQL_SYNC_GROUPS: $1 user, $2 group or NULL -> group_id, joined_seq, delivered_seq, last_seq
 * (text), in C collation order of the ids (syncpage_plan's order).
 * MQS_SQL_SYNC_MESSAGES: $1 gids[], $2 exclusive lower seqs[], $3 inclusive upper seqs[] -> the
 * messages, by group (C collation) then seq. */
#define MQS_SQL_MSG_COLUMNS "m.id, m.group_id, m.seq, m.sender, " MQS_SQL_TS("m.created_at") ", m.payload, m.cid"
#define MQS_SQL_SYNC_GROUPS                                                                                            \
	"SELECT m.group_id, m.joined_seq, m.delivered_seq, g.last_seq "                                                \
	"FROM memberships m JOIN groups g ON g.id = m.group_id "                                                       \
	"WHERE m.user_id = $1 AND ($2::text IS NULL OR m.group_id = $2) "                                              \
	"ORDER BY m.group_id COLLATE \"C\""
#define MQS_SQL_SYNC_MESSAGES                                                                                          \
	"SELECT " MQS_SQL_MSG_COLUMNS " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(gid, lo, hi) "        \
	"JOIN messages m ON m.group_id = r.gid AND m.seq > r.lo AND m.seq <= r.hi "                                    \
	"ORDER BY m.group_id COLLATE \"C\", m.seq"

/* The rows of a MQS_SQL_SYNC_GROUPS result (text format) as groups for syncpage_plan: a malloc'ed
 * array of PQntuples(res) entries in *n (caller frees; one spare entry, so never a zero-size
 * allocation), or NULL on out of memory. */
MQS_MUST_CHECK struct syncpage_group *syncpage_groups_read(const PGresult *res, size_t *n);

/* The parameters of MQS_SQL_SYNC_MESSAGES for the planned page: gids, exclusive lower and inclusive
 * upper seqs of every group with something to fetch, as array literals in ids/los/his (common/pgarr;
 * each starts empty, the caller frees them with mqs_pgarr_free). False on out of memory. */
MQS_MUST_CHECK bool syncpage_ranges(const struct syncpage_group *g, size_t n, struct mqs_pgarr *ids,
                                    struct mqs_pgarr *los, struct mqs_pgarr *his);

#endif
