/* notify: the NOTIFY channels and payloads that sql/0001_init.sql's triggers send, parsed in one
 * place for the plugin's listener and mqsyncd's waiters. */
#ifndef MQS_NOTIFY_H
#define MQS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "ids.h"
#include "util.h"

#define MQS_CHAN_MSG   "mqsync_msg"   /* payload "<gid>:<last_seq>" */
#define MQS_CHAN_STATE "mqsync_state" /* payload "user:<uid>" | "group:<gid>" | "member:<gid>:<uid>" */

/* Parses a mqsync_msg payload: gid gets the group id (validated, NUL-terminated), *last_seq the
 * sequence number (decimal digits only, at most INT64_MAX). False (gid and *last_seq unspecified) on
 * anything else: a missing colon, an invalid or too long id, an empty, signed, non-numeric or
 * overflowing seq, trailing characters. */
MQS_MUST_CHECK bool mqs_notify_msg_parse(const char *payload, char gid[MQS_ID_MAX + 1], int64_t *last_seq);

enum mqs_notify_state { MQS_NOTIFY_BAD = 0, MQS_NOTIFY_USER, MQS_NOTIFY_GROUP, MQS_NOTIFY_MEMBER };

/* Parses a mqsync_state payload. a gets the uid (USER), the gid (GROUP) or the gid (MEMBER, with b
 * = the uid); every id is validated and NUL-terminated. MQS_NOTIFY_BAD (a and b unspecified) for
 * anything else. b is not written unless MEMBER. */
MQS_MUST_CHECK enum mqs_notify_state mqs_notify_state_parse(const char *payload, char a[MQS_ID_MAX + 1],
                                                            char b[MQS_ID_MAX + 1]);

#endif
