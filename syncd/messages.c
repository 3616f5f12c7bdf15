/* messages: sync (with long-poll), ack, read markers, per-message status and group history:
 * parse, call store_messages (and common/syncpage for sync's page), render, answer. */
#include "messages.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "input.h"
#include "util.h"
#include "jsonw.h"
#include "msgjson.h"
#include "store_groups.h"
#include "store_messages.h"
#include "syncpage.h"
#include "synctoken.h"

#define SYNC_WAIT_MAX   60
#define ACK_MAX_ENTRIES 10000

/* Writes every fetched message, comma-separated. */
static void msgs_write(struct jsonw *w, const struct store_msgs *msgs)
{
	for(size_t i = 0; i < store_msgs_count(msgs); i++) {
		struct mqs_msg_view m;
		store_msgs_get(msgs, i, &m);
		if(i) jsonw_lit(w, ",");
		mqs_msgjson_write(w, &m);
	}
}

/* Hands a finished JSON text to the reply (200), or answers 503 when it ran out of memory. */
static unsigned reply_jsonw(struct syncd_reply *reply, struct jsonw *w)
{
	if(w->oom) {
		jsonw_free(w);
		return syncd_oom(reply);
	}
	reply->status = 200;
	reply->text = w->s;
	reply->content_type = "application/json";
	w->s = NULL;
	return 200;
}

/* The caller must be a member of gid: 0 with *ga filled, or the error status (404, 403, 503). */
static unsigned need_member(struct syncd_call *call, const char *gid, struct store_access *ga,
                            struct syncd_reply *reply)
{
	enum store_rc rc = store_group_access(call->db, gid, call->user, ga);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no group '%s'", gid);
	if(!ga->member) return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	return 0;
}

/* ---- sync ------------------------------------------------------------------------------------ */

/* A parsed GET /messages/sync. */
struct sync_req {
	int64_t limit, wait;
	const char *group; /* or NULL */
	bool has_token;
	struct synctoken_entry *tok; /* the decoded `after` (malloc'ed; may be NULL when ntok is 0) */
	size_t ntok;
};

static const char *const sync_args[] = {"limit", "after", "wait", "group", NULL};

/* Parses the query into q (free q->tok). Returns 0 or the 400 set in reply. */
static unsigned sync_parse(struct syncd_call *call, struct sync_req *q, struct syncd_reply *reply)
{
	const char *after = syncd_query(call, "after");
	const char *v;

	q->limit = SYNCPAGE_LIMIT_DEFAULT;
	q->wait = 0;
	q->group = syncd_query(call, "group");
	if(!syncd_query_only(call, sync_args, reply)) return 400;
	v = syncd_query(call, "limit");
	if(v != NULL && !mqs_parse_int(v, 1, SYNCPAGE_LIMIT_MAX, &q->limit))
		return syncd_bad_request(reply, "limit: expected an integer from 1 to 1000");
	v = syncd_query(call, "wait");
	if(v != NULL && !mqs_parse_int(v, 0, SYNC_WAIT_MAX, &q->wait))
		return syncd_bad_request(reply, "wait: expected an integer from 0 to 60 (seconds)");
	if(q->group != NULL && !mqs_id_valid(q->group))
		return syncd_bad_request(reply, "group: must match [A-Za-z0-9_-]{1,64}");
	q->has_token = after != NULL;
	if(after != NULL && !synctoken_decode(after, &q->tok, &q->ntok))
		return syncd_bad_request(reply, "after: not a token returned as 'next' by this server");
	return 0;
}

/* Nothing pending: holds the request until a message arrives in one of gs (SYNCD_SUSPEND), or 503. */
static unsigned sync_hold(struct syncd_call *call, const struct syncpage_group *gs, size_t ng,
                          struct syncd_reply *reply)
{
	struct waiter *wt = &call->lp->w;

	waiter_reset(wt);
	snprintf(wt->user, sizeof(wt->user), "%s", call->user);
	for(size_t i = 0; i < ng; i++) {
		if(!waiter_add(wt, gs[i].gid, gs[i].last)) return syncd_oom(reply);
	}
	return SYNCD_SUSPEND;
}

/* Renders the page: msgs (NULL when nothing was fetched), has_more and the next token after it
 * (positions in gs moved to what was actually returned). */
static unsigned sync_render(struct syncd_call *call, struct syncpage_group *gs, size_t ng,
                            const struct store_msgs *msgs, bool has_more, struct syncd_reply *reply)
{
	struct jsonw w = {0};
	size_t cursor = 0;

	jsonw_lit(&w, "{\"messages\":[");
	if(msgs != NULL) {
		msgs_write(&w, msgs);
		syncd_count_messages(call, store_msgs_count(msgs));
		/* Committed seqs are a gapless prefix, so a group's position becomes its upto unless the
		 * group was deleted meanwhile. */
		for(size_t i = 0; i < store_msgs_count(msgs); i++) {
			struct mqs_msg_view m;
			store_msgs_get(msgs, i, &m);
			if(!syncpage_returned(gs, ng, &cursor, m.group, m.group_len, m.seq)) break;
		}
	}
	char *next = syncpage_next_token(gs, ng);
	if(next == NULL) {
		jsonw_free(&w);
		return syncd_oom(reply);
	}
	jsonw_lit(&w, has_more ? "],\"has_more\":true,\"next\":" : "],\"has_more\":false,\"next\":");
	jsonw_str(&w, next, strlen(next));
	jsonw_lit(&w, "}");
	free(next);
	return reply_jsonw(reply, &w);
}

unsigned messages_sync(struct syncd_call *call, struct syncd_reply *reply)
{
	struct sync_req q = {0};
	struct syncpage_group *gs = NULL;
	struct store_msgs *msgs = NULL;
	size_t ng = 0;
	struct store_access ga;
	bool has_more;
	unsigned status = sync_parse(call, &q, reply);

	if(status) goto done;
	if(q.wait > 0 && !call->lp->armed) {
		clock_gettime(CLOCK_MONOTONIC, &call->lp->w.deadline);
		call->lp->w.deadline.tv_sec += q.wait;
		call->lp->armed = true;
	}
	enum store_rc rc = store_sync_groups(call->db, call->user, q.group, &gs, &ng);
	if(rc != STORE_OK) {
		status = syncd_store_error(reply, rc, "sync");
	} else if(q.group != NULL && ng == 0) {
		status = need_member(call, q.group, &ga, reply);
		if(status == 0) status = syncd_error(reply, 403, "forbidden", "not a member of group '%s'", q.group);
	} else if(syncpage_plan(gs, ng, q.has_token, q.tok, q.ntok, q.limit, &has_more) == 0) {
		if(q.wait > 0 && !call->lp->expired)
			status = sync_hold(call, gs, ng, reply);
		else
			status = sync_render(call, gs, ng, NULL, has_more, reply);
	} else if((rc = store_sync_fetch(call->db, gs, ng, &msgs)) != STORE_OK) {
		status = syncd_store_error(reply, rc, "sync");
	} else {
		status = sync_render(call, gs, ng, msgs, has_more, reply);
	}
done:
	store_msgs_free(msgs);
	free(gs);
	free(q.tok);
	return status;
}

/* ---- ack --------------------------------------------------------------------------------------- */

static const char *const ack_keys[] = {"acks", "ids", NULL};
static const char *const ack_entry_keys[] = {"group", "seq", NULL};

/* Reads acks[i] into *out. Returns 0 or the 400 set in reply. */
static unsigned parse_ack(json_t *e, size_t i, struct store_ack *out, struct syncd_reply *reply)
{
	char err[256], fname[64];
	const char *g;

	snprintf(fname, sizeof(fname), "acks[%zu]", i);
	if(!json_is_object(e)) return syncd_error(reply, 400, "bad_request", "%s: expected an object", fname);
	if(!input_only_keys(e, ack_entry_keys, err, sizeof(err)))
		return syncd_error(reply, 400, "bad_request", "%s: %s", fname, err);
	snprintf(fname, sizeof(fname), "acks[%zu].group", i);
	if(!input_field_id(e, "group", fname, true, &g, NULL, err, sizeof(err))) return syncd_bad_request(reply, err);
	snprintf(fname, sizeof(fname), "acks[%zu].seq", i);
	if(!input_field_int(e, "seq", fname, 0, INT64_MAX, true, &out->seq, NULL, err, sizeof(err)))
		return syncd_bad_request(reply, err);
	snprintf(out->group, sizeof(out->group), "%s", g);
	return 0;
}

/* Reads the n entries of arr (acks objects, or message ids resolved through the store) into acks.
 * Returns 0 or the error status. */
static unsigned parse_acks(struct syncd_call *call, json_t *arr, bool by_id, struct store_ack *acks, size_t n,
                           struct syncd_reply *reply)
{
	char err[256];
	int64_t *ids = by_id ? calloc(n, sizeof(*ids)) : NULL, missing = 0;
	unsigned status = by_id && ids == NULL ? syncd_oom(reply) : 0;

	for(size_t i = 0; status == 0 && i < n; i++) {
		json_t *e = json_array_get(arr, i);
		char fname[64];
		snprintf(fname, sizeof(fname), "ids[%zu]", i);
		if(!by_id)
			status = parse_ack(e, i, &acks[i], reply);
		else if(!input_value_int(e, fname, 1, INT64_MAX, &ids[i], err, sizeof(err)))
			status = syncd_bad_request(reply, err);
	}
	if(status == 0 && by_id) {
		/* Resolve ids to (group, seq); every id must exist. */
		enum store_rc rc = store_ack_resolve(call->db, ids, n, acks, &missing);
		if(rc != STORE_OK) status = syncd_store_error(reply, rc, "ids: no message %" PRId64, missing);
	}
	free(ids);
	return status;
}

unsigned messages_ack(struct syncd_call *call, struct syncd_reply *reply)
{
	char err[256];
	json_t *acksv = json_object_get(call->body, "acks");
	json_t *idsv = json_object_get(call->body, "ids");
	struct store_ack_refusal why;
	json_t *cursors;

	if(!input_only_keys(call->body, ack_keys, err, sizeof(err))) return syncd_bad_request(reply, err);
	if((acksv == NULL) == (idsv == NULL)) return syncd_bad_request(reply, "give exactly one of 'acks' or 'ids'");
	json_t *arr = acksv ? acksv : idsv;
	const char *name = acksv ? "acks" : "ids";
	if(!json_is_array(arr)) return syncd_error(reply, 400, "bad_request", "%s: expected an array", name);
	if(json_array_size(arr) > ACK_MAX_ENTRIES)
		return syncd_error(reply, 400, "bad_request", "%s: at most %d entries", name, ACK_MAX_ENTRIES);
	size_t n = json_array_size(arr);
	if(n == 0) return syncd_reply_json(reply, 200, json_pack("{s:[]}", "cursors"));
	struct store_ack *acks = calloc(n, sizeof(*acks));
	if(acks == NULL) return syncd_oom(reply);
	unsigned status = parse_acks(call, arr, idsv != NULL, acks, n, reply);
	if(status == 0) {
		enum store_rc rc = store_ack_apply(call->db, call->user, acks, n, &why, &cursors);
		if(rc == STORE_OK)
			status = syncd_reply_json(reply, 200, json_pack("{s:o}", "cursors", cursors));
		else if(rc == STORE_NOT_MEMBER && idsv != NULL) /* by id, the caller may not know the group */
			status = syncd_error(reply, 403, "forbidden", "ids: not a member of a message's group");
		else if(rc == STORE_NOT_MEMBER)
			status = syncd_error(reply, 403, "forbidden", "not a member of group '%s'", why.group);
		else
			status = syncd_store_error(reply, rc,
			                           "seq %" PRId64 " is beyond the last seq (%" PRId64 ") of group '%s'",
			                           why.seq, why.last_seq, why.group);
	}
	free(acks);
	return status;
}

/* ---- read marker ------------------------------------------------------------------------------- */

static const char *const read_keys[] = {"seq", "last_message_id", NULL};

unsigned messages_read(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0];
	char err[256];
	int64_t seq = 0, id = 0;
	bool has_seq, has_id;
	struct store_access ga;
	json_t *cursor;

	if(!input_only_keys(call->body, read_keys, err, sizeof(err)) ||
	   !input_field_int(call->body, "seq", "seq", 0, INT64_MAX, false, &seq, &has_seq, err, sizeof(err)) ||
	   !input_field_int(call->body, "last_message_id", "last_message_id", 1, INT64_MAX, false, &id, &has_id, err,
	                    sizeof(err)))
		return syncd_bad_request(reply, err);
	if(has_seq == has_id) return syncd_bad_request(reply, "give exactly one of 'seq' or 'last_message_id'");
	unsigned status = need_member(call, gid, &ga, reply);
	if(status) return status;
	if(has_id) {
		enum store_rc rc = store_message_seq(call->db, id, gid, &seq);
		if(rc == STORE_NOT_FOUND)
			return syncd_error(reply, 400, "bad_request",
			                   "last_message_id: no message %" PRId64 " in group '%s'", id, gid);
		if(rc != STORE_OK) return syncd_store_error(reply, rc, "read");
	} else if(seq > ga.last_seq) {
		return syncd_error(reply, 400, "bad_request",
		                   "seq: %" PRId64 " is beyond the group's last seq %" PRId64, seq, ga.last_seq);
	}
	enum store_rc rc = store_read_mark(call->db, gid, call->user, seq, &cursor);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "not a member of group '%s'", gid);
	return syncd_reply_json(reply, 200, cursor);
}

/* ---- status ------------------------------------------------------------------------------------ */

unsigned messages_status(struct syncd_call *call, struct syncd_reply *reply)
{
	int64_t id;
	json_t *out;

	if(!mqs_parse_int(call->params[0], 1, INT64_MAX, &id))
		return syncd_bad_request(reply, "id: expected a positive integer");
	enum store_rc rc = store_message_status(call->db, id, call->user, call->receipts_max_members, &out);
	if(rc == STORE_NOT_MEMBER) return syncd_error(reply, 403, "forbidden", "not a member of the message's group");
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no message %s", call->params[0]);
	return syncd_reply_json(reply, 200, out);
}

/* ---- history ----------------------------------------------------------------------------------- */

static const char *const history_args[] = {"before", "after", "limit", NULL};

unsigned messages_history(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0];
	int64_t before = INT64_MAX, after = 0, limit = SYNCPAGE_LIMIT_DEFAULT;
	const char *vb = syncd_query(call, "before");
	const char *va = syncd_query(call, "after");
	const char *vl = syncd_query(call, "limit");
	struct store_access ga;
	struct store_msgs *msgs;

	if(!syncd_query_only(call, history_args, reply)) return 400;
	if(vb != NULL && !mqs_parse_int(vb, 1, INT64_MAX, &before))
		return syncd_bad_request(reply, "before: expected a positive integer (a seq)");
	if(va != NULL && !mqs_parse_int(va, 0, INT64_MAX, &after))
		return syncd_bad_request(reply, "after: expected a non-negative integer (a seq)");
	if(vl != NULL && !mqs_parse_int(vl, 1, SYNCPAGE_LIMIT_MAX, &limit))
		return syncd_bad_request(reply, "limit: expected an integer from 1 to 1000");
	unsigned status = need_member(call, gid, &ga, reply);
	if(status) return status;
	if(after < ga.joined_seq) after = ga.joined_seq;
	/* Oldest first when paging forward (after given), newest first otherwise. */
	enum store_rc rc = store_history(call->db, gid, after, before, limit, va != NULL, &msgs);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "history");
	struct jsonw w = {0};
	jsonw_lit(&w, "{\"messages\":[");
	msgs_write(&w, msgs);
	jsonw_lit(&w, "]}");
	syncd_count_messages(call, store_msgs_count(msgs));
	store_msgs_free(msgs);
	return reply_jsonw(reply, &w);
}
