/* groups: the groups, members and presence endpoints (SPEC 5.4, 5.5 presence); the data is in
 * store_groups. */
#ifndef MQS_SYNCD_GROUPS_H
#define MQS_SYNCD_GROUPS_H

struct syncd_call;
struct syncd_reply;

unsigned groups_create(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_list(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_get(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_members(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_member_put(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_member_delete(struct syncd_call *call, struct syncd_reply *reply);
unsigned groups_presence(struct syncd_call *call, struct syncd_reply *reply);

#endif
