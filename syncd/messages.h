/* messages: the message endpoints: sync (with long-poll), ack, read markers, per-message status
 * and group history (SPEC 5.1-5.3, 5.4 history). */
#ifndef MQS_SYNCD_MESSAGES_H
#define MQS_SYNCD_MESSAGES_H

#include "http.h"

unsigned messages_sync(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_ack(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_read(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_status(struct syncd_call *call, struct syncd_reply *reply);
unsigned messages_history(struct syncd_call *call, struct syncd_reply *reply);

#endif
