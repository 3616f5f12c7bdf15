/* messages: the message endpoints: sync (with long-poll), ack, read markers, per-message status
 * and group history (SPEC 5.1-5.3, 5.4 history); the data is in store_messages, the page logic
 * of sync in common/syncpage. */
#ifndef MQS_SYNCD_MESSAGES_H
#define MQS_SYNCD_MESSAGES_H

struct syncd_call;
struct syncd_reply;

unsigned messages_sync(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_ack(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_read(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_status(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_history(struct syncd_call *call, struct syncd_reply *reply);

#endif
