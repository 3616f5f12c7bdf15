/* groups: groups, members and presence endpoints (SPEC 5.4, 5.5 presence), and the membership
 * check the message endpoints share. */
#ifndef MQS_SYNCD_GROUPS_H
#define MQS_SYNCD_GROUPS_H

#include <stdint.h>

#include "http.h"

/* What a caller is to a group. */
struct group_access {
	int64_t last_seq;
	bool member;
	bool admin; /* group admin role */
	int64_t joined_seq, delivered_seq, read_seq;
};

/* Looks up gid and user's membership. Returns 0 with *out filled, or an error status set in
 * reply: 404 when the group does not exist, 503 on a database failure. A non-member is not an
 * error here (out->member is false); user may be NULL (admin token). */
unsigned groups_access(PGconn *db, const char *gid, const char *user, struct group_access *out,
                       struct syncd_reply *reply);

unsigned groups_create(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_list(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_get(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_members(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_member_put(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_member_delete(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_presence(struct syncd_call *call, struct syncd_reply *reply);

#endif
