/* store_messages: the messages and cursor statements (see store_messages.h). */
#include "store_messages.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store_msgs {
	PGresult *res; /* a DB_MSG_COLUMNS result in binary format */
};

size_t store_msgs_count(const struct store_msgs *m)
{
	return (size_t)PQntuples(m->res);
}

void store_msgs_get(const struct store_msgs *m, size_t i, struct mqs_msg_view *out)
{
	const PGresult *res = m->res;
	int row = (int)i;

	out->id = db_bin_int8(res, row, 0);
	out->group = PQgetvalue(res, row, 1);
	out->group_len = (size_t)PQgetlength(res, row, 1);
	out->seq = db_bin_int8(res, row, 2);
	out->sender = PQgetvalue(res, row, 3);
	out->sender_len = (size_t)PQgetlength(res, row, 3);
	out->ts = PQgetvalue(res, row, 4);
	out->ts_len = (size_t)PQgetlength(res, row, 4);
	out->payload = PQgetvalue(res, row, 5);
	out->payload_len = (size_t)PQgetlength(res, row, 5);
	out->cid = PQgetisnull(res, row, 6) ? NULL : PQgetvalue(res, row, 6);
	out->cid_len = out->cid ? (size_t)PQgetlength(res, row, 6) : 0;
}

void store_msgs_free(struct store_msgs *m)
{
	if(m == NULL) return;
	PQclear(m->res);
	free(m);
}

/* Wraps a message query's result into *out (taking res in every case). */
static enum store_rc msgs_of(PGresult *res, struct store_msgs **out)
{
	*out = NULL;
	if(!db_ok(res)) {
		PQclear(res);
		return STORE_DB_ERROR;
	}
	*out = malloc(sizeof(**out));
	if(*out == NULL) {
		PQclear(res);
		return STORE_NO_MEMORY;
	}
	(*out)->res = res;
	return STORE_OK;
}

/* A cursor object {group, delivered_seq, read_seq}, or NULL on out of memory. */
static json_t *cursor_json(const char *gid, int64_t delivered, int64_t read)
{
	return json_pack("{s:s,s:I,s:I}", "group", gid, "delivered_seq", (json_int_t)delivered, "read_seq",
	                 (json_int_t)read);
}

/* ---- sync ------------------------------------------------------------------------------------ */

enum store_rc store_sync_groups(struct db_conn *db, const char *user, const char *group, struct syncpage_group **out,
                                size_t *n)
{
	const char *p[2] = {user, group};
	PGresult *res = db_exec_stmt(db, DB_STMT_SYNC_GROUPS, 2, p, false);

	*out = NULL;
	*n = 0;
	if(!db_ok(res)) {
		PQclear(res);
		return STORE_DB_ERROR;
	}
	*out = syncpage_groups_read(res, n);
	PQclear(res);
	return *out != NULL ? STORE_OK : STORE_NO_MEMORY;
}

enum store_rc store_sync_fetch(struct db_conn *db, const struct syncpage_group *g, size_t n, struct store_msgs **out)
{
	struct mqs_pgarr ids = {0}, los = {0}, his = {0};
	enum store_rc rc = STORE_NO_MEMORY;

	*out = NULL;
	if(syncpage_ranges(g, n, &ids, &los, &his)) {
		const char *p[3] = {mqs_pgarr_text(&ids), mqs_pgarr_text(&los), mqs_pgarr_text(&his)};
		rc = msgs_of(db_exec_stmt(db, DB_STMT_SYNC_MESSAGES, 3, p, true), out);
	}
	mqs_pgarr_free(&ids);
	mqs_pgarr_free(&los);
	mqs_pgarr_free(&his);
	return rc;
}

enum store_rc store_history(struct db_conn *db, const char *gid, int64_t after, int64_t before, int64_t limit,
                            bool forward, struct store_msgs **out)
{
	char na[21], nb[21], nl[21];
	const char *p[4] = {gid, db_i64(na, after), db_i64(nb, before), db_i64(nl, limit)};

	return msgs_of(db_exec(db,
	                       forward ? "SELECT " DB_MSG_COLUMNS " FROM messages m WHERE m.group_id = $1 "
	                                 "AND m.seq > $2::bigint AND m.seq < $3::bigint ORDER BY m.seq LIMIT $4"
	                               : "SELECT " DB_MSG_COLUMNS " FROM messages m WHERE m.group_id = $1 "
	                                 "AND m.seq > $2::bigint AND m.seq < $3::bigint ORDER BY m.seq DESC LIMIT $4",
	                       4, p, true),
	               out);
}

/* ---- ack --------------------------------------------------------------------------------------- */

enum store_rc store_ack_resolve(struct db_conn *db, const int64_t *ids, size_t n, struct store_ack *out,
                                int64_t *missing)
{
	struct mqs_pgarr idl = {0};
	enum store_rc rc = STORE_NO_MEMORY;

	for(size_t i = 0; i < n; i++) mqs_pgarr_add_int(&idl, ids[i]);
	const char *p[1] = {mqs_pgarr_text(&idl)};
	if(p[0] == NULL) goto done;
	PGresult *res = db_exec(db,
	                        "SELECT r.id, m.group_id, m.seq FROM unnest($1::bigint[]) AS r(id) "
	                        "LEFT JOIN messages m ON m.id = r.id",
	                        1, p, false);
	rc = db_ok(res) ? STORE_OK : STORE_DB_ERROR;
	for(int r = 0; rc == STORE_OK && r < PQntuples(res) && (size_t)r < n; r++) {
		if(PQgetisnull(res, r, 1)) {
			*missing = mqs_pg_int(res, r, 0);
			rc = STORE_NOT_FOUND;
			break;
		}
		snprintf(out[r].group, sizeof(out[r].group), "%s", PQgetvalue(res, r, 1));
		out[r].seq = mqs_pg_int(res, r, 2);
	}
	PQclear(res);
done:
	mqs_pgarr_free(&idl);
	return rc;
}

/* Checks membership and bounds of the acks (literals gids/seqs) for store_ack_apply. */
static enum store_rc ack_check(struct db_conn *db, const char *const p[3], struct store_ack_refusal *why)
{
	PGresult *res = db_exec(db,
	                        "SELECT r.g, max(r.s), g.last_seq, (ms.user_id IS NOT NULL) "
	                        "FROM unnest($2::text[], $3::bigint[]) AS r(g, s) "
	                        "LEFT JOIN groups g ON g.id = r.g "
	                        "LEFT JOIN memberships ms ON ms.group_id = r.g AND ms.user_id = $1 "
	                        "GROUP BY r.g, g.last_seq, ms.user_id ORDER BY r.g COLLATE \"C\"",
	                        3, p, false);
	enum store_rc rc = db_ok(res) ? STORE_OK : STORE_DB_ERROR;

	for(int i = 0; rc == STORE_OK && i < PQntuples(res); i++) {
		if(!db_bool(res, i, 3))
			rc = STORE_NOT_MEMBER;
		else if(mqs_pg_int(res, i, 1) > mqs_pg_int(res, i, 2))
			rc = STORE_INVALID;
		else
			continue;
		snprintf(why->group, sizeof(why->group), "%s", PQgetvalue(res, i, 0));
		why->seq = mqs_pg_int(res, i, 1);
		why->last_seq = mqs_pg_int(res, i, 2);
	}
	PQclear(res);
	return rc;
}

enum store_rc store_ack_apply(struct db_conn *db, const char *user, const struct store_ack *acks, size_t n,
                              struct store_ack_refusal *why, json_t **cursors)
{
	struct mqs_pgarr gids = {0}, seqs = {0};
	enum store_rc rc = STORE_NO_MEMORY;
	PGresult *res = NULL;

	*cursors = NULL;
	for(size_t i = 0; i < n; i++) {
		mqs_pgarr_add_str(&gids, acks[i].group, strlen(acks[i].group));
		mqs_pgarr_add_int(&seqs, acks[i].seq);
	}
	const char *p[3] = {user, mqs_pgarr_text(&gids), mqs_pgarr_text(&seqs)};
	if(p[1] == NULL || p[2] == NULL) goto done;
	rc = ack_check(db, p, why);
	if(rc != STORE_OK) goto done;
	/* One statement: all cursors move or none. */
	res = db_exec(db,
	              "WITH r AS (SELECT g, max(s) AS s FROM unnest($2::text[], $3::bigint[]) AS t(g, s) GROUP BY g), "
	              "u AS (UPDATE memberships ms SET delivered_seq = greatest(ms.delivered_seq, r.s) FROM r "
	              "WHERE ms.group_id = r.g AND ms.user_id = $1 "
	              "RETURNING ms.group_id, ms.delivered_seq, ms.read_seq) "
	              "SELECT group_id, delivered_seq, read_seq FROM u ORDER BY group_id COLLATE \"C\"",
	              3, p, false);
	if(!db_ok(res)) {
		rc = STORE_DB_ERROR;
		goto done;
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++)
		store_append(&arr, cursor_json(PQgetvalue(res, i, 0), mqs_pg_int(res, i, 1), mqs_pg_int(res, i, 2)));
	*cursors = arr;
	rc = arr ? STORE_OK : STORE_NO_MEMORY;
done:
	PQclear(res);
	mqs_pgarr_free(&gids);
	mqs_pgarr_free(&seqs);
	return rc;
}

/* ---- read marker ------------------------------------------------------------------------------- */

enum store_rc store_message_seq(struct db_conn *db, int64_t id, const char *gid, int64_t *seq)
{
	char num[21];
	const char *p[2] = {db_i64(num, id), gid};
	PGresult *res = db_exec(db, "SELECT seq FROM messages WHERE id = $1 AND group_id = $2", 2, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	if(db_ok(res)) {
		rc = PQntuples(res) == 1 ? STORE_OK : STORE_NOT_FOUND;
		if(rc == STORE_OK) *seq = mqs_pg_int(res, 0, 0);
	}
	PQclear(res);
	return rc;
}

enum store_rc store_read_mark(struct db_conn *db, const char *gid, const char *user, int64_t seq, json_t **cursor)
{
	char num[21];
	const char *p[3] = {gid, user, db_i64(num, seq)};
	PGresult *res = db_exec(db,
	                        "UPDATE memberships SET read_seq = greatest(read_seq, $3::bigint), "
	                        "delivered_seq = greatest(delivered_seq, $3::bigint) "
	                        "WHERE group_id = $1 AND user_id = $2 RETURNING delivered_seq, read_seq",
	                        3, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	*cursor = NULL;
	if(db_ok(res) && PQntuples(res) != 1) {
		rc = STORE_NOT_MEMBER;
	} else if(db_ok(res)) {
		*cursor = cursor_json(gid, mqs_pg_int(res, 0, 0), mqs_pg_int(res, 0, 1));
		rc = *cursor ? STORE_OK : STORE_NO_MEMORY;
	}
	PQclear(res);
	return rc;
}

/* ---- status ------------------------------------------------------------------------------------ */

/* The recipients of a message (gid, seq, sender) listed (SPEC 5.3 recipients), counting into c[3]
 * (pending, delivered, read). Returns the array, or NULL (db failure: *rc set; or out of memory). */
static json_t *status_list(struct db_conn *db, const char *const p[3], int64_t c[3], enum store_rc *rc)
{
	/* Recipients: members at the time it was sent (joined before it), except the sender. */
	PGresult *res = db_exec(
	        db,
	        "SELECT ms.user_id, ms.delivered_seq >= $2::bigint, ms.read_seq >= $2::bigint, " STORE_SQL_ONLINE(
	                "ms.user_id") " "
	                              "FROM memberships ms WHERE ms.group_id = $1 AND "
	                              "ms.user_id <> $3 AND ms.joined_seq < "
	                              "$2::bigint ORDER BY ms.user_id COLLATE \"C\"",
	        3, p, false);
	json_t *arr = NULL;

	*rc = db_ok(res) ? STORE_OK : STORE_DB_ERROR;
	if(*rc == STORE_OK) arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) {
		const char *u = PQgetvalue(res, i, 0);
		json_t *r;
		if(db_bool(res, i, 2)) {
			c[2]++;
			r = json_pack("{s:s,s:s}", "user", u, "status", "read");
		} else if(db_bool(res, i, 1)) {
			c[1]++;
			r = json_pack("{s:s,s:s}", "user", u, "status", "delivered");
		} else {
			c[0]++;
			r = json_pack("{s:s,s:s,s:b}", "user", u, "status", "pending", "online", db_bool(res, i, 3));
		}
		store_append(&arr, r);
	}
	PQclear(res);
	return arr;
}

/* The counts only (groups over max_members), into c[3]. */
static enum store_rc status_counts(struct db_conn *db, const char *const p[3], int64_t c[3])
{
	PGresult *res = db_exec(db,
	                        "SELECT count(*) FILTER (WHERE delivered_seq < $2::bigint), "
	                        "count(*) FILTER (WHERE delivered_seq >= $2::bigint AND read_seq < $2::bigint), "
	                        "count(*) FILTER (WHERE read_seq >= $2::bigint) "
	                        "FROM memberships WHERE group_id = $1 AND user_id <> $3 AND joined_seq < $2::bigint",
	                        3, p, false);
	enum store_rc rc = db_ok(res) ? STORE_OK : STORE_DB_ERROR;

	for(int i = 0; rc == STORE_OK && i < 3; i++) c[i] = mqs_pg_int(res, 0, i);
	PQclear(res);
	return rc;
}

enum store_rc store_message_status(struct db_conn *db, int64_t id, const char *user, long max_members, json_t **out)
{
	char num[21];
	const char *p1[2] = {db_i64(num, id), user};
	PGresult *res = db_exec(db,
	                        "SELECT m.group_id, m.seq, m.sender, "
	                        "(SELECT count(*) FROM memberships x WHERE x.group_id = m.group_id), "
	                        "EXISTS (SELECT 1 FROM memberships x WHERE x.group_id = m.group_id AND x.user_id = $2) "
	                        "FROM messages m WHERE m.id = $1",
	                        2, p1, false);
	json_t *recipients = NULL;
	int64_t c[3] = {0, 0, 0};
	enum store_rc rc;

	*out = NULL;
	if(!db_ok(res))
		rc = STORE_DB_ERROR;
	else if(PQntuples(res) != 1)
		rc = STORE_NOT_FOUND;
	else if(!db_bool(res, 0, 4))
		rc = STORE_NOT_MEMBER;
	else
		rc = STORE_OK;
	if(rc != STORE_OK) goto done;
	const char *gid = PQgetvalue(res, 0, 0), *seq = PQgetvalue(res, 0, 1), *sender = PQgetvalue(res, 0, 2);
	const char *p2[3] = {gid, seq, sender};
	bool list = mqs_pg_int(res, 0, 3) <= max_members;
	if(list) {
		recipients = status_list(db, p2, c, &rc);
		if(rc == STORE_OK && recipients == NULL) rc = STORE_NO_MEMORY;
	} else {
		rc = status_counts(db, p2, c);
	}
	if(rc != STORE_OK) goto done;
	*out = json_pack("{s:I,s:s,s:I,s:s,s:{s:I,s:I,s:I}}", "id", (json_int_t)id, "group", gid, "seq",
	                 (json_int_t)mqs_pg_int(res, 0, 1), "sender", sender, "counts", "pending", (json_int_t)c[0],
	                 "delivered", (json_int_t)c[1], "read", (json_int_t)c[2]);
	if(*out != NULL && recipients != NULL) {
		/* json_object_set_new takes recipients, also when it fails. */
		if(json_object_set_new(*out, "recipients", recipients) != 0) {
			json_decref(*out);
			*out = NULL;
		}
		recipients = NULL;
	}
	rc = *out ? STORE_OK : STORE_NO_MEMORY;
done:
	json_decref(recipients);
	PQclear(res);
	return rc;
}
