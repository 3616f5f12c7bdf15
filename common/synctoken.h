/* synctoken: the opaque `next`/`after` sync token: a device's position in each of its groups.
 *
 * Format (v1), documented in docs/api.md: base64url without padding of
 *   0x01, then for each group whose position is past the member's join point, sorted by key:
 *   key (4 bytes, big-endian FNV-1a 32 of the group id) + position (unsigned LEB128 varint).
 * A group the token does not mention is read from the member's join point. Two of a user's groups
 * whose keys collide share one entry holding the lower position (a group without progress then
 * gets an entry at its join point): the device may then see a
 * message twice, never miss one. */
#ifndef MQS_SYNCTOKEN_H
#define MQS_SYNCTOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define SYNCTOKEN_MAX_LEN 65536 /* characters; longer tokens are rejected */

struct synctoken_entry {
	uint32_t key;
	int64_t seq; /* >= 0 */
};

/* The 32-bit key of a group id. */
uint32_t synctoken_key(const char *gid);

/* Sorts entries by key and merges equal keys into one entry with the lowest seq. Updates *n. */
void synctoken_normalize(struct synctoken_entry *e, size_t *n);

/* Encodes normalized entries. Returns a malloc'ed NUL-terminated string (caller frees), or NULL
 * on out of memory. */
MQS_MUST_CHECK char *synctoken_encode(const struct synctoken_entry *e, size_t n);

/* Decodes s. On success *out is a malloc'ed array (caller frees; may be NULL when *n is 0) sorted
 * by key without duplicates. Returns false, with *out NULL, for anything malformed: bad
 * characters, wrong version, truncated or overlong varints, unsorted keys, too long. */
MQS_MUST_CHECK bool synctoken_decode(const char *s, struct synctoken_entry **out, size_t *n);

/* Looks key up in decoded entries; true and *seq when present. */
bool synctoken_find(const struct synctoken_entry *e, size_t n, uint32_t key, int64_t *seq);

#endif
