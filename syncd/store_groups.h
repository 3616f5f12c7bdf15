/* store_groups: groups, memberships and presence in the database (SPEC 5.4, 5.5 presence): every
 * statement of the group endpoints and the membership check the message endpoints share. Objects
 * come back as jansson values in their SPEC shape (new references the caller owns). */
#ifndef MQS_SYNCD_STORE_GROUPS_H
#define MQS_SYNCD_STORE_GROUPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* What a caller is to a group. */
struct store_access {
	int64_t last_seq;
	bool member;
	bool admin; /* group admin role */
	int64_t joined_seq, delivered_seq, read_seq;
};

/* Looks up gid and user's membership: STORE_OK with *out filled (a non-member is not an error:
 * out->member is false; user may be NULL for the admin token), STORE_NOT_FOUND (no such group),
 * STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_group_access(struct db_conn *db, const char *gid, const char *user,
                                                struct store_access *out);

/* The group object {id, name, created_by, created_at, last_seq, member_count} into *out:
 * STORE_OK, STORE_NOT_FOUND, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_group_get(struct db_conn *db, const char *gid, json_t **out);

/* Creates group gid named name, with creator (NULL for the admin token) as its admin and members
 * as members from seq 0 on, in one transaction. STORE_OK; STORE_INVALID with the first listed id
 * that is no user in missing (or missing "" when a listed user was deleted meanwhile);
 * STORE_CONFLICT (gid exists); STORE_DB_ERROR; STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_group_create(struct db_conn *db, const char *gid, const char *name,
                                                const char *creator, const struct db_idlist *members,
                                                char missing[MQS_ID_MAX + 1]);

/* The caller's groups, ordered by id, as an array of {id, name, role, last_seq, delivered_seq,
 * read_seq, unread}: STORE_OK, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_groups_of(struct db_conn *db, const char *user, json_t **out);

/* gid's members, ordered by user id, as an array of member objects {user, role, delivered_seq,
 * read_seq, online}: STORE_OK, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_members(struct db_conn *db, const char *gid, json_t **out);

/* Adds uid to gid with role, all three cursors at last_seq (the member sees messages from now on).
 * An existing member keeps its cursors; its role changes only with set_role. STORE_OK (also when
 * gid is gone: store_member_get then tells), STORE_NOT_FOUND (no user uid), STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_member_add(struct db_conn *db, const char *gid, const char *uid, const char *role,
                                              bool set_role);

/* The member object of (gid, uid): STORE_OK, STORE_NOT_FOUND, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_member_get(struct db_conn *db, const char *gid, const char *uid, json_t **out);

/* Removes uid from gid: STORE_OK, STORE_NOT_FOUND (not a member), STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_member_remove(struct db_conn *db, const char *gid, const char *uid);

/* Presence {user, online, last_seen} of the users in only (NULL: everyone) who are user or share a
 * group with user, ordered by id: STORE_OK, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_presence(struct db_conn *db, const char *user, const struct db_idlist *only,
                                            json_t **out);

#endif
