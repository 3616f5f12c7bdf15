/* syncpage: the pure page logic of sync: which messages one page fetches, given a device's token and
 * the user's memberships, and the `next` token after it. No I/O, no HTTP: mqsyncd's
 * GET /messages/sync and the plugin's catch-up over MQTT both use it, with the same tokens (their
 * statements: common/syncsql.h). */
#ifndef MQS_SYNCPAGE_H
#define MQS_SYNCPAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "synctoken.h"
#include "util.h"

#define SYNCPAGE_LIMIT_DEFAULT 100     /* messages per page without `limit` (SPEC 5.2) */
#define SYNCPAGE_LIMIT_MAX     1000    /* at most */
#define SYNCPAGE_MAX_BYTES     1048576 /* a page ends early once it holds this many payload bytes */

/* One of the user's groups as a sync page sees it. */
struct syncpage_group {
	char gid[MQS_ID_MAX + 1];
	int64_t joined;    /* joined_seq: messages up to it are not the member's */
	int64_t delivered; /* delivered_seq: where a sync without a token starts */
	int64_t last;      /* the group's last_seq */
	/* Set by syncpage_plan: */
	int64_t pos;  /* the device's position: everything <= pos has been seen */
	int64_t upto; /* this page fetches pos+1 .. upto; nothing when upto == pos */
};

/* Plans one page of at most limit (>= 1) messages over g[0..n), taken in order (the store returns
 * groups in C collation order of their ids). With has_token, a group's position is its entry in
 * tok/ntok (a decoded `after` token) or its join point when the token has none; without, it is
 * delivered_seq. Positions are clamped to [joined, last]. Token entries for groups not in g (groups
 * the user left) are ignored. Returns how many groups have something to fetch (upto > pos), and
 * sets *has_more when some group has messages beyond this page. */
size_t syncpage_plan(struct syncpage_group *g, size_t n, bool has_token, const struct synctoken_entry *tok, size_t ntok,
                     int64_t limit, bool *has_more);

/* Records a fetched message (gid, seq), in fetch order (gids ascending in C collation, seqs
 * ascending): that group's position moves to seq. *cursor starts at 0 and carries the walk between
 * calls. Returns false for a gid not (or no longer) ahead in g: the rest is then ignored. */
bool syncpage_returned(struct syncpage_group *g, size_t n, size_t *cursor, const char *gid, size_t gid_len,
                       int64_t seq);

/* The `next` token after the page: an entry for every group whose position is past its join point;
 * a group without progress whose key collides with one that has an entry shares it (the lower
 * position wins: a collision may re-deliver, never skip). Returns a malloc'ed string (caller
 * frees), or NULL on out of memory. */
MQS_MUST_CHECK char *syncpage_next_token(const struct syncpage_group *g, size_t n);

#endif
