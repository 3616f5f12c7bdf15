/* topic: parsing of the topics and payloads the plugin governs (SPEC 3). Pure functions. */
#ifndef MQS_PLUGIN_TOPIC_H
#define MQS_PLUGIN_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "syncpage.h"
#include "util.h"

enum mqs_topic_kind {
	MQS_TOPIC_OTHER = 0,    /* outside groups/#, users/#, system/#: not governed */
	MQS_TOPIC_MESSAGES,     /* groups/{gid}/messages */
	MQS_TOPIC_RECEIPTS,     /* groups/{gid}/receipts */
	MQS_TOPIC_INBOX,        /* users/{uid}/inbox */
	MQS_TOPIC_ALERTS,       /* system/alerts */
	MQS_TOPIC_SYNC,         /* users/{uid}/sync: catch-up requests (SPEC 3.6) */
	MQS_TOPIC_GOVERNED_BAD, /* under groups/, users/ or system/ but not one of the above */
};

struct mqs_topic {
	enum mqs_topic_kind kind;
	char id[MQS_ID_MAX + 1]; /* gid for MESSAGES/RECEIPTS, uid for INBOX/SYNC; "" otherwise */
};

/* Parses a concrete topic name (no wildcards). A gid/uid that is not a valid id makes the topic
 * MQS_TOPIC_GOVERNED_BAD. Never fails otherwise. */
void mqs_topic_parse(const char *topic, struct mqs_topic *out);

/* What a subscription filter can match, for SUBSCRIBE ACL checks. The "$share/NAME/" prefix is
 * stripped first. */
enum mqs_filter_scope {
	MQS_FILTER_OTHER = 0, /* can only match ungoverned topics */
	MQS_FILTER_EXACT,     /* no wildcard in the governed part: out->topic says which topic */
	MQS_FILTER_WILDCARD,  /* a wildcard can match governed topics; READ checks filter deliveries */
	MQS_FILTER_BAD,       /* governed prefix but can match nothing we allow (e.g. groups/g/foo) */
};

/* For a shared subscription "$share/NAME/FILTER" (NAME non-empty, without '/', '+' or '#'), a
 * pointer to FILTER inside filter; NULL for any other filter (also a malformed "$share..."). */
const char *mqs_filter_share_body(const char *filter);

/* Classifies a filter. For MQS_FILTER_EXACT, topic is the parsed concrete topic. A filter such as
 * "groups/+/messages", "groups/#", "#" or "+/+/messages" is WILDCARD. */
enum mqs_filter_scope mqs_filter_classify(const char *filter, struct mqs_topic *topic);

/* A receipt payload (SPEC 3.3): a JSON object {"delivered": N}, {"read": N} or both, N an integer
 * 0 <= N <= 2^53. Unknown keys, other types, duplicates, trailing garbage: rejected. Absent fields
 * are -1. Returns false with a short reason in *why (static string) when malformed. */
MQS_MUST_CHECK bool mqs_receipt_parse(const void *payload, size_t len, int64_t *delivered, int64_t *read,
                                      const char **why);

#define MQS_SYNC_REQ_ID_MAX 256 /* bytes of a catch-up request's "id" */

/* A catch-up request (SPEC 3.6): the parameters of GET /messages/sync. */
struct mqs_sync_req {
	char group[MQS_ID_MAX + 1];  /* "" = all the user's groups */
	int64_t limit;               /* 1..SYNCPAGE_LIMIT_MAX, default SYNCPAGE_LIMIT_DEFAULT */
	bool has_token;              /* "after" given */
	struct synctoken_entry *tok; /* the decoded "after" (malloc'ed, may be NULL when ntok is 0) */
	size_t ntok;
	char *id; /* "id" (malloc'ed) or NULL when absent */
};

/* Parses a catch-up request: a JSON object with only the optional keys "group" (an id), "after" (a
 * token returned as `next`), "limit" (integer 1..1000) and "id" (a string of at most
 * MQS_SYNC_REQ_ID_MAX bytes). On success out holds what it owns (free with mqs_sync_req_clear); on
 * false *why is a short static reason and out holds nothing. */
MQS_MUST_CHECK bool mqs_sync_req_parse(const void *payload, size_t len, struct mqs_sync_req *out, const char **why);
/* Frees what out owns and zeroes it. Accepts a zeroed request. */
void mqs_sync_req_clear(struct mqs_sync_req *out);

#endif
