/* syncpage: one page of sync, for mqsyncd's GET /messages/sync and the plugin's catch-up over MQTT
 * alike: the statements, their parameters and rows, and the pure page logic — which messages one
 * page fetches, given a device's token and the user's memberships, and the `next` token after it.
 * No I/O (the callers run the statements), no HTTP. */
#ifndef MQS_SYNCPAGE_H
#define MQS_SYNCPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "pg.h"
#include "pgarr.h"
#include "synctoken.h"
#include "util.h"

/* The sync statements, one text for mqsyncd's GET /messages/sync (syncd/db.c prepares them) and the
 * plugin's catch-up over MQTT (plugin/catchup.c), so both read the same page.
 * MQS_SQL_MSG_COLUMNS: the message columns every message query selects (binary results: id int8,
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

#define SYNCPAGE_LIMIT_DEFAULT 100     /* messages per page without `limit` (SPEC 5.2) */
#define SYNCPAGE_LIMIT_MAX     1000    /* at most */
#define SYNCPAGE_MAX_BYTES     1048576 /* a page ends early once it holds this many payload bytes */

/* One of the user's groups as a sync page sees it. */
struct syncpage_group {
	char gid[MQS_ID_MAX + 1];
	int64_t joined;    /* joined_seq: messages up to it are not the member's */
	int64_t delivered; /* delivered_seq: where a sync without a token starts */
	int64_t last;      /* the group's last_seq */
	/* Set by syncpage_plan: */
	int64_t pos;  /* the device's position: everything <= pos has been seen */
	int64_t upto; /* this page fetches pos+1 .. upto; nothing when upto == pos */
};

/* Plans one page of at most limit (>= 1) messages over g[0..n), taken in order (the store returns
 * groups in C collation order of their ids). With has_token, a group's position is its entry in
 * tok/ntok (a decoded `after` token) or its join point when the token has none; without, it is
 * delivered_seq. Positions are clamped to [joined, last]. Token entries for groups not in g (groups
 * the user left) are ignored. Returns how many groups have something to fetch (upto > pos), and
 * sets *has_more when some group has messages beyond this page. */
size_t syncpage_plan(struct syncpage_group *g, size_t n, bool has_token, const struct synctoken_entry *tok, size_t ntok,
                     int64_t limit, bool *has_more);

/* The rows of a MQS_SQL_SYNC_GROUPS result (text format) as groups for syncpage_plan: a malloc'ed
 * array of PQntuples(res) entries in *n (caller frees; one spare entry, so never a zero-size
 * allocation), or NULL on out of memory. */
MQS_MUST_CHECK struct syncpage_group *syncpage_groups_read(const PGresult *res, size_t *n);

/* The parameters of MQS_SQL_SYNC_MESSAGES for the planned page: gids, exclusive lower and inclusive
 * upper seqs of every group with something to fetch, as array literals in ids/los/his (common/pgarr;
 * each starts empty, the caller frees them with mqs_pgarr_free). False on out of memory. */
MQS_MUST_CHECK bool syncpage_ranges(const struct syncpage_group *g, size_t n, struct mqs_pgarr *ids,
                                    struct mqs_pgarr *los, struct mqs_pgarr *his);

/* Records a fetched message (gid, seq), in fetch order (gids ascending in C collation, seqs
 * ascending): that group's position moves to seq. *cursor starts at 0 and carries the walk between
 * calls. Returns false for a gid not (or no longer) ahead in g: the rest is then ignored. */
bool syncpage_returned(struct syncpage_group *g, size_t n, size_t *cursor, const char *gid, size_t gid_len,
                       int64_t seq);

/* The `next` token after the page: an entry for every group whose position is past its join point;
 * a group without progress whose key collides with one that has an entry shares it (the lower
 * position wins: a collision may re-deliver, never skip). Returns a malloc'ed string (caller
 * frees), or NULL on out of memory. */
MQS_MUST_CHECK char *syncpage_next_token(const struct syncpage_group *g, size_t n);

#endif
