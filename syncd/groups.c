/* groups: groups, members and presence endpoints, and the shared membership check. */
#include "groups.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "input.h"
#include "log.h"
#include "pg.h"

#define GROUP_NAME_MAX 256
#define GROUP_INIT_MAX 10000 /* members in one POST /groups */
#define PRESENCE_MAX   1000  /* users in one GET /presence */
#define ONLINE_SQL(uid)                                                                                                \
	"EXISTS (SELECT 1 FROM presence p WHERE p.user_id = " uid " AND p.connections > 0 "                            \
	"AND p.last_seen > now() - interval '90 seconds')"

unsigned groups_access(PGconn *db, const char *gid, const char *user, struct group_access *out,
                       struct syncd_reply *reply)
{
	const char *p[2] = {gid, user};
	PGresult *res = db_exec(db,
	                        "SELECT g.last_seq, ms.role, ms.joined_seq, ms.delivered_seq, ms.read_seq "
	                        "FROM groups g LEFT JOIN memberships ms ON ms.group_id = g.id AND ms.user_id = $2 "
	                        "WHERE g.id = $1",
	                        2, p, false);
	unsigned rc = 0;

	memset(out, 0, sizeof(*out));
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
	} else if(PQntuples(res) != 1) {
		rc = syncd_error(reply, 404, "not_found", "no group '%s'", gid);
	} else {
		out->last_seq = db_int(res, 0, 0);
		out->member = !PQgetisnull(res, 0, 1);
		out->admin = out->member && !strcmp(PQgetvalue(res, 0, 1), "admin");
		out->joined_seq = db_int(res, 0, 2);
		out->delivered_seq = db_int(res, 0, 3);
		out->read_seq = db_int(res, 0, 4);
	}
	PQclear(res);
	return rc;
}

/* The group object of gid (new reference), or NULL when gone / on failure. */
static json_t *group_object(PGconn *db, const char *gid)
{
	const char *p[1] = {gid};
	PGresult *res =
	        db_exec(db,
	                "SELECT g.id, g.name, g.created_by, " MQS_SQL_TS(
	                        "g.created_at") ", g.last_seq, "
	                                        "(SELECT count(*) FROM memberships ms WHERE ms.group_id = g.id) "
	                                        "FROM groups g WHERE g.id = $1",
	                1, p, false);
	json_t *o = NULL;

	if(db_ok(res) && PQntuples(res) == 1) {
		o = json_pack("{s:s,s:s,s:o,s:s,s:I,s:I}", "id", PQgetvalue(res, 0, 0), "name", PQgetvalue(res, 0, 1),
		              "created_by", PQgetisnull(res, 0, 2) ? json_null() : json_string(PQgetvalue(res, 0, 2)),
		              "created_at", PQgetvalue(res, 0, 3), "last_seq", (json_int_t)db_int(res, 0, 4),
		              "member_count", (json_int_t)db_int(res, 0, 5));
	}
	PQclear(res);
	return o;
}

/* A new random group id: 16 base64url characters (96 bits). */
static bool new_group_id(char out[17])
{
	unsigned char raw[12];
	unsigned char b64[17];

	if(RAND_bytes(raw, sizeof(raw)) != 1) return false;
	EVP_EncodeBlock(b64, raw, sizeof(raw));
	for(int i = 0; i < 16; i++) out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
	out[16] = '\0';
	return true;
}

static const char *const create_keys[] = {"id", "name", "members", NULL};

unsigned groups_create(struct syncd_call *call, struct syncd_reply *reply)
{
	char err[256], genid[17];
	const char *gid = NULL, *name = "";
	bool has_id;
	json_t *members = json_object_get(call->body, "members");
	struct db_buf list = {0};
	PGresult *res = NULL;
	bool in_tx = false;
	unsigned rc;

	if(!input_only_keys(call->body, create_keys, err, sizeof(err)) ||
	   !input_field_id(call->body, "id", "id", false, &gid, &has_id, err, sizeof(err)) ||
	   !input_field_string(call->body, "name", "name", GROUP_NAME_MAX, false, &name, NULL, err, sizeof(err)))
		return syncd_bad_request(reply, err);
	if(json_is_null(members)) members = NULL;
	if(members != NULL && !json_is_array(members)) return syncd_bad_request(reply, "members: expected an array");
	if(json_array_size(members) > GROUP_INIT_MAX)
		return syncd_error(reply, 400, "bad_request", "members: at most %d entries", GROUP_INIT_MAX);
	db_buf_add(&list, "{");
	size_t i;
	json_t *m;
	json_array_foreach(members, i, m)
	{
		char fname[32];
		const char *uid;
		snprintf(fname, sizeof(fname), "members[%zu]", i);
		if(!input_value_id(m, fname, &uid, err, sizeof(err))) {
			rc = syncd_bad_request(reply, err);
			goto done;
		}
		db_buf_add(&list, i ? "," : "");
		db_buf_add_id(&list, uid);
	}
	db_buf_add(&list, "}");
	if(list.oom) {
		rc = syncd_error(reply, 503, "unavailable", "out of memory");
		goto done;
	}
	if(!has_id) {
		if(!new_group_id(genid)) {
			rc = syncd_error(reply, 503, "unavailable", "random source failed");
			goto done;
		}
		gid = genid;
	}
	const char *pm[1] = {list.s};
	res = db_exec(call->db,
	              "SELECT r.u FROM unnest($1::text[]) AS r(u) LEFT JOIN users u ON u.id = r.u "
	              "WHERE u.id IS NULL LIMIT 1",
	              1, pm, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
		goto done;
	}
	if(PQntuples(res) > 0) {
		rc = syncd_error(reply, 400, "bad_request", "members: no user '%s'", PQgetvalue(res, 0, 0));
		goto done;
	}
	PQclear(res);
	res = NULL;
	if(!db_cmd(call->db, "BEGIN")) {
		rc = syncd_db_error(reply);
		goto done;
	}
	in_tx = true;
	const char *pg[3] = {gid, name, call->user};
	res = db_exec(call->db,
	              "INSERT INTO groups (id, name, created_by) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING "
	              "RETURNING id",
	              3, pg, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
		goto done;
	}
	if(PQntuples(res) != 1) {
		rc = syncd_error(reply, 409, "conflict", "group '%s' already exists", gid);
		goto done;
	}
	PQclear(res);
	/* The creator is its admin; the others are members from seq 0 on. */
	const char *pi[3] = {gid, call->user, list.s};
	res = db_exec(call->db,
	              "INSERT INTO memberships (group_id, user_id, role) "
	              "SELECT $1, u, CASE WHEN u = $2::text THEN 'admin' ELSE 'member' END "
	              "FROM (SELECT unnest($3::text[]) UNION SELECT $2::text WHERE $2::text IS NOT NULL) AS r(u)",
	              3, pi, false);
	if(!db_ok(res)) {
		/* A member deleted meanwhile (23503) is the caller's problem; anything else ours. */
		if(!strcmp(db_sqlstate(res), "23503"))
			rc = syncd_bad_request(reply, "members: a listed user no longer exists");
		else
			rc = syncd_db_error(reply);
		goto done;
	}
	if(!db_cmd(call->db, "COMMIT")) {
		in_tx = false;
		rc = syncd_db_error(reply);
		goto done;
	}
	in_tx = false;
	rc = syncd_reply_json(reply, 201, group_object(call->db, gid));
done:
	PQclear(res);
	if(in_tx) db_cmd(call->db, "ROLLBACK");
	db_buf_free(&list);
	return rc;
}

unsigned groups_list(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *p[1] = {call->user};
	PGresult *res = db_exec(call->db,
	                        "SELECT g.id, g.name, m.role, g.last_seq, m.delivered_seq, m.read_seq "
	                        "FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1 "
	                        "ORDER BY g.id COLLATE \"C\"",
	                        1, p, false);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) {
		int64_t last = db_int(res, i, 3), read = db_int(res, i, 5);
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "id", PQgetvalue(res, i, 0),
		                                     "name", PQgetvalue(res, i, 1), "role", PQgetvalue(res, i, 2),
		                                     "last_seq", (json_int_t)last, "delivered_seq",
		                                     (json_int_t)db_int(res, i, 4), "read_seq", (json_int_t)read,
		                                     "unread", (json_int_t)(last > read ? last - read : 0)));
	}
	PQclear(res);
	return syncd_reply_json(reply, 200, arr ? json_pack("{s:o}", "groups", arr) : NULL);
}

/* Members and the admin token may look at a group. Returns 0 or an error status. */
static unsigned may_view(struct syncd_call *call, const char *gid, struct group_access *ga, struct syncd_reply *reply)
{
	unsigned rc = groups_access(call->db, gid, call->user, ga, reply);
	if(rc) return rc;
	if(call->auth != SYNCD_AUTH_ADMIN && !ga->member)
		return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	return 0;
}

unsigned groups_get(struct syncd_call *call, struct syncd_reply *reply)
{
	struct group_access ga;
	unsigned rc = may_view(call, call->params[0], &ga, reply);
	if(rc) return rc;
	json_t *o = group_object(call->db, call->params[0]);
	if(o == NULL) return syncd_error(reply, 404, "not_found", "no group '%s'", call->params[0]);
	return syncd_reply_json(reply, 200, o);
}

/* The member object of (gid, uid), or NULL. */
static json_t *member_object(const PGresult *res, int i)
{
	return json_pack("{s:s,s:s,s:I,s:I,s:b}", "user", PQgetvalue(res, i, 0), "role", PQgetvalue(res, i, 1),
	                 "delivered_seq", (json_int_t)db_int(res, i, 2), "read_seq", (json_int_t)db_int(res, i, 3),
	                 "online", db_bool(res, i, 4));
}

#define MEMBER_SQL                                                                                                     \
	"SELECT ms.user_id, ms.role, ms.delivered_seq, ms.read_seq, " ONLINE_SQL("ms.user_id") " FROM memberships ms "

unsigned groups_members(struct syncd_call *call, struct syncd_reply *reply)
{
	struct group_access ga;
	unsigned rc = may_view(call, call->params[0], &ga, reply);
	if(rc) return rc;
	const char *p[1] = {call->params[0]};
	PGresult *res =
	        db_exec(call->db, MEMBER_SQL "WHERE ms.group_id = $1 ORDER BY ms.user_id COLLATE \"C\"", 1, p, false);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) json_array_append_new(arr, member_object(res, i));
	PQclear(res);
	return syncd_reply_json(reply, 200, arr ? json_pack("{s:o}", "members", arr) : NULL);
}

static const char *const member_keys[] = {"role", NULL};

unsigned groups_member_put(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0], *uid = call->params[1];
	const char *role = NULL;
	bool has_role = false;
	char err[256];
	struct group_access ga;
	unsigned rc;

	if(call->body != NULL &&
	   (!input_only_keys(call->body, member_keys, err, sizeof(err)) ||
	    !input_field_string(call->body, "role", "role", 16, false, &role, &has_role, err, sizeof(err))))
		return syncd_bad_request(reply, err);
	if(has_role && strcmp(role, "admin") != 0 && strcmp(role, "member") != 0)
		return syncd_bad_request(reply, "role: expected \"admin\" or \"member\"");
	rc = groups_access(call->db, gid, call->user, &ga, reply);
	if(rc) return rc;
	if(call->auth != SYNCD_AUTH_ADMIN && !ga.admin)
		return syncd_error(reply, 403, "forbidden", "only a group admin may add members");
	/* The new member sees messages from now on: all three cursors start at last_seq. */
	const char *p[3] = {gid, uid, has_role ? role : "member"};
	PGresult *res = db_exec(
	        call->db,
	        has_role ? "INSERT INTO memberships (group_id, user_id, role, joined_seq, delivered_seq, read_seq) "
	                   "SELECT id, $2, $3, last_seq, last_seq, last_seq FROM groups WHERE id = $1 "
	                   "ON CONFLICT (group_id, user_id) DO UPDATE SET role = EXCLUDED.role "
	                   "WHERE memberships.role <> EXCLUDED.role"
	                 : "INSERT INTO memberships (group_id, user_id, role, joined_seq, delivered_seq, read_seq) "
	                   "SELECT id, $2, $3, last_seq, last_seq, last_seq FROM groups WHERE id = $1 "
	                   "ON CONFLICT (group_id, user_id) DO NOTHING",
	        3, p, false);
	if(!db_ok(res)) {
		rc = !strcmp(db_sqlstate(res), "23503") ? syncd_error(reply, 404, "not_found", "no user '%s'", uid)
		                                        : syncd_db_error(reply);
		PQclear(res);
		return rc;
	}
	PQclear(res);
	const char *pq[2] = {gid, uid};
	res = db_exec(call->db, MEMBER_SQL "WHERE ms.group_id = $1 AND ms.user_id = $2", 2, pq, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
	} else if(PQntuples(res) != 1) {
		rc = syncd_error(reply, 404, "not_found", "group '%s' or user '%s' no longer exists", gid, uid);
	} else {
		rc = syncd_reply_json(reply, 200, member_object(res, 0));
	}
	PQclear(res);
	return rc;
}

unsigned groups_member_delete(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0], *uid = call->params[1];
	struct group_access ga;
	unsigned rc = groups_access(call->db, gid, call->user, &ga, reply);

	if(rc) return rc;
	bool self = call->user != NULL && !strcmp(call->user, uid);
	if(call->auth != SYNCD_AUTH_ADMIN && !ga.admin && !self)
		return syncd_error(reply, 403, "forbidden",
		                   "only a group admin or the member itself may remove a member");
	const char *p[2] = {gid, uid};
	PGresult *res = db_exec(call->db, "DELETE FROM memberships WHERE group_id = $1 AND user_id = $2", 2, p, false);
	if(!db_ok(res)) {
		rc = syncd_db_error(reply);
	} else if(strcmp(PQcmdTuples(res), "1") != 0) {
		rc = syncd_error(reply, 404, "not_found", "'%s' is not a member of group '%s'", uid, gid);
	} else {
		reply->status = 204;
		rc = 204;
	}
	PQclear(res);
	return rc;
}

static const char *const presence_args[] = {"users", NULL};

unsigned groups_presence(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *users = syncd_query(call, "users");
	struct db_buf list = {0};
	unsigned rc;

	if(!syncd_query_only(call, presence_args, reply)) return 400;
	if(users != NULL) {
		int n = 0;
		db_buf_add(&list, "{");
		for(const char *s = users;; n++) {
			const char *e = strchr(s, ',');
			size_t len = e ? (size_t)(e - s) : strlen(s);
			if(!mqs_id_valid_n(s, len) || n >= PRESENCE_MAX) {
				db_buf_free(&list);
				return syncd_bad_request(reply, "users: expected up to 1000 comma-separated user ids");
			}
			char id[MQS_ID_MAX + 1];
			memcpy(id, s, len);
			id[len] = '\0';
			db_buf_add(&list, n ? "," : "");
			db_buf_add_id(&list, id);
			if(e == NULL) break;
			s = e + 1;
		}
		db_buf_add(&list, "}");
		if(list.oom) {
			db_buf_free(&list);
			return syncd_error(reply, 503, "unavailable", "out of memory");
		}
	}
	/* Only the caller and users sharing a group with it. */
	const char *p[2] = {call->user, list.s};
	PGresult *res = db_exec(
	        call->db,
	        "SELECT u.id, coalesce(bool_or(p.connections > 0 AND "
	        "p.last_seen > now() - interval '90 seconds'), false), " MQS_SQL_TS(
	                "max(p.last_seen)") " "
	                                    "FROM users u LEFT JOIN presence p ON p.user_id = u.id "
	                                    "WHERE ($2::text[] IS NULL OR u.id = ANY ($2::text[])) AND (u.id = $1 OR "
	                                    "EXISTS ("
	                                    "SELECT 1 FROM memberships a JOIN memberships b ON b.group_id = a.group_id "
	                                    "WHERE a.user_id = $1 AND b.user_id = u.id)) "
	                                    "GROUP BY u.id ORDER BY u.id COLLATE \"C\"",
	        2, p, false);
	db_buf_free(&list);
	if(!db_ok(res)) {
		PQclear(res);
		return syncd_db_error(reply);
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) {
		json_array_append_new(
		        arr, json_pack("{s:s,s:b,s:o}", "user", PQgetvalue(res, i, 0), "online", db_bool(res, i, 1),
		                       "last_seen",
		                       PQgetisnull(res, i, 2) ? json_null() : json_string(PQgetvalue(res, i, 2))));
	}
	PQclear(res);
	rc = syncd_reply_json(reply, 200, arr ? json_pack("{s:o}", "presence", arr) : NULL);
	return rc;
}
