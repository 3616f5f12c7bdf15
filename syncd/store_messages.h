/* store_messages: messages and the cursors that move over them in the database (SPEC 5.1-5.3, 5.4
 * history): every statement of the message endpoints. Message rows come back as views for the
 * JSON writer (no copy of the payloads); small objects as jansson values in their SPEC shape (new
 * references the caller owns). */
#ifndef MQS_SYNCD_STORE_MESSAGES_H
#define MQS_SYNCD_STORE_MESSAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgjson.h"
#include "store.h"
#include "syncpage.h"

/* Fetched messages, in the order the query gave. store_msgs_get's view borrows from m (valid
 * until store_msgs_free). */
struct store_msgs;
size_t store_msgs_count(const struct store_msgs *m);
void store_msgs_get(const struct store_msgs *m, size_t i, struct mqs_msg_view *out);
/* Accepts NULL. */
void store_msgs_free(struct store_msgs *m);

/* The user's groups (or only group, when not NULL and the user is in it), in C collation order of
 * their ids: *out is a malloc'ed array of *n (caller frees; planning fields unset). STORE_OK,
 * STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_sync_groups(struct db_conn *db, const char *user, const char *group,
                                               struct syncpage_group **out, size_t *n);

/* The messages a planned page fetches (seq pos+1 .. upto of every group with upto > pos), ordered
 * by group (C collation) and seq. *out: caller frees with store_msgs_free. STORE_OK,
 * STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_sync_fetch(struct db_conn *db, const struct syncpage_group *g, size_t n,
                                              struct store_msgs **out);

/* Up to limit messages of gid with after < seq < before: oldest first when forward, else newest
 * first. Same contract as store_sync_fetch. */
MQS_MUST_CHECK enum store_rc store_history(struct db_conn *db, const char *gid, int64_t after, int64_t before,
                                           int64_t limit, bool forward, struct store_msgs **out);

/* One acknowledgement: the caller has everything of group up to seq. */
struct store_ack {
	char group[MQS_ID_MAX + 1];
	int64_t seq;
};

/* Resolves message ids[0..n) to (group, seq) in out[0..n) (same order). STORE_OK,
 * STORE_NOT_FOUND with *missing the first unknown id, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_ack_resolve(struct db_conn *db, const int64_t *ids, size_t n, struct store_ack *out,
                                               int64_t *missing);

/* Why store_ack_apply refused: the group, and for STORE_INVALID the seq and the group's last_seq. */
struct store_ack_refusal {
	char group[MQS_ID_MAX + 1];
	int64_t seq, last_seq;
};

/* Moves user's delivered cursors forward to acks[0..n) in one statement (all or none), after
 * checking membership (STORE_NOT_MEMBER) and bounds (STORE_INVALID: a seq past last_seq), the first
 * failing group (C collation order) in *why. STORE_OK with *cursors an array of the cursor objects
 * {group, delivered_seq, read_seq} moved; STORE_DB_ERROR; STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_ack_apply(struct db_conn *db, const char *user, const struct store_ack *acks,
                                             size_t n, struct store_ack_refusal *why, json_t **cursors);

/* The seq of message id in gid: STORE_OK, STORE_NOT_FOUND, STORE_DB_ERROR. */
MQS_MUST_CHECK enum store_rc store_message_seq(struct db_conn *db, int64_t id, const char *gid, int64_t *seq);

/* Raises user's read (and delivered) cursor in gid to seq. STORE_OK with *cursor the cursor object,
 * STORE_NOT_MEMBER, STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_read_mark(struct db_conn *db, const char *gid, const char *user, int64_t seq,
                                             json_t **cursor);

/* The status object of message id as user sees it (SPEC 5.3): counts, and recipients listed when
 * the group has at most max_members members. STORE_OK with *out, STORE_NOT_FOUND, STORE_NOT_MEMBER,
 * STORE_DB_ERROR, STORE_NO_MEMORY. */
MQS_MUST_CHECK enum store_rc store_message_status(struct db_conn *db, int64_t id, const char *user, long max_members,
                                                  json_t **out);

#endif
