/* spool: the plugin's write-ahead log of accepted group messages (SPEC 7.1).
 *
 * Every accepted message is appended (one write()) before the broker acknowledges it, and stays
 * until the database has committed it. The spool is a folder of segment files
 * "spool-<20-digit number>.log"; appends go to the newest segment, which is rotated past
 * segment_bytes. A segment is deleted once every record in it has been released. At start, every
 * record of every existing segment is replayed (the database deduplicates on origin).
 *
 * Record layout (little endian), checksummed so a torn tail is detected and ignored:
 *   u32 magic 0x4d515331 ("MQS1") | u32 body_len | u32 crc32(body) | body
 *   body: origin[16] | u64 received_ms | u8 qos | u8 group_len | u8 sender_len | u8 cid_len |
 *         u32 payload_len | group | sender | cid | payload
 *
 * Not thread-safe: owned by the broker thread. */
#ifndef MQS_PLUGIN_SPOOL_H
#define MQS_PLUGIN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MQS_ORIGIN_LEN 16

/* A message as spooled. For records read back, the pointers point into a buffer owned by the
 * callback's caller and valid only during the callback. */
struct mqs_spool_rec {
	uint8_t origin[MQS_ORIGIN_LEN];
	uint64_t received_ms;
	uint8_t qos;
	const char *group;
	uint8_t group_len;
	const char *sender;
	uint8_t sender_len;
	const char *cid; /* NULL/0 when absent */
	uint8_t cid_len;
	const void *payload;
	uint32_t payload_len;
};

struct mqs_spool;

/* Encoded size of rec (header + body). */
size_t mqs_spool_rec_size(const struct mqs_spool_rec *rec);

/* Encodes rec into buf (at least mqs_spool_rec_size bytes). Returns the bytes written. */
size_t mqs_spool_rec_encode(const struct mqs_spool_rec *rec, uint8_t *buf);

/* Decodes one record from buf[0..len). Returns the record's total size (> 0) and fills rec
 * (pointers into buf), 0 if buf holds only a prefix of a record (a torn tail), or -1 if the bytes
 * are not a valid record (bad magic, length or checksum). */
MQS_MUST_CHECK long mqs_spool_rec_decode(const uint8_t *buf, size_t len, struct mqs_spool_rec *rec);

/* Opens (creating if needed, mode 0700) the spool folder dir. segment_bytes: rotation threshold.
 * fsync: fdatasync after each append. Returns NULL with a message in err on failure. */
MQS_MUST_CHECK struct mqs_spool *mqs_spool_open(const char *dir, size_t segment_bytes, bool fsync, char *err,
                                                size_t errlen);

/* Calls fn(rec, segment, rec_size, arg) for every valid record in the segments that existed at open, oldest
 * first, and counts them as pending in their segment (release them like new appends). A torn or
 * corrupt tail ends that segment's replay (reported through *skipped_bytes, may be NULL).
 * Returns the number of records replayed, -1 on an I/O error (err set). Call once, before any
 * append. */
MQS_MUST_CHECK long mqs_spool_replay(struct mqs_spool *sp,
                                     void (*fn)(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size,
                                                void *arg),
                                     void *arg, uint64_t *skipped_bytes, char *err, size_t errlen);

/* Appends rec durably enough to survive kill -9 (and power loss with fsync). Sets *segment to the
 * segment holding it. Returns false (err set) if the write fails or the record's body exceeds
 * 300 MiB (decode rejects larger ones): the caller must refuse the message. */
MQS_MUST_CHECK bool mqs_spool_append(struct mqs_spool *sp, const struct mqs_spool_rec *rec, uint64_t *segment,
                                     char *err, size_t errlen);

/* Marks one record of segment, of encoded size rec_size, as committed. A segment that is no longer
 * the current one and has no pending record left is deleted. */
void mqs_spool_release(struct mqs_spool *sp, uint64_t segment, size_t rec_size);

/* Bytes of records appended or replayed and not yet released (the backpressure measure). */
uint64_t mqs_spool_pending_bytes(const struct mqs_spool *sp);

/* Records not yet released. */
uint64_t mqs_spool_pending_count(const struct mqs_spool *sp);

/* Closes files and frees sp; segments with pending records stay on disk for the next start.
 * Accepts NULL. */
void mqs_spool_close(struct mqs_spool *sp);

#endif
