/* messages: sync (with long-poll), ack, read markers, per-message status and group history. */
#include "messages.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "groups.h"
#include "input.h"
#include "jsonw.h"
#include "log.h"
#include "synctoken.h"

#define SYNC_LIMIT_DEFAULT 100
#define SYNC_LIMIT_MAX     1000
#define SYNC_WAIT_MAX      60
#define ACK_MAX_ENTRIES    10000

/* Writes the SPEC 5.1 message object of one row of a DB_MSG_COLUMNS query (binary results). */
static void msg_write(struct jsonw *w, const PGresult *res, int row)
{
	const char *p = PQgetvalue(res, row, 5);
	size_t len = (size_t)PQgetlength(res, row, 5);
	bool utf8 = jsonw_utf8_valid(p, len);

	jsonw_lit(w, "{\"id\":");
	jsonw_int(w, db_bin_int8(res, row, 0));
	jsonw_lit(w, ",\"group\":");
	jsonw_str(w, PQgetvalue(res, row, 1), (size_t)PQgetlength(res, row, 1));
	jsonw_lit(w, ",\"seq\":");
	jsonw_int(w, db_bin_int8(res, row, 2));
	jsonw_lit(w, ",\"sender\":");
	jsonw_str(w, PQgetvalue(res, row, 3), (size_t)PQgetlength(res, row, 3));
	jsonw_lit(w, ",\"ts\":");
	jsonw_str(w, PQgetvalue(res, row, 4), (size_t)PQgetlength(res, row, 4));
	jsonw_lit(w, ",\"payload\":");
	if(utf8)
		jsonw_str(w, p, len);
	else
		jsonw_base64(w, (const unsigned char *)p, len);
	jsonw_lit(w, utf8 ? ",\"encoding\":\"utf8\"" : ",\"encoding\":\"base64\"");
	if(!PQgetisnull(res, row, 6)) {
		jsonw_lit(w, ",\"cid\":");
		jsonw_str(w, PQgetvalue(res, row, 6), (size_t)PQgetlength(res, row, 6));
	}
	jsonw_lit(w, "}");
}

/* Writes every row of a DB_MSG_COLUMNS result, comma-separated. */
static void msgs_write(struct jsonw *w, const PGresult *res)
{
	for(int i = 0; i < PQntuples(res); i++) {
		if(i) jsonw_lit(w, ",");
		msg_write(w, res, i);
	}
}

/* Hands a finished JSON text to the reply (200), or answers 503 when it ran out of memory. */
static unsigned reply_jsonw(struct syncd_reply *reply, struct jsonw *w)
{
	if(w->oom) {
		jsonw_free(w);
		return syncd_error(reply, 503, "unavailable", "out of memory");
	}
	reply->status = 200;
	reply->text = w->s;
	reply->content_type = "application/json";
	w->s = NULL;
	return 200;
}

static json_t *cursor_json(const char *gid, int64_t delivered, int64_t read)
{
	return json_pack("{s:s,s:I,s:I}", "group", gid, "delivered_seq", (json_int_t)delivered, "read_seq",
	                 (json_int_t)read);
}

/* ---- sync ------------------------------------------------------------------------------------ */

/* One of the caller's groups as sync sees it. */
struct sync_group {
	const char *gid; /* points into the memberships result */
	int64_t joined, last;
	int64_t pos;  /* the device's position: everything <= pos has been seen */
	int64_t upto; /* this page returns pos+1 .. upto */
};

static const char *const sync_args[] = {"limit", "after", "wait", "group", NULL};

unsigned messages_sync(struct syncd_call *call, struct syncd_reply *reply)
{
	int64_t limit = SYNC_LIMIT_DEFAULT, wait = 0;
	const char *group = syncd_query(call, "group");
	const char *after = syncd_query(call, "after");
	const char *v;
	struct synctoken_entry *tok = NULL;
	size_t ntok = 0;
	struct sync_group *gs = NULL;
	PGresult *res = NULL, *msgs = NULL;
	struct db_buf ids = {0}, los = {0}, his = {0};
	struct synctoken_entry *next = NULL;
	char *next_s = NULL;
	struct jsonw w = {0};
	unsigned rc;

	if(!syncd_query_only(call, sync_args, reply)) return 400;
	v = syncd_query(call, "limit");
	if(v != NULL && !input_int(v, 1, SYNC_LIMIT_MAX, &limit))
		return syncd_bad_request(reply, "limit: expected an integer from 1 to 1000");
	v = syncd_query(call, "wait");
	if(v != NULL && !input_int(v, 0, SYNC_WAIT_MAX, &wait))
		return syncd_bad_request(reply, "wait: expected an integer from 0 to 60 (seconds)");
	if(group != NULL && !mqs_id_valid(group))
		return syncd_bad_request(reply, "group: must match [A-Za-z0-9_-]{1,64}");
	if(after != NULL && !synctoken_decode(after, &tok, &ntok))
		return syncd_bad_request(reply, "after: not a token returned as 'next' by this server");
	if(wait > 0 && !call->lp->armed) {
		clock_gettime(CLOCK_MONOTONIC, &call->lp->w.deadline);
		call->lp->w.deadline.tv_sec += wait;
		call->lp->armed = true;
	}

	const char *p1[2] = {call->user, group};
	res = db_exec_stmt(call->db, DB_STMT_SYNC_GROUPS, 2, p1, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
		goto done;
	}
	int ng = PQntuples(res);
	if(group != NULL && ng == 0) {
		struct group_access ga;
		rc = groups_access(call->db, group, call->user, &ga, reply);
		if(rc == 0) rc = syncd_error(reply, 403, "forbidden", "not a member of group '%s'", group);
		goto done;
	}
	gs = calloc((size_t)ng + 1, sizeof(*gs));
	if(gs == NULL) {
		rc = syncd_error(reply, 503, "unavailable", "out of memory");
		goto done;
	}
	int64_t remaining = limit;
	bool has_more = false;
	int nranges = 0;
	for(int i = 0; i < ng; i++) {
		struct sync_group *g = &gs[i];
		g->gid = PQgetvalue(res, i, 0);
		g->joined = db_int(res, i, 1);
		g->last = db_int(res, i, 3);
		if(after != NULL) {
			g->pos = g->joined;
			synctoken_find(tok, ntok, synctoken_key(g->gid), &g->pos);
		} else {
			g->pos = db_int(res, i, 2);
		}
		if(g->pos < g->joined) g->pos = g->joined;
		if(g->pos > g->last) g->pos = g->last;
		g->upto = g->pos;
		if(g->pos < g->last) {
			if(remaining == 0) {
				has_more = true;
				continue;
			}
			int64_t take = g->last - g->pos < remaining ? g->last - g->pos : remaining;
			g->upto = g->pos + take;
			remaining -= take;
			if(g->upto < g->last) has_more = true;
			char n1[21], n2[21];
			db_buf_add(&ids, nranges ? "," : "{");
			db_buf_add_id(&ids, g->gid);
			db_buf_add(&los, nranges ? "," : "{");
			db_buf_add(&los, db_i64(n1, g->pos));
			db_buf_add(&his, nranges ? "," : "{");
			db_buf_add(&his, db_i64(n2, g->upto));
			nranges++;
		}
	}
	if(nranges == 0 && wait > 0 && !call->lp->expired) {
		/* Nothing pending: hold the request until a message arrives in one of these groups. */
		struct waiter *wt = &call->lp->w;
		waiter_reset(wt);
		snprintf(wt->user, sizeof(wt->user), "%s", call->user);
		for(int i = 0; i < ng; i++) {
			if(!waiter_add(wt, gs[i].gid, gs[i].last)) {
				rc = syncd_error(reply, 503, "unavailable", "out of memory");
				goto done;
			}
		}
		rc = SYNCD_SUSPEND;
		goto done;
	}
	jsonw_lit(&w, "{\"messages\":[");
	if(nranges > 0) {
		db_buf_add(&ids, "}");
		db_buf_add(&los, "}");
		db_buf_add(&his, "}");
		if(ids.oom || los.oom || his.oom) {
			rc = syncd_error(reply, 503, "unavailable", "out of memory");
			goto done;
		}
		const char *p2[3] = {ids.s, los.s, his.s};
		msgs = db_exec_stmt(call->db, DB_STMT_SYNC_MESSAGES, 3, p2, true);
		if(!db_ok(msgs)) {
			rc = syncd_db_error(reply);
			goto done;
		}
		msgs_write(&w, msgs);
		syncd_count_messages(call, (size_t)PQntuples(msgs));
		/* Positions move to what was actually returned (committed seqs are a gapless prefix, so
		 * this is upto unless a group was deleted meanwhile). */
		int gi = 0;
		for(int r = 0; r < PQntuples(msgs); r++) {
			const char *gid = PQgetvalue(msgs, r, 1);
			while(gi < ng && strcmp(gs[gi].gid, gid) != 0) gi++;
			if(gi == ng) break; /* cannot happen: both are in C collation order */
			gs[gi].pos = db_bin_int8(msgs, r, 2);
		}
	}
	/* The next token: every group whose position is past its join point. */
	next = calloc((size_t)ng + 1, sizeof(*next));
	if(next == NULL) {
		rc = syncd_error(reply, 503, "unavailable", "out of memory");
		goto done;
	}
	size_t nn = 0;
	for(int i = 0; i < ng; i++) {
		if(gs[i].pos > gs[i].joined) next[nn++] = (struct synctoken_entry){synctoken_key(gs[i].gid), gs[i].pos};
	}
	/* A group left out (no progress) reads its join point from the token, unless its key collides
	 * with one that is in: then it must be in too, so the merged entry holds the lower position
	 * (a collision may re-deliver, never skip). */
	synctoken_normalize(next, &nn);
	size_t with_progress = nn;
	for(int i = 0; i < ng; i++) {
		int64_t ignored;
		uint32_t k = synctoken_key(gs[i].gid);
		if(gs[i].pos <= gs[i].joined && synctoken_find(next, with_progress, k, &ignored)) {
			next[nn++] = (struct synctoken_entry){k, gs[i].pos};
		}
	}
	synctoken_normalize(next, &nn);
	next_s = synctoken_encode(next, nn);
	if(next_s == NULL) {
		rc = syncd_error(reply, 503, "unavailable", "out of memory");
		goto done;
	}
	jsonw_lit(&w, has_more ? "],\"has_more\":true,\"next\":" : "],\"has_more\":false,\"next\":");
	jsonw_str(&w, next_s, strlen(next_s));
	jsonw_lit(&w, "}");
	rc = reply_jsonw(reply, &w);
done:
	jsonw_free(&w);
	free(next_s);
	free(next);
	db_buf_free(&ids);
	db_buf_free(&los);
	db_buf_free(&his);
	PQclear(msgs);
	free(gs);
	PQclear(res); /* after gs: gs[].gid points into res */
	free(tok);
	return rc;
}

/* ---- ack --------------------------------------------------------------------------------------- */

static const char *const ack_keys[] = {"acks", "ids", NULL};
static const char *const ack_entry_keys[] = {"group", "seq", NULL};

/* Moves the caller's delivered cursors forward to the (group, seq) pairs in gids/seqs (array
 * literals), after checking membership and bounds. Sets the reply. */
static unsigned ack_apply(struct syncd_call *call, struct syncd_reply *reply, const char *gids, const char *seqs,
                          bool by_id)
{
	const char *p[3] = {call->user, gids, seqs};
	unsigned rc;
	PGresult *res = db_exec(call->db,
	                        "SELECT r.g, max(r.s), g.last_seq, (ms.user_id IS NOT NULL) "
	                        "FROM unnest($2::text[], $3::bigint[]) AS r(g, s) "
	                        "LEFT JOIN groups g ON g.id = r.g "
	                        "LEFT JOIN memberships ms ON ms.group_id = r.g AND ms.user_id = $1 "
	                        "GROUP BY r.g, g.last_seq, ms.user_id ORDER BY r.g COLLATE \"C\"",
	                        3, p, false);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	for(int i = 0; i < PQntuples(res); i++) {
		const char *g = PQgetvalue(res, i, 0);
		if(!db_bool(res, i, 3)) {
			/* By id, the caller may not know the group: do not name it. */
			if(by_id)
				rc = syncd_error(reply, 403, "forbidden", "ids: not a member of a message's group");
			else
				rc = syncd_error(reply, 403, "forbidden", "not a member of group '%s'", g);
			PQclear(res);
			return rc;
		}
		if(db_int(res, i, 1) > db_int(res, i, 2)) {
			rc = syncd_error(reply, 400, "bad_request",
			                 "seq %" PRId64 " is beyond the last seq (%" PRId64 ") of group '%s'",
			                 db_int(res, i, 1), db_int(res, i, 2), g);
			PQclear(res);
			return rc;
		}
	}
	PQclear(res);
	/* One statement: all cursors move or none. */
	res = db_exec(call->db,
	              "WITH r AS (SELECT g, max(s) AS s FROM unnest($2::text[], $3::bigint[]) AS t(g, s) GROUP BY g), "
	              "u AS (UPDATE memberships ms SET delivered_seq = greatest(ms.delivered_seq, r.s) FROM r "
	              "WHERE ms.group_id = r.g AND ms.user_id = $1 "
	              "RETURNING ms.group_id, ms.delivered_seq, ms.read_seq) "
	              "SELECT group_id, delivered_seq, read_seq FROM u ORDER BY group_id COLLATE \"C\"",
	              3, p, false);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	json_t *cursors = json_array();
	for(int i = 0; cursors && i < PQntuples(res); i++) {
		json_array_append_new(cursors,
		                      cursor_json(PQgetvalue(res, i, 0), db_int(res, i, 1), db_int(res, i, 2)));
	}
	PQclear(res);
	return syncd_reply_json(reply, 200, cursors ? json_pack("{s:o}", "cursors", cursors) : NULL);
}

unsigned messages_ack(struct syncd_call *call, struct syncd_reply *reply)
{
	char err[256];
	json_t *acks = json_object_get(call->body, "acks");
	json_t *idsv = json_object_get(call->body, "ids");
	struct db_buf gids = {0}, seqs = {0}, idl = {0};
	unsigned rc;
	PGresult *res = NULL;

	if(!input_only_keys(call->body, ack_keys, err, sizeof(err))) return syncd_bad_request(reply, err);
	if((acks == NULL) == (idsv == NULL)) return syncd_bad_request(reply, "give exactly one of 'acks' or 'ids'");
	json_t *arr = acks ? acks : idsv;
	const char *name = acks ? "acks" : "ids";
	if(!json_is_array(arr)) return syncd_error(reply, 400, "bad_request", "%s: expected an array", name);
	if(json_array_size(arr) > ACK_MAX_ENTRIES)
		return syncd_error(reply, 400, "bad_request", "%s: at most %d entries", name, ACK_MAX_ENTRIES);
	if(json_array_size(arr) == 0) return syncd_reply_json(reply, 200, json_pack("{s:[]}", "cursors"));

	db_buf_add(&gids, "{");
	db_buf_add(&seqs, "{");
	db_buf_add(&idl, "{");
	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char fname[64], num[21];
		if(acks) {
			const char *g;
			int64_t s;
			snprintf(fname, sizeof(fname), "acks[%zu]", i);
			if(!json_is_object(e)) {
				rc = syncd_error(reply, 400, "bad_request", "%s: expected an object", fname);
				goto done;
			}
			if(!input_only_keys(e, ack_entry_keys, err, sizeof(err))) {
				rc = syncd_error(reply, 400, "bad_request", "%s: %s", fname, err);
				goto done;
			}
			snprintf(fname, sizeof(fname), "acks[%zu].group", i);
			if(!input_field_id(e, "group", fname, true, &g, NULL, err, sizeof(err))) {
				rc = syncd_bad_request(reply, err);
				goto done;
			}
			snprintf(fname, sizeof(fname), "acks[%zu].seq", i);
			if(!input_field_int(e, "seq", fname, 0, INT64_MAX, true, &s, NULL, err, sizeof(err))) {
				rc = syncd_bad_request(reply, err);
				goto done;
			}
			db_buf_add(&gids, i ? "," : "");
			db_buf_add_id(&gids, g);
			db_buf_add(&seqs, i ? "," : "");
			db_buf_add(&seqs, db_i64(num, s));
		} else {
			int64_t id;
			snprintf(fname, sizeof(fname), "ids[%zu]", i);
			if(!input_value_int(e, fname, 1, INT64_MAX, &id, err, sizeof(err))) {
				rc = syncd_bad_request(reply, err);
				goto done;
			}
			db_buf_add(&idl, i ? "," : "");
			db_buf_add(&idl, db_i64(num, id));
		}
	}
	if(idsv) {
		/* Resolve ids to (group, seq); every id must exist. */
		db_buf_add(&idl, "}");
		if(idl.oom) {
			rc = syncd_error(reply, 503, "unavailable", "out of memory");
			goto done;
		}
		const char *p[1] = {idl.s};
		res = db_exec(call->db,
		              "SELECT r.id, m.group_id, m.seq FROM unnest($1::bigint[]) AS r(id) "
		              "LEFT JOIN messages m ON m.id = r.id",
		              1, p, false);
		if(!db_ok(res)) {
			rc = syncd_db_error(reply);
			goto done;
		}
		for(int r = 0; r < PQntuples(res); r++) {
			if(PQgetisnull(res, r, 1)) {
				rc = syncd_error(reply, 404, "not_found", "ids: no message %s", PQgetvalue(res, r, 0));
				goto done;
			}
			db_buf_add(&gids, r ? "," : "");
			db_buf_add_id(&gids, PQgetvalue(res, r, 1));
			db_buf_add(&seqs, r ? "," : "");
			db_buf_add(&seqs, PQgetvalue(res, r, 2));
		}
	}
	db_buf_add(&gids, "}");
	db_buf_add(&seqs, "}");
	if(gids.oom || seqs.oom) {
		rc = syncd_error(reply, 503, "unavailable", "out of memory");
		goto done;
	}
	rc = ack_apply(call, reply, gids.s, seqs.s, !acks);
done:
	PQclear(res);
	db_buf_free(&gids);
	db_buf_free(&seqs);
	db_buf_free(&idl);
	return rc;
}

/* ---- read marker ------------------------------------------------------------------------------- */

static const char *const read_keys[] = {"seq", "last_message_id", NULL};

unsigned messages_read(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0];
	char err[256], num[21];
	int64_t seq = 0, id = 0;
	bool has_seq, has_id;
	struct group_access ga;
	unsigned rc;

	if(!input_only_keys(call->body, read_keys, err, sizeof(err)) ||
	   !input_field_int(call->body, "seq", "seq", 0, INT64_MAX, false, &seq, &has_seq, err, sizeof(err)) ||
	   !input_field_int(call->body, "last_message_id", "last_message_id", 1, INT64_MAX, false, &id, &has_id, err,
	                    sizeof(err)))
		return syncd_bad_request(reply, err);
	if(has_seq == has_id) return syncd_bad_request(reply, "give exactly one of 'seq' or 'last_message_id'");
	rc = groups_access(call->db, gid, call->user, &ga, reply);
	if(rc) return rc;
	if(!ga.member) return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	if(has_id) {
		const char *p[2] = {db_i64(num, id), gid};
		PGresult *res =
		        db_exec(call->db, "SELECT seq FROM messages WHERE id = $1 AND group_id = $2", 2, p, false);
		if(!db_ok(res)) {
			PQclear(res);
			return syncd_db_error(reply);
		}
		bool found = PQntuples(res) == 1;
		if(found) seq = db_int(res, 0, 0);
		PQclear(res);
		if(!found)
			return syncd_error(reply, 400, "bad_request",
			                   "last_message_id: no message %" PRId64 " in group '%s'", id, gid);
	} else if(seq > ga.last_seq) {
		return syncd_error(reply, 400, "bad_request",
		                   "seq: %" PRId64 " is beyond the group's last seq %" PRId64, seq, ga.last_seq);
	}
	const char *p[3] = {gid, call->user, db_i64(num, seq)};
	PGresult *res = db_exec(call->db,
	                        "UPDATE memberships SET read_seq = greatest(read_seq, $3::bigint), "
	                        "delivered_seq = greatest(delivered_seq, $3::bigint) "
	                        "WHERE group_id = $1 AND user_id = $2 RETURNING delivered_seq, read_seq",
	                        3, p, false);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	if(PQntuples(res) != 1) {
		PQclear(res);
		return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	}
	rc = syncd_reply_json(reply, 200, cursor_json(gid, db_int(res, 0, 0), db_int(res, 0, 1)));
	PQclear(res);
	return rc;
}

/* ---- status ------------------------------------------------------------------------------------ */

unsigned messages_status(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *p1[2] = {call->params[0], call->user};
	PGresult *res = NULL, *rec = NULL;
	json_t *out = NULL;
	unsigned rc;

	res = db_exec(call->db,
	              "SELECT m.group_id, m.seq, m.sender, "
	              "(SELECT count(*) FROM memberships x WHERE x.group_id = m.group_id), "
	              "EXISTS (SELECT 1 FROM memberships x WHERE x.group_id = m.group_id AND x.user_id = $2) "
	              "FROM messages m WHERE m.id = $1",
	              2, p1, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
		goto done;
	}
	if(PQntuples(res) != 1) {
		rc = syncd_error(reply, 404, "not_found", "no message %s", call->params[0]);
		goto done;
	}
	const char *gid = PQgetvalue(res, 0, 0);
	const char *seq = PQgetvalue(res, 0, 1);
	const char *sender = PQgetvalue(res, 0, 2);
	if(!db_bool(res, 0, 4)) {
		rc = syncd_error(reply, 403, "forbidden", "not a member of the message's group");
		goto done;
	}
	bool list = db_int(res, 0, 3) <= call->receipts_max_members;
	const char *p2[3] = {gid, seq, sender};
	/* Recipients: members at the time it was sent (joined before it), except the sender. */
	if(list) {
		rec = db_exec(call->db,
		              "SELECT ms.user_id, ms.delivered_seq >= $2::bigint, ms.read_seq >= $2::bigint, "
		              "EXISTS (SELECT 1 FROM presence p WHERE p.user_id = ms.user_id AND p.connections > 0 "
		              "AND p.last_seen > now() - interval '90 seconds') "
		              "FROM memberships ms WHERE ms.group_id = $1 AND ms.user_id <> $3 AND ms.joined_seq < "
		              "$2::bigint "
		              "ORDER BY ms.user_id COLLATE \"C\"",
		              3, p2, false);
	} else {
		rec = db_exec(call->db,
		              "SELECT count(*) FILTER (WHERE delivered_seq < $2::bigint), "
		              "count(*) FILTER (WHERE delivered_seq >= $2::bigint AND read_seq < $2::bigint), "
		              "count(*) FILTER (WHERE read_seq >= $2::bigint) "
		              "FROM memberships WHERE group_id = $1 AND user_id <> $3 AND joined_seq < $2::bigint",
		              3, p2, false);
	}
	if(!db_ok(rec)) {
		rc = syncd_db_error(reply);
		goto done;
	}
	int64_t pending = 0, delivered = 0, read = 0;
	json_t *recipients = NULL;
	if(list) {
		recipients = json_array();
		for(int i = 0; recipients && i < PQntuples(rec); i++) {
			json_t *r;
			if(db_bool(rec, i, 2)) {
				read++;
				r = json_pack("{s:s,s:s}", "user", PQgetvalue(rec, i, 0), "status", "read");
			} else if(db_bool(rec, i, 1)) {
				delivered++;
				r = json_pack("{s:s,s:s}", "user", PQgetvalue(rec, i, 0), "status", "delivered");
			} else {
				pending++;
				r = json_pack("{s:s,s:s,s:b}", "user", PQgetvalue(rec, i, 0), "status", "pending",
				              "online", db_bool(rec, i, 3));
			}
			json_array_append_new(recipients, r);
		}
	} else {
		pending = db_int(rec, 0, 0);
		delivered = db_int(rec, 0, 1);
		read = db_int(rec, 0, 2);
	}
	out = json_pack("{s:I,s:s,s:I,s:s,s:{s:I,s:I,s:I}}", "id", (json_int_t)strtoll(call->params[0], NULL, 10),
	                "group", gid, "seq", (json_int_t)strtoll(seq, NULL, 10), "sender", sender, "counts", "pending",
	                (json_int_t)pending, "delivered", (json_int_t)delivered, "read", (json_int_t)read);
	if(out != NULL && recipients != NULL) {
		json_object_set_new(out, "recipients", recipients);
		recipients = NULL;
	}
	json_decref(recipients);
	if(list && out != NULL && json_object_get(out, "recipients") == NULL) {
		json_decref(out);
		out = NULL;
	}
	rc = syncd_reply_json(reply, 200, out);
	out = NULL;
done:
	json_decref(out);
	PQclear(rec);
	PQclear(res);
	return rc;
}

/* ---- history ----------------------------------------------------------------------------------- */

static const char *const history_args[] = {"before", "after", "limit", NULL};

unsigned messages_history(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0];
	int64_t before = INT64_MAX, after = 0, limit = SYNC_LIMIT_DEFAULT;
	const char *vb = syncd_query(call, "before");
	const char *va = syncd_query(call, "after");
	const char *vl = syncd_query(call, "limit");
	struct group_access ga;
	char nb[21], na[21], nl[21];
	unsigned rc;

	if(!syncd_query_only(call, history_args, reply)) return 400;
	if(vb != NULL && !input_int(vb, 1, INT64_MAX, &before))
		return syncd_bad_request(reply, "before: expected a positive integer (a seq)");
	if(va != NULL && !input_int(va, 0, INT64_MAX, &after))
		return syncd_bad_request(reply, "after: expected a non-negative integer (a seq)");
	if(vl != NULL && !input_int(vl, 1, SYNC_LIMIT_MAX, &limit))
		return syncd_bad_request(reply, "limit: expected an integer from 1 to 1000");
	rc = groups_access(call->db, gid, call->user, &ga, reply);
	if(rc) return rc;
	if(!ga.member) return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	if(after < ga.joined_seq) after = ga.joined_seq;
	const char *p[4] = {gid, db_i64(na, after), db_i64(nb, before), db_i64(nl, limit)};
	/* Oldest first when paging forward (after given), newest first otherwise. */
	PGresult *res =
	        db_exec(call->db,
	                va != NULL ? "SELECT " DB_MSG_COLUMNS " FROM messages m WHERE m.group_id = $1 "
	                             "AND m.seq > $2::bigint AND m.seq < $3::bigint ORDER BY m.seq LIMIT $4"
	                           : "SELECT " DB_MSG_COLUMNS " FROM messages m WHERE m.group_id = $1 "
	                             "AND m.seq > $2::bigint AND m.seq < $3::bigint ORDER BY m.seq DESC LIMIT $4",
	                4, p, true);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	struct jsonw w = {0};
	jsonw_lit(&w, "{\"messages\":[");
	msgs_write(&w, res);
	jsonw_lit(&w, "]}");
	syncd_count_messages(call, (size_t)PQntuples(res));
	PQclear(res);
	return reply_jsonw(reply, &w);
}
