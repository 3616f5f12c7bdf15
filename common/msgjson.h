/* msgjson: the SPEC 5.1 message object, one encoder for live delivery (plugin, JSON envelope) and
 * sync/history (mqsyncd), so that the two can never drift. */
#ifndef MQS_MSGJSON_H
#define MQS_MSGJSON_H

#include <stddef.h>
#include <stdint.h>

#include "jsonw.h"

/* One message, borrowed: pointers are not NUL-terminated where a length is given. */
struct mqs_msg_view {
	int64_t id;
	int64_t seq;
	const char *group;
	size_t group_len;
	const char *sender;
	size_t sender_len;
	const char *ts; /* SPEC 3.1 (MQS_SQL_TS) */
	size_t ts_len;
	const void *payload; /* any bytes; may be NULL when payload_len is 0 */
	size_t payload_len;
	const char *cid; /* NULL: absent */
	size_t cid_len;
};

/* Appends {"id":..,"group":..,"seq":..,"sender":..,"ts":..,"payload":..,"encoding":"utf8"|"base64"
 * [,"cid":..]}: the payload as a JSON string when it is valid UTF-8 (jsonw_utf8_valid), else as
 * standard base64. Exactly the bytes mqsyncd's sync and history have always written. */
void mqs_msgjson_write(struct jsonw *w, const struct mqs_msg_view *m);

#endif
