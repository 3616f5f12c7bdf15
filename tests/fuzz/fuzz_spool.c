/* fuzz_spool: mqs_spool_rec_decode (plugin/spool.c) on any bytes, as read back from a segment: a valid
 * record re-encodes to the same bytes and each of its prefixes is torn (0), never corrupt; the same
 * bytes behind a correct header reach the body checks; a record built from the input round-trips. */
#include <zlib.h>

#include "fuzz.h"
#include "spool.h"

/* The layout spool.h documents. */
#define HDR_LEN    12u
#define BODY_FIXED (MQS_ORIGIN_LEN + 8u + 4u + 4u)
#define MAGIC      0x4d515331u

static void put32(uint8_t *p, uint32_t v)
{
	for(int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decoded records point into buf, inside the record's own bytes. */
static void check_fields(const uint8_t *buf, long r, const struct mqs_spool_rec *rec)
{
	const uint8_t *end = buf + r;

	FUZZ_CHECK((const uint8_t *)rec->group >= buf && (const uint8_t *)rec->group + rec->group_len <= end);
	FUZZ_CHECK((const uint8_t *)rec->sender >= buf && (const uint8_t *)rec->sender + rec->sender_len <= end);
	FUZZ_CHECK((rec->cid == NULL) == (rec->cid_len == 0));
	FUZZ_CHECK((const uint8_t *)rec->payload + rec->payload_len == end);
	FUZZ_CHECK(mqs_spool_rec_size(rec) == (size_t)r);
}

/* decode(bytes) = rec  =>  encode(rec) = bytes, and every prefix of bytes is a torn tail. */
static void check_valid(const uint8_t *buf, long r, const struct mqs_spool_rec *rec)
{
	uint8_t *again = fuzz_dup(buf, 0 + (size_t)r);
	struct mqs_spool_rec tmp;
	size_t step = (size_t)r > 512 ? (size_t)r / 256 : 1;

	check_fields(buf, r, rec);
	FUZZ_CHECK(mqs_spool_rec_encode(rec, again) == (size_t)r);
	FUZZ_CHECK(memcmp(again, buf, (size_t)r) == 0);
	free(again);
	for(size_t len = 0; len < (size_t)r; len += step) FUZZ_CHECK(mqs_spool_rec_decode(buf, len, &tmp) == 0);
	FUZZ_CHECK(mqs_spool_rec_decode(buf, (size_t)r - 1, &tmp) == 0);
}

/* The input as a body behind a correct header: valid exactly when the inner lengths add up. */
static void check_with_header(const uint8_t *data, size_t size)
{
	struct mqs_spool_rec rec;
	uint8_t *buf;
	size_t body;
	long r;

	if(size < HDR_LEN) return;
	buf = fuzz_dup(data, size);
	body = size - HDR_LEN;
	put32(buf, MAGIC);
	put32(buf + 4, (uint32_t)body);
	put32(buf + 8, (uint32_t)crc32(0L, buf + HDR_LEN, (uInt)body));
	r = mqs_spool_rec_decode(buf, size, &rec);
	if(body < BODY_FIXED) {
		FUZZ_CHECK(r == -1);
	} else {
		const uint8_t *b = buf + HDR_LEN;
		uint64_t inner = (uint64_t)BODY_FIXED + b[25] + b[26] + b[27] + get32(b + 28);
		FUZZ_CHECK(r == (inner == body ? (long)size : -1));
		if(r > 0) check_valid(buf, r, &rec);
	}
	/* One flipped body bit is corrupt (-1): CRC-32 detects every single-bit error. */
	if(body > 0) {
		buf[HDR_LEN + data[0] % body] ^= (uint8_t)(1u << (data[1] % 8));
		FUZZ_CHECK(mqs_spool_rec_decode(buf, size, &rec) == -1);
	}
	free(buf);
}

/* A record built from the input's bytes encodes and decodes to itself. */
static void check_built(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct mqs_spool_rec rec, back;
	size_t got, n;
	const uint8_t *p;
	uint8_t *buf;

	memset(&rec, 0, sizeof(rec));
	p = fuzz_bytes(&in, MQS_ORIGIN_LEN, &got);
	memcpy(rec.origin, p, got);
	rec.received_ms = fuzz_u64(&in);
	rec.qos = fuzz_u8(&in);
	rec.group = (const char *)fuzz_bytes(&in, fuzz_u8(&in), &n);
	rec.group_len = (uint8_t)n;
	rec.sender = (const char *)fuzz_bytes(&in, fuzz_u8(&in), &n);
	rec.sender_len = (uint8_t)n;
	uint8_t cid = fuzz_u8(&in);
	if(cid & 1) {
		rec.cid = (const char *)fuzz_bytes(&in, cid >> 1, &n);
		rec.cid_len = (uint8_t)n;
		if(n == 0) rec.cid = NULL;
	}
	rec.payload = fuzz_bytes(&in, in.n, &n);
	rec.payload_len = (uint32_t)n;

	size_t total = mqs_spool_rec_size(&rec);
	buf = malloc(total);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(mqs_spool_rec_encode(&rec, buf) == total);
	FUZZ_CHECK(mqs_spool_rec_decode(buf, total, &back) == (long)total);
	FUZZ_CHECK(memcmp(back.origin, rec.origin, MQS_ORIGIN_LEN) == 0);
	FUZZ_CHECK(back.received_ms == rec.received_ms && back.qos == rec.qos);
	FUZZ_CHECK(back.group_len == rec.group_len && memcmp(back.group, rec.group, rec.group_len) == 0);
	FUZZ_CHECK(back.sender_len == rec.sender_len && memcmp(back.sender, rec.sender, rec.sender_len) == 0);
	FUZZ_CHECK(back.cid_len == rec.cid_len && (rec.cid == NULL) == (back.cid == NULL));
	if(rec.cid != NULL) FUZZ_CHECK(memcmp(back.cid, rec.cid, rec.cid_len) == 0);
	FUZZ_CHECK(back.payload_len == rec.payload_len && memcmp(back.payload, rec.payload, rec.payload_len) == 0);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mqs_spool_rec rec;
	long r = mqs_spool_rec_decode(data, size, &rec);

	FUZZ_CHECK(r >= -1 && (r <= 0 || (size_t)r <= size));
	if(r > 0) check_valid(data, r, &rec);
	check_with_header(data, size);
	check_built(data, size);
	return 0;
}
