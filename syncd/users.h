/* users: the /users endpoints (SPEC 5.5); the data is in store_users. No http.h here: callers that
 * only need the store (main.c's `user add`) include store_users.h. */
#ifndef MQS_SYNCD_USERS_H
#define MQS_SYNCD_USERS_H

struct syncd_call;
struct syncd_reply;

/* POST /users (admin token), POST /users/{uid}/token (admin token or the user), DELETE
 * /users/{uid} (admin token). */
unsigned users_post(struct syncd_call *call, struct syncd_reply *reply);
unsigned users_rotate(struct syncd_call *call, struct syncd_reply *reply);
unsigned users_delete(struct syncd_call *call, struct syncd_reply *reply);

#endif
