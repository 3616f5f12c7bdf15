/* store_groups: the groups, memberships and presence statements (see store_groups.h). */
#include "store_groups.h"

#include <stdio.h>
#include <string.h>

#include "pg.h"

enum store_rc store_group_access(struct db_conn *db, const char *gid, const char *user, struct store_access *out)
{
	const char *p[2] = {gid, user};
	PGresult *res = db_exec(db,
	                        "SELECT g.last_seq, ms.role, ms.joined_seq, ms.delivered_seq, ms.read_seq "
	                        "FROM groups g LEFT JOIN memberships ms ON ms.group_id = g.id AND ms.user_id = $2 "
	                        "WHERE g.id = $1",
	                        2, p, false);
	enum store_rc rc = STORE_OK;

	memset(out, 0, sizeof(*out));
	if(!db_ok(res)) {
		rc = STORE_DB_ERROR;
	} else if(PQntuples(res) != 1) {
		rc = STORE_NOT_FOUND;
	} else {
		out->last_seq = mqs_pg_int(res, 0, 0);
		out->member = !PQgetisnull(res, 0, 1);
		out->admin = out->member && !strcmp(PQgetvalue(res, 0, 1), "admin");
		out->joined_seq = mqs_pg_int(res, 0, 2);
		out->delivered_seq = mqs_pg_int(res, 0, 3);
		out->read_seq = mqs_pg_int(res, 0, 4);
	}
	PQclear(res);
	return rc;
}

/* The code for a list or object built from a successful result: OK, or NO_MEMORY when *out is NULL. */
static enum store_rc built(json_t *out)
{
	return out != NULL ? STORE_OK : STORE_NO_MEMORY;
}

enum store_rc store_group_get(struct db_conn *db, const char *gid, json_t **out)
{
	const char *p[1] = {gid};
	PGresult *res =
	        db_exec(db,
	                "SELECT g.id, g.name, g.created_by, " MQS_SQL_TS(
	                        "g.created_at") ", g.last_seq, "
	                                        "(SELECT count(*) FROM memberships ms WHERE ms.group_id = g.id) "
	                                        "FROM groups g WHERE g.id = $1",
	                1, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	*out = NULL;
	if(db_ok(res) && PQntuples(res) != 1) {
		rc = STORE_NOT_FOUND;
	} else if(db_ok(res)) {
		*out = json_pack("{s:s,s:s,s:o,s:s,s:I,s:I}", "id", PQgetvalue(res, 0, 0), "name",
		                 PQgetvalue(res, 0, 1), "created_by",
		                 PQgetisnull(res, 0, 2) ? json_null() : json_string(PQgetvalue(res, 0, 2)),
		                 "created_at", PQgetvalue(res, 0, 3), "last_seq", (json_int_t)mqs_pg_int(res, 0, 4),
		                 "member_count", (json_int_t)mqs_pg_int(res, 0, 5));
		rc = built(*out);
	}
	PQclear(res);
	return rc;
}

/* The first id of the literal members that is no user: STORE_OK (none, missing ""), STORE_INVALID, DB_ERROR. */
static enum store_rc first_missing_user(struct db_conn *db, const char *members, char missing[MQS_ID_MAX + 1])
{
	const char *pm[1] = {members};
	PGresult *res = db_exec(db,
	                        "SELECT r.u FROM unnest($1::text[]) AS r(u) LEFT JOIN users u ON u.id = r.u "
	                        "WHERE u.id IS NULL LIMIT 1",
	                        1, pm, false);
	enum store_rc rc = STORE_DB_ERROR;

	missing[0] = '\0';
	if(db_ok(res)) {
		rc = PQntuples(res) > 0 ? STORE_INVALID : STORE_OK;
		if(rc == STORE_INVALID) snprintf(missing, MQS_ID_MAX + 1, "%s", PQgetvalue(res, 0, 0));
	}
	PQclear(res);
	return rc;
}

/* The two inserts of store_group_create, inside its transaction. */
static enum store_rc insert_group(struct db_conn *db, const char *gid, const char *name, const char *creator,
                                  const char *members)
{
	const char *pg[3] = {gid, name, creator};
	PGresult *res =
	        db_exec(db,
	                "INSERT INTO groups (id, name, created_by) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING "
	                "RETURNING id",
	                3, pg, false);
	enum store_rc rc = !db_ok(res) ? STORE_DB_ERROR : PQntuples(res) != 1 ? STORE_CONFLICT : STORE_OK;
	PQclear(res);
	if(rc != STORE_OK) return rc;
	/* The creator is its admin; the others are members from seq 0 on. */
	const char *pi[3] = {gid, creator, members};
	res = db_exec(db,
	              "INSERT INTO memberships (group_id, user_id, role) "
	              "SELECT $1, u, CASE WHEN u = $2::text THEN 'admin' ELSE 'member' END "
	              "FROM (SELECT unnest($3::text[]) UNION SELECT $2::text WHERE $2::text IS NOT NULL) AS r(u)",
	              3, pi, false);
	/* A member deleted meanwhile (23503) is the caller's problem; anything else ours. */
	rc = db_ok(res) ? STORE_OK : !strcmp(db_sqlstate(res), "23503") ? STORE_INVALID : STORE_DB_ERROR;
	PQclear(res);
	return rc;
}

enum store_rc store_group_create(struct db_conn *db, const char *gid, const char *name, const char *creator,
                                 const struct db_idlist *members, char missing[MQS_ID_MAX + 1])
{
	struct mqs_pgarr list = {0};
	const char *lit = db_idlist_literal(&list, members);
	enum store_rc rc;

	missing[0] = '\0';
	if(lit == NULL) {
		rc = STORE_NO_MEMORY;
	} else if((rc = first_missing_user(db, lit, missing)) == STORE_OK) {
		if(!db_cmd(db, "BEGIN")) {
			rc = STORE_DB_ERROR;
		} else {
			rc = insert_group(db, gid, name, creator, lit);
			if(rc == STORE_OK && !db_cmd(db, "COMMIT"))
				rc = STORE_DB_ERROR;
			else if(rc != STORE_OK && !db_cmd(db, "ROLLBACK"))
				rc = STORE_DB_ERROR;
		}
	}
	mqs_pgarr_free(&list);
	return rc;
}

enum store_rc store_groups_of(struct db_conn *db, const char *user, json_t **out)
{
	const char *p[1] = {user};
	PGresult *res = db_exec(db,
	                        "SELECT g.id, g.name, m.role, g.last_seq, m.delivered_seq, m.read_seq "
	                        "FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1 "
	                        "ORDER BY g.id COLLATE \"C\"",
	                        1, p, false);

	*out = NULL;
	if(!db_ok(res)) {
		PQclear(res);
		return STORE_DB_ERROR;
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) {
		int64_t last = mqs_pg_int(res, i, 3), read = mqs_pg_int(res, i, 5);
		store_append(&arr,
		             json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "id", PQgetvalue(res, i, 0), "name",
		                       PQgetvalue(res, i, 1), "role", PQgetvalue(res, i, 2), "last_seq",
		                       (json_int_t)last, "delivered_seq", (json_int_t)mqs_pg_int(res, i, 4), "read_seq",
		                       (json_int_t)read, "unread", (json_int_t)(last > read ? last - read : 0)));
	}
	PQclear(res);
	*out = arr;
	return built(arr);
}

/* The member object of row i of a MEMBER_SQL result, or NULL on out of memory. */
static json_t *member_object(const PGresult *res, int i)
{
	return json_pack("{s:s,s:s,s:I,s:I,s:b}", "user", PQgetvalue(res, i, 0), "role", PQgetvalue(res, i, 1),
	                 "delivered_seq", (json_int_t)mqs_pg_int(res, i, 2), "read_seq",
	                 (json_int_t)mqs_pg_int(res, i, 3), "online", db_bool(res, i, 4));
}

#define MEMBER_SQL                                                                                                     \
	"SELECT ms.user_id, ms.role, ms.delivered_seq, ms.read_seq, " STORE_SQL_ONLINE(                                \
	        "ms.user_id") " FROM memberships ms "

enum store_rc store_members(struct db_conn *db, const char *gid, json_t **out)
{
	const char *p[1] = {gid};
	PGresult *res = db_exec(db, MEMBER_SQL "WHERE ms.group_id = $1 ORDER BY ms.user_id COLLATE \"C\"", 1, p, false);

	*out = NULL;
	if(!db_ok(res)) {
		PQclear(res);
		return STORE_DB_ERROR;
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) store_append(&arr, member_object(res, i));
	PQclear(res);
	*out = arr;
	return built(arr);
}

enum store_rc store_member_add(struct db_conn *db, const char *gid, const char *uid, const char *role, bool set_role)
{
	const char *p[3] = {gid, uid, role};
	PGresult *res = db_exec(
	        db,
	        set_role ? "INSERT INTO memberships (group_id, user_id, role, joined_seq, delivered_seq, read_seq) "
	                   "SELECT id, $2, $3, last_seq, last_seq, last_seq FROM groups WHERE id = $1 "
	                   "ON CONFLICT (group_id, user_id) DO UPDATE SET role = EXCLUDED.role "
	                   "WHERE memberships.role <> EXCLUDED.role"
	                 : "INSERT INTO memberships (group_id, user_id, role, joined_seq, delivered_seq, read_seq) "
	                   "SELECT id, $2, $3, last_seq, last_seq, last_seq FROM groups WHERE id = $1 "
	                   "ON CONFLICT (group_id, user_id) DO NOTHING",
	        3, p, false);
	enum store_rc rc = db_ok(res)                           ? STORE_OK
	                   : !strcmp(db_sqlstate(res), "23503") ? STORE_NOT_FOUND
	                                                        : STORE_DB_ERROR;
	PQclear(res);
	return rc;
}

enum store_rc store_member_get(struct db_conn *db, const char *gid, const char *uid, json_t **out)
{
	const char *p[2] = {gid, uid};
	PGresult *res = db_exec(db, MEMBER_SQL "WHERE ms.group_id = $1 AND ms.user_id = $2", 2, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	*out = NULL;
	if(db_ok(res) && PQntuples(res) != 1) {
		rc = STORE_NOT_FOUND;
	} else if(db_ok(res)) {
		*out = member_object(res, 0);
		rc = built(*out);
	}
	PQclear(res);
	return rc;
}

enum store_rc store_member_remove(struct db_conn *db, const char *gid, const char *uid)
{
	const char *p[2] = {gid, uid};
	PGresult *res = db_exec(db, "DELETE FROM memberships WHERE group_id = $1 AND user_id = $2", 2, p, false);
	enum store_rc rc = STORE_DB_ERROR;

	if(db_ok(res)) rc = !strcmp(PQcmdTuples(res), "1") ? STORE_OK : STORE_NOT_FOUND;
	PQclear(res);
	return rc;
}

enum store_rc store_presence(struct db_conn *db, const char *user, const struct db_idlist *only, json_t **out)
{
	struct mqs_pgarr list = {0};
	const char *lit = NULL;

	*out = NULL;
	if(only != NULL && (lit = db_idlist_literal(&list, only)) == NULL) {
		mqs_pgarr_free(&list);
		return STORE_NO_MEMORY;
	}
	/* Only the caller and users sharing a group with it. */
	const char *p[2] = {user, lit};
	PGresult *res = db_exec(
	        db,
	        "SELECT u.id, coalesce(bool_or(p.connections > 0 AND " MQS_SQL_ONLINE(
	                "p.last_seen") "), false), " MQS_SQL_TS("max(p.last_seen)") " "
	                                                                            "FROM users u LEFT JOIN presence p "
	                                                                            "ON p.user_id = u.id "
	                                                                            "WHERE ($2::text[] IS NULL OR u.id "
	                                                                            "= ANY ($2::text[])) AND "
	                                                                            "(u.id = $1 OR EXISTS ("
	                                                                            "SELECT 1 FROM memberships a JOIN "
	                                                                            "memberships b ON b.group_id = "
	                                                                            "a.group_id WHERE a.user_id = $1 "
	                                                                            "AND b.user_id = u.id)) "
	                                                                            "GROUP BY u.id ORDER BY u.id "
	                                                                            "COLLATE \"C\"",
	        2, p, false);
	mqs_pgarr_free(&list);
	if(!db_ok(res)) {
		PQclear(res);
		return STORE_DB_ERROR;
	}
	json_t *arr = json_array();
	for(int i = 0; arr && i < PQntuples(res); i++) {
		store_append(&arr,
		             json_pack("{s:s,s:b,s:o}", "user", PQgetvalue(res, i, 0), "online", db_bool(res, i, 1),
		                       "last_seen",
		                       PQgetisnull(res, i, 2) ? json_null() : json_string(PQgetvalue(res, i, 2))));
	}
	PQclear(res);
	*out = arr;
	return built(arr);
}
