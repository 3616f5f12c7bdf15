/* groups: the groups, members and presence endpoints: parse, call store_groups, answer. */
#include "groups.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "http.h"
#include "input.h"
#include "store_groups.h"

#define GROUP_NAME_MAX 256
#define GROUP_INIT_MAX 10000 /* members in one POST /groups */
#define PRESENCE_MAX   1000  /* users in one GET /presence */

/* A new random group id: 16 base64url characters (96 bits). */
static bool new_group_id(char out[17])
{
	unsigned char raw[12];

	if(RAND_bytes(raw, sizeof(raw)) != 1) return false;
	mqs_b64_encode(raw, sizeof(raw), out, true); /* 12 bytes: 16 characters, no padding */
	return true;
}

/* Reads the optional "members" array of POST /groups into l. Returns 0 or the error status. */
static unsigned parse_members(json_t *members, struct db_idlist *l, struct syncd_reply *reply)
{
	char err[256];
	size_t i;
	json_t *m;

	if(members != NULL && !json_is_array(members)) return syncd_bad_request(reply, "members: expected an array");
	if(json_array_size(members) > GROUP_INIT_MAX)
		return syncd_error(reply, 400, "bad_request", "members: at most %d entries", GROUP_INIT_MAX);
	json_array_foreach(members, i, m)
	{
		char fname[32];
		const char *uid;
		snprintf(fname, sizeof(fname), "members[%zu]", i);
		if(!input_value_id(m, fname, &uid, err, sizeof(err))) return syncd_bad_request(reply, err);
		db_idlist_add(l, uid, strlen(uid));
	}
	return l->oom ? syncd_oom(reply) : 0;
}

static const char *const create_keys[] = {"id", "name", "members", NULL};

unsigned groups_create(struct syncd_call *call, struct syncd_reply *reply)
{
	char err[256], genid[17], missing[MQS_ID_MAX + 1];
	const char *gid = NULL, *name = "";
	bool has_id;
	json_t *members = json_object_get(call->body, "members");
	struct db_idlist list = {0};
	unsigned status;

	if(!input_only_keys(call->body, create_keys, err, sizeof(err)) ||
	   !input_field_id(call->body, "id", "id", false, &gid, &has_id, err, sizeof(err)) ||
	   !input_field_string(call->body, "name", "name", GROUP_NAME_MAX, false, &name, NULL, err, sizeof(err)))
		return syncd_bad_request(reply, err);
	if(json_is_null(members)) members = NULL;
	status = parse_members(members, &list, reply);
	if(status == 0 && !has_id) {
		if(new_group_id(genid))
			gid = genid;
		else
			status = syncd_error(reply, 503, "unavailable", "random source failed");
	}
	if(status == 0) {
		enum store_rc rc = store_group_create(call->db, gid, name, call->user, &list, missing);
		json_t *o = NULL;
		if(rc == STORE_INVALID && missing[0] != '\0')
			status = syncd_error(reply, 400, "bad_request", "members: no user '%s'", missing);
		else if(rc == STORE_INVALID)
			status = syncd_bad_request(reply, "members: a listed user no longer exists");
		else if(rc != STORE_OK)
			status = syncd_store_error(reply, rc, "group '%s' already exists", gid);
		else if(store_group_get(call->db, gid, &o) != STORE_OK)
			status = syncd_oom(reply); /* as before the store layer: gone at once, or the database failed */
		else
			status = syncd_reply_json(reply, 201, o);
	}
	db_idlist_free(&list);
	return status;
}

unsigned groups_list(struct syncd_call *call, struct syncd_reply *reply)
{
	json_t *arr;
	enum store_rc rc = store_groups_of(call->db, call->user, &arr);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "groups");
	return syncd_reply_json(reply, 200, json_pack("{s:o}", "groups", arr));
}

/* Members and the admin token may look at a group. Returns 0 or an error status. */
static unsigned may_view(struct syncd_call *call, const char *gid, struct syncd_reply *reply)
{
	struct store_access ga;
	enum store_rc rc = store_group_access(call->db, gid, call->user, &ga);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no group '%s'", gid);
	if(call->auth != SYNCD_AUTH_ADMIN && !ga.member)
		return syncd_error(reply, 403, "forbidden", "not a member of group '%s'", gid);
	return 0;
}

unsigned groups_get(struct syncd_call *call, struct syncd_reply *reply)
{
	json_t *o;
	unsigned status = may_view(call, call->params[0], reply);
	if(status) return status;
	enum store_rc rc = store_group_get(call->db, call->params[0], &o);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no group '%s'", call->params[0]);
	return syncd_reply_json(reply, 200, o);
}

unsigned groups_members(struct syncd_call *call, struct syncd_reply *reply)
{
	json_t *arr;
	unsigned status = may_view(call, call->params[0], reply);
	if(status) return status;
	enum store_rc rc = store_members(call->db, call->params[0], &arr);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "members");
	return syncd_reply_json(reply, 200, json_pack("{s:o}", "members", arr));
}

static const char *const member_keys[] = {"role", NULL};

unsigned groups_member_put(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0], *uid = call->params[1];
	const char *role = NULL;
	bool has_role = false;
	char err[256];
	struct store_access ga;
	json_t *o;

	if(call->body != NULL &&
	   (!input_only_keys(call->body, member_keys, err, sizeof(err)) ||
	    !input_field_string(call->body, "role", "role", 16, false, &role, &has_role, err, sizeof(err))))
		return syncd_bad_request(reply, err);
	if(has_role && strcmp(role, "admin") != 0 && strcmp(role, "member") != 0)
		return syncd_bad_request(reply, "role: expected \"admin\" or \"member\"");
	enum store_rc rc = store_group_access(call->db, gid, call->user, &ga);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no group '%s'", gid);
	if(call->auth != SYNCD_AUTH_ADMIN && !ga.admin)
		return syncd_error(reply, 403, "forbidden", "only a group admin may add members");
	rc = store_member_add(call->db, gid, uid, has_role ? role : "member", has_role);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no user '%s'", uid);
	rc = store_member_get(call->db, gid, uid, &o);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "group '%s' or user '%s' no longer exists", gid, uid);
	return syncd_reply_json(reply, 200, o);
}

unsigned groups_member_delete(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *gid = call->params[0], *uid = call->params[1];
	struct store_access ga;
	enum store_rc rc = store_group_access(call->db, gid, call->user, &ga);

	if(rc != STORE_OK) return syncd_store_error(reply, rc, "no group '%s'", gid);
	bool self = call->user != NULL && !strcmp(call->user, uid);
	if(call->auth != SYNCD_AUTH_ADMIN && !ga.admin && !self)
		return syncd_error(reply, 403, "forbidden",
		                   "only a group admin or the member itself may remove a member");
	rc = store_member_remove(call->db, gid, uid);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "'%s' is not a member of group '%s'", uid, gid);
	return syncd_no_content(reply);
}

/* Reads ?users=a,b (up to PRESENCE_MAX ids) into l. False (reply set) when malformed or out of memory. */
static bool parse_users(const char *users, struct db_idlist *l, struct syncd_reply *reply)
{
	for(const char *s = users;;) {
		const char *e = strchr(s, ',');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if(!mqs_id_valid_n(s, len) || l->n >= PRESENCE_MAX) {
			syncd_bad_request(reply, "users: expected up to 1000 comma-separated user ids");
			return false;
		}
		db_idlist_add(l, s, len);
		if(l->oom) {
			syncd_oom(reply);
			return false;
		}
		if(e == NULL) return true;
		s = e + 1;
	}
}

static const char *const presence_args[] = {"users", NULL};

unsigned groups_presence(struct syncd_call *call, struct syncd_reply *reply)
{
	const char *users = syncd_query(call, "users");
	struct db_idlist list = {0};
	json_t *arr;

	if(!syncd_query_only(call, presence_args, reply)) return 400;
	if(users != NULL && !parse_users(users, &list, reply)) {
		db_idlist_free(&list);
		return reply->status;
	}
	enum store_rc rc = store_presence(call->db, call->user, users ? &list : NULL, &arr);
	db_idlist_free(&list);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "presence");
	return syncd_reply_json(reply, 200, json_pack("{s:o}", "presence", arr));
}
