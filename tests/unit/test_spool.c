/* Unit tests for plugin/spool.c: record codec (round trip, torn, corrupt), replay after a crash,
 * rotation and deletion of segments, torn tails on disk, accounting and failure paths. */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "spool.h"

#define HDR   12
#define FIXED 32

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	char *dir = strdup("/tmp/mqs-test-spool-XXXXXX");

	if(dir == NULL || mkdtemp(dir) == NULL) return -1;
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;

	chmod(dir, 0700);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

static char *seg_path(const char *dir, uint64_t num)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/spool-%020llu.log", dir, (unsigned long long)num);
	return path;
}

static bool seg_exists(const char *dir, uint64_t num)
{
	return access(seg_path(dir, num), F_OK) == 0;
}

static off_t seg_size(const char *dir, uint64_t num)
{
	struct stat st;
	assert_int_equal(stat(seg_path(dir, num), &st), 0);
	return st.st_size;
}

/* Files in dir whose name starts with "spool-". */
static int count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while((de = readdir(d)) != NULL) {
		if(strncmp(de->d_name, "spool-", 6) == 0) n++;
	}
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* A deterministic test record: i selects the contents. Strings live in storage owned by the caller. */
struct test_rec {
	struct mqs_spool_rec rec;
	char group[32], sender[32], cid[32];
	uint8_t payload[600];
};

static void make_rec(struct test_rec *t, unsigned i, size_t payload_len)
{
	memset(t, 0, sizeof(*t));
	for(int k = 0; k < MQS_ORIGIN_LEN; k++) t->rec.origin[k] = (uint8_t)(i * 31 + k);
	t->rec.received_ms = 1700000000000ull + i;
	t->rec.qos = (uint8_t)(i % 3);
	t->rec.group_len = (uint8_t)snprintf(t->group, sizeof(t->group), "g%u", i % 7);
	t->rec.group = t->group;
	t->rec.sender_len = (uint8_t)snprintf(t->sender, sizeof(t->sender), "user-%u", i);
	t->rec.sender = t->sender;
	if(i % 2) {
		t->rec.cid_len = (uint8_t)snprintf(t->cid, sizeof(t->cid), "cid-%u", i);
		t->rec.cid = t->cid;
	}
	assert_true(payload_len <= sizeof(t->payload));
	for(size_t k = 0; k < payload_len; k++) t->payload[k] = (uint8_t)(i + k * 7);
	t->rec.payload = t->payload;
	t->rec.payload_len = (uint32_t)payload_len;
}

static void assert_rec_equal(const struct mqs_spool_rec *a, const struct mqs_spool_rec *b)
{
	assert_memory_equal(a->origin, b->origin, MQS_ORIGIN_LEN);
	assert_true(a->received_ms == b->received_ms);
	assert_int_equal(a->qos, b->qos);
	assert_int_equal(a->group_len, b->group_len);
	if(a->group_len) assert_memory_equal(a->group, b->group, a->group_len);
	assert_int_equal(a->sender_len, b->sender_len);
	if(a->sender_len) assert_memory_equal(a->sender, b->sender, a->sender_len);
	assert_int_equal(a->cid_len, b->cid_len);
	assert_int_equal(a->cid == NULL, b->cid == NULL);
	if(a->cid_len) assert_memory_equal(a->cid, b->cid, a->cid_len);
	assert_int_equal(a->payload_len, b->payload_len);
	if(a->payload_len) assert_memory_equal(a->payload, b->payload, a->payload_len);
}

/* Encodes rec into a fresh heap buffer of exactly its size. */
static uint8_t *encode(const struct mqs_spool_rec *rec, size_t *size)
{
	uint8_t *buf;

	*size = mqs_spool_rec_size(rec);
	buf = malloc(*size);
	assert_non_null(buf);
	assert_int_equal(mqs_spool_rec_encode(rec, buf), *size);
	return buf;
}

/* Decodes buf[0..len) from an exact-size heap copy, so ASan sees any overread. */
static long decode_copy(const uint8_t *buf, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct mqs_spool_rec out;
	long r;

	assert_non_null(copy);
	if(len) memcpy(copy, buf, len);
	r = mqs_spool_rec_decode(copy, len, &out);
	free(copy);
	return r;
}

/* What replay saw. */
struct seen {
	size_t n;
	uint64_t origin0[256]; /* first 8 origin bytes, identifies the test record */
	uint64_t segment[256];
	size_t size[256];
	struct mqs_spool *release_into; /* when set, every record is released from inside fn */
};

static void collect(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 256);
	memcpy(&s->origin0[s->n], rec->origin, 8);
	s->segment[s->n] = segment;
	s->size[s->n] = rec_size;
	assert_int_equal(rec_size, mqs_spool_rec_size(rec));
	s->n++;
	if(s->release_into) mqs_spool_release(s->release_into, segment, rec_size);
}

static uint64_t origin0(const struct mqs_spool_rec *rec)
{
	uint64_t v;
	memcpy(&v, rec->origin, 8);
	return v;
}

/* ---- codec ---- */

static void roundtrip(const struct mqs_spool_rec *rec)
{
	size_t size;
	uint8_t *buf = encode(rec, &size);
	struct mqs_spool_rec out;

	assert_int_equal(size, HDR + FIXED + rec->group_len + rec->sender_len + (rec->cid ? rec->cid_len : 0) +
	                               rec->payload_len);
	assert_int_equal(mqs_spool_rec_decode(buf, size, &out), (long)size);
	assert_rec_equal(rec, &out);
	/* pointers point into buf */
	assert_true((const uint8_t *)out.payload >= buf && (const uint8_t *)out.payload <= buf + size);
	free(buf);
}

static void test_codec_roundtrip(void **state)
{
	struct test_rec t;
	struct mqs_spool_rec r;
	char g64[64], s64[64], c64[64], c255[255];
	static const uint8_t binary[] = {0, 1, 0, 0xff, 0, '\n', 0, 0x80, 0};

	make_rec(&t, 1, 100);
	roundtrip(&t.rec);
	make_rec(&t, 2, 0); /* no cid, empty payload */
	roundtrip(&t.rec);

	/* binary payload with NULs */
	make_rec(&t, 3, 0);
	t.rec.payload = binary;
	t.rec.payload_len = sizeof(binary);
	roundtrip(&t.rec);

	/* an empty (non-NULL) cid decodes as absent */
	make_rec(&t, 4, 10);
	t.rec.cid = "";
	t.rec.cid_len = 0;
	{
		size_t size;
		uint8_t *buf = encode(&t.rec, &size);
		struct mqs_spool_rec out;
		assert_int_equal(mqs_spool_rec_decode(buf, size, &out), (long)size);
		assert_null(out.cid);
		assert_int_equal(out.cid_len, 0);
		free(buf);
	}

	/* maximum id and cid lengths */
	memset(g64, 'g', sizeof(g64));
	memset(s64, 's', sizeof(s64));
	memset(c64, 'c', sizeof(c64));
	memset(c255, 'C', sizeof(c255));
	memset(&r, 0, sizeof(r));
	memset(r.origin, 0xab, sizeof(r.origin));
	r.received_ms = UINT64_MAX;
	r.qos = 2;
	r.group = g64;
	r.group_len = 64;
	r.sender = s64;
	r.sender_len = 64;
	r.cid = c64;
	r.cid_len = 64;
	r.payload = binary;
	r.payload_len = 0;
	roundtrip(&r);
	r.cid = c255;
	r.cid_len = 255;
	roundtrip(&r);

	/* a large payload */
	{
		size_t big = 1024 * 1024;
		uint8_t *p = malloc(big);
		assert_non_null(p);
		for(size_t k = 0; k < big; k++) p[k] = (uint8_t)(k * 2654435761u >> 13);
		r.payload = p;
		r.payload_len = (uint32_t)big;
		roundtrip(&r);
		free(p);
	}
}

static void test_codec_concatenated(void **state)
{
	struct test_rec a, b;
	size_t sa, sb;
	uint8_t *ea, *eb, *both;
	struct mqs_spool_rec out;

	make_rec(&a, 10, 50);
	make_rec(&b, 11, 70);
	ea = encode(&a.rec, &sa);
	eb = encode(&b.rec, &sb);
	both = malloc(sa + sb);
	assert_non_null(both);
	memcpy(both, ea, sa);
	memcpy(both + sa, eb, sb);
	assert_int_equal(mqs_spool_rec_decode(both, sa + sb, &out), (long)sa);
	assert_rec_equal(&a.rec, &out);
	assert_int_equal(mqs_spool_rec_decode(both + sa, sb, &out), (long)sb);
	assert_rec_equal(&b.rec, &out);
	free(both);
	free(ea);
	free(eb);
}

static void test_codec_torn(void **state)
{
	struct test_rec t;
	size_t size;
	uint8_t *buf;

	make_rec(&t, 5, 123);
	buf = encode(&t.rec, &size);
	for(size_t len = 0; len < size; len++) {
		long r = decode_copy(buf, len);
		if(r != 0) fail_msg("prefix of %zu/%zu bytes: decode %ld, want 0", len, size);
	}
	assert_int_equal(decode_copy(buf, size), (long)size);
	free(buf);
}

static void test_codec_corrupt(void **state)
{
	struct test_rec t;
	size_t size;
	uint8_t *buf;
	static const uint8_t masks[] = {0x01, 0x80, 0xff};

	make_rec(&t, 6, 200);
	buf = encode(&t.rec, &size);
	for(size_t i = 0; i < size; i++) {
		for(size_t m = 0; m < sizeof(masks); m++) {
			long r;
			buf[i] ^= masks[m];
			r = decode_copy(buf, size);
			buf[i] ^= masks[m];
			/* Only a changed body_len can look like a longer, torn record; nothing decodes. */
			if(r > 0 || (r == 0 && (i < 4 || i >= 8))) {
				fail_msg("byte %zu ^ 0x%02x: decode %ld", i, masks[m], r);
			}
		}
	}
	free(buf);
}

/* Builds a record whose checksum is right but whose inner lengths do not add up. */
static void test_codec_inconsistent_lengths(void **state)
{
	uint8_t buf[HDR + FIXED + 8];
	uint8_t *b = buf + HDR;
	uint32_t body_len = FIXED + 8;
	uint32_t crc;
	static const uint8_t variants[][5] = {
	        /* group, sender, cid, payload_len (low byte) */
	        {4, 4, 0, 1},   /* 9 > 8 */
	        {2, 2, 2, 1},   /* 7 < 8 */
	        {255, 0, 0, 0}, /* far past body */
	        {0, 0, 0, 200}, /* payload past body */
	};

	for(size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		memset(buf, 0, sizeof(buf));
		b[25] = variants[v][0];
		b[26] = variants[v][1];
		b[27] = variants[v][2];
		b[28] = variants[v][3];
		crc = (uint32_t)crc32(0L, b, body_len);
		buf[0] = 0x31, buf[1] = 0x53, buf[2] = 0x51, buf[3] = 0x4d;
		buf[4] = (uint8_t)body_len, buf[5] = buf[6] = buf[7] = 0;
		buf[8] = (uint8_t)crc, buf[9] = (uint8_t)(crc >> 8), buf[10] = (uint8_t)(crc >> 16),
		buf[11] = (uint8_t)(crc >> 24);
		assert_int_equal(decode_copy(buf, sizeof(buf)), -1);
	}
	/* and the consistent variant of the same construction decodes */
	memset(buf, 0, sizeof(buf));
	b[25] = 2, b[26] = 2, b[27] = 2, b[28] = 2;
	crc = (uint32_t)crc32(0L, b, body_len);
	buf[0] = 0x31, buf[1] = 0x53, buf[2] = 0x51, buf[3] = 0x4d, buf[4] = (uint8_t)body_len;
	buf[8] = (uint8_t)crc, buf[9] = (uint8_t)(crc >> 8), buf[10] = (uint8_t)(crc >> 16),
	buf[11] = (uint8_t)(crc >> 24);
	assert_int_equal(decode_copy(buf, sizeof(buf)), (long)sizeof(buf));
}

static void test_codec_garbage(void **state)
{
	uint8_t buf[256];
	uint32_t x = 12345;
	/* body_len below the fixed part, above the maximum */
	static const uint8_t small[] = {0x31, 0x53, 0x51, 0x4d, 31, 0, 0, 0};
	static const uint8_t huge[] = {0x31, 0x53, 0x51, 0x4d, 0, 0, 0, 0x20};
	static const uint8_t zeros[16] = {0};

	assert_int_equal(decode_copy(small, sizeof(small)), -1);
	assert_int_equal(decode_copy(huge, sizeof(huge)), -1);
	assert_int_equal(decode_copy(zeros, 1), -1);
	assert_int_equal(decode_copy(zeros, sizeof(zeros)), -1);
	assert_int_equal(decode_copy((const uint8_t *)"1SQ", 3), 0);
	assert_int_equal(decode_copy((const uint8_t *)"1SX", 3), -1);
	for(int round = 0; round < 20000; round++) {
		size_t len = round % sizeof(buf);
		for(size_t k = 0; k < len; k++) {
			x = x * 1103515245u + 12345u;
			buf[k] = (uint8_t)(x >> 16);
		}
		if(round % 2 && len >= 8) { /* valid magic and a plausible length */
			buf[0] = 0x31, buf[1] = 0x53, buf[2] = 0x51, buf[3] = 0x4d;
			buf[4] = (uint8_t)(32 + x % 200), buf[5] = buf[6] = buf[7] = 0;
		}
		assert_true(decode_copy(buf, len) <= 0);
	}
}

/* ---- spool files ---- */

static struct mqs_spool *open_ok(const char *dir, size_t segment_bytes, bool fsync)
{
	char err[256] = "";
	struct mqs_spool *sp = mqs_spool_open(dir, segment_bytes, fsync, err, sizeof(err));
	if(sp == NULL) fail_msg("open %s: %s", dir, err);
	return sp;
}

static long replay_ok(struct mqs_spool *sp, struct seen *s, uint64_t *skipped)
{
	char err[256] = "";
	long n = mqs_spool_replay(sp, collect, s, skipped, err, sizeof(err));
	if(n < 0) fail_msg("replay: %s", err);
	return n;
}

static uint64_t append_ok(struct mqs_spool *sp, const struct mqs_spool_rec *rec)
{
	char err[256] = "";
	uint64_t seg = 0;
	if(!mqs_spool_append(sp, rec, &seg, err, sizeof(err))) fail_msg("append: %s", err);
	return seg;
}

static void test_replay_after_crash(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct test_rec t;
	uint64_t segs[50], bytes = 0, skipped = 99;
	const unsigned N = 50;

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(replay_ok(sp, &s, &skipped), 0);
	assert_int_equal(skipped, 0);
	for(unsigned i = 0; i < N; i++) {
		make_rec(&t, i, i * 11 % 500);
		segs[i] = append_ok(sp, &t.rec);
		bytes += mqs_spool_rec_size(&t.rec);
	}
	assert_int_equal(mqs_spool_pending_count(sp), N);
	assert_int_equal(mqs_spool_pending_bytes(sp), bytes);
	mqs_spool_close(sp); /* "crash": nothing released */
	assert_int_equal(count_segments(dir), 1);

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(count_segments(dir), 2); /* the old one and a fresh current one */
	assert_int_equal(replay_ok(sp, &s, &skipped), N);
	assert_int_equal(skipped, 0);
	assert_int_equal(s.n, N);
	for(unsigned i = 0; i < N; i++) {
		make_rec(&t, i, i * 11 % 500);
		assert_true(s.origin0[i] == origin0(&t.rec));
		assert_true(s.segment[i] == segs[i]);
		assert_int_equal(s.size[i], mqs_spool_rec_size(&t.rec));
	}
	assert_int_equal(mqs_spool_pending_count(sp), N);
	assert_int_equal(mqs_spool_pending_bytes(sp), bytes);

	/* new appends go to a new segment, numbered after the old one */
	make_rec(&t, 1000, 10);
	uint64_t newseg = append_ok(sp, &t.rec);
	assert_true(newseg > segs[0]);

	for(unsigned i = 0; i < N; i++) {
		assert_true(seg_exists(dir, segs[0]));
		mqs_spool_release(sp, s.segment[i], s.size[i]);
	}
	assert_false(seg_exists(dir, segs[0]));
	assert_int_equal(mqs_spool_pending_count(sp), 1);
	mqs_spool_release(sp, newseg, mqs_spool_rec_size(&t.rec));
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(mqs_spool_pending_bytes(sp), 0);
	assert_true(seg_exists(dir, newseg)); /* current: kept while open */
	mqs_spool_close(sp);
	assert_int_equal(count_segments(dir), 0); /* nothing pending: clean */

	/* a replay of the emptied folder yields nothing */
	sp = open_ok(dir, 1 << 20, false);
	memset(&s, 0, sizeof(s));
	assert_int_equal(replay_ok(sp, &s, NULL), 0);
	mqs_spool_close(sp);
}

static void test_rotation(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct test_rec t;
	uint64_t segs[40];
	size_t sizes[40];
	const unsigned N = 40;
	uint64_t first, last;

	sp = open_ok(dir, 1000, false);
	assert_int_equal(replay_ok(sp, &(struct seen){0}, NULL), 0);
	for(unsigned i = 0; i < N; i++) {
		make_rec(&t, i, 200);
		sizes[i] = mqs_spool_rec_size(&t.rec);
		segs[i] = append_ok(sp, &t.rec);
		if(i > 0) assert_true(segs[i] >= segs[i - 1]);
	}
	first = segs[0];
	last = segs[N - 1];
	assert_true(last - first + 1 >= 5);
	assert_int_equal(count_segments(dir), (int)(last - first + 1));
	/* no segment grows past segment_bytes (each record is smaller than it) */
	for(uint64_t n = first; n <= last; n++) assert_true(seg_size(dir, n) <= 1000);

	/* release everything of the second segment first, out of order */
	for(int i = N - 1; i >= 0; i--) {
		if(segs[i] == first + 1) mqs_spool_release(sp, segs[i], sizes[i]);
	}
	assert_false(seg_exists(dir, first + 1));
	assert_true(seg_exists(dir, first));

	/* then everything: all but the current segment disappear */
	for(unsigned i = 0; i < N; i++) {
		if(segs[i] != first + 1) mqs_spool_release(sp, segs[i], sizes[i]);
	}
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(count_segments(dir), 1);
	assert_true(seg_exists(dir, last));

	/* an emptied current segment is deleted when it is rotated away */
	make_rec(&t, 99, 200);
	uint64_t now = last;
	for(unsigned i = 0; i < 10 && now == last; i++) {
		now = append_ok(sp, &t.rec);
		mqs_spool_release(sp, now, mqs_spool_rec_size(&t.rec));
	}
	assert_true(now == last + 1);
	assert_false(seg_exists(dir, last));
	assert_true(seg_exists(dir, now));
	mqs_spool_close(sp);
	assert_int_equal(count_segments(dir), 0);

	/* a record bigger than segment_bytes still goes in, alone */
	sp = open_ok(dir, 100, false);
	make_rec(&t, 7, 500);
	uint64_t a = append_ok(sp, &t.rec);
	uint64_t b = append_ok(sp, &t.rec);
	assert_true(b == a + 1);
	mqs_spool_close(sp);
}

static void test_torn_tail_on_disk(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct test_rec t;
	uint64_t seg = 0, skipped = 0;
	size_t size, total = 0;

	sp = open_ok(dir, 1 << 20, false);
	for(unsigned i = 0; i < 5; i++) {
		make_rec(&t, i, 100);
		seg = append_ok(sp, &t.rec);
		total += mqs_spool_rec_size(&t.rec);
	}
	size = mqs_spool_rec_size(&t.rec);
	mqs_spool_close(sp);
	assert_int_equal(seg_size(dir, seg), total);
	assert_int_equal(truncate(seg_path(dir, seg), (off_t)(total - 7)), 0);

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(replay_ok(sp, &s, &skipped), 4);
	assert_int_equal(skipped, size - 7);
	for(unsigned i = 0; i < 4; i++) {
		make_rec(&t, i, 100);
		assert_true(s.origin0[i] == origin0(&t.rec));
	}
	/* appends after a torn replay are fine and land in a new segment */
	make_rec(&t, 5, 100);
	uint64_t newseg = append_ok(sp, &t.rec);
	assert_true(newseg > seg);
	mqs_spool_close(sp);

	sp = open_ok(dir, 1 << 20, false);
	memset(&s, 0, sizeof(s));
	assert_int_equal(replay_ok(sp, &s, &skipped), 5);
	assert_int_equal(skipped, size - 7);
	assert_true(s.segment[4] == newseg);
	/* releasing the torn segment's records deletes it, torn tail and all */
	for(unsigned i = 0; i < 5; i++) mqs_spool_release(sp, s.segment[i], s.size[i]);
	assert_false(seg_exists(dir, seg));
	assert_false(seg_exists(dir, newseg));
	mqs_spool_close(sp);
	assert_int_equal(count_segments(dir), 0);
}

static void test_corrupt_middle_on_disk(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct test_rec t;
	uint64_t seg = 0, skipped = 0;
	size_t sizes[5], total = 0;
	int fd;
	uint8_t byte;

	sp = open_ok(dir, 1 << 20, false);
	for(unsigned i = 0; i < 5; i++) {
		make_rec(&t, i, 100);
		seg = append_ok(sp, &t.rec);
		sizes[i] = mqs_spool_rec_size(&t.rec);
		total += sizes[i];
	}
	mqs_spool_close(sp);

	/* flip a payload byte of the third record */
	fd = open(seg_path(dir, seg), O_RDWR);
	assert_true(fd >= 0);
	off_t at = (off_t)(sizes[0] + sizes[1] + sizes[2] - 10);
	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	close(fd);

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(replay_ok(sp, &s, &skipped), 2);
	assert_int_equal(skipped, total - sizes[0] - sizes[1]);
	assert_int_equal(mqs_spool_pending_count(sp), 2);
	mqs_spool_close(sp);
}

static void test_old_segments_without_records(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct test_rec t;
	uint64_t skipped = 0;
	static const char garbage[] = "this is not a spool record";
	char path[512];
	size_t size;
	uint8_t *rec;

	/* empty, garbage, torn-only, and files that are not segments */
	write_file(seg_path(dir, 3), "", 0);
	write_file(seg_path(dir, 5), garbage, sizeof(garbage));
	make_rec(&t, 1, 50);
	rec = encode(&t.rec, &size);
	write_file(seg_path(dir, 4), rec, size / 2);
	snprintf(path, sizeof(path), "%s/spool-1.log", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/spool-00000000000000000009.log", dir);
	assert_int_equal(mkdir(path, 0700), 0); /* a folder with a segment name is not a segment */

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(replay_ok(sp, &s, &skipped), 0);
	assert_int_equal(skipped, sizeof(garbage) + size / 2);
	assert_false(seg_exists(dir, 3));
	assert_false(seg_exists(dir, 4));
	assert_false(seg_exists(dir, 5));
	/* numbering continues after the highest segment file */
	assert_int_equal(append_ok(sp, &t.rec), 6);
	mqs_spool_close(sp);
	snprintf(path, sizeof(path), "%s/spool-1.log", dir);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	assert_int_equal(access(path, F_OK), 0);
	free(rec);
}

static void test_replay_order_and_release_in_fn(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct test_rec t;
	uint64_t segs[30];

	/* three sessions leave three old segments, several after rotation */
	for(unsigned session = 0; session < 3; session++) {
		sp = open_ok(dir, 2000, false);
		for(unsigned i = 0; i < 10; i++) {
			make_rec(&t, session * 10 + i, 300);
			segs[session * 10 + i] = append_ok(sp, &t.rec);
		}
		mqs_spool_close(sp);
	}
	assert_true(count_segments(dir) >= 6);

	sp = open_ok(dir, 2000, false);
	s.release_into = sp;
	assert_int_equal(replay_ok(sp, &s, NULL), 30);
	for(unsigned i = 0; i < 30; i++) {
		make_rec(&t, i, 300);
		assert_true(s.origin0[i] == origin0(&t.rec));
		assert_true(s.segment[i] == segs[i]);
	}
	/* every record released during replay: all old segments gone, only the current one left */
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(mqs_spool_pending_bytes(sp), 0);
	assert_int_equal(count_segments(dir), 1);
	mqs_spool_close(sp);
	assert_int_equal(count_segments(dir), 0);
}

static void test_pending_accounting(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct test_rec a, b;
	uint64_t sa, sb;
	size_t za, zb;

	sp = open_ok(dir, 1 << 20, true); /* also exercises fdatasync and the folder fsync */
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(mqs_spool_pending_bytes(sp), 0);
	make_rec(&a, 1, 10);
	make_rec(&b, 2, 400);
	za = mqs_spool_rec_size(&a.rec);
	zb = mqs_spool_rec_size(&b.rec);
	sa = append_ok(sp, &a.rec);
	sb = append_ok(sp, &b.rec);
	assert_true(sa == sb);
	assert_int_equal(seg_size(dir, sa), za + zb);
	assert_int_equal(mqs_spool_pending_count(sp), 2);
	assert_int_equal(mqs_spool_pending_bytes(sp), za + zb);
	mqs_spool_release(sp, sa, za);
	assert_int_equal(mqs_spool_pending_count(sp), 1);
	assert_int_equal(mqs_spool_pending_bytes(sp), zb);
	mqs_spool_release(sp, sa + 100, za); /* unknown segment: ignored */
	assert_int_equal(mqs_spool_pending_count(sp), 1);
	mqs_spool_release(sp, sb, zb);
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(mqs_spool_pending_bytes(sp), 0);
	mqs_spool_release(sp, sb, zb); /* more than pending: ignored, no underflow */
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	assert_int_equal(mqs_spool_pending_bytes(sp), 0);
	mqs_spool_close(sp);
	mqs_spool_close(NULL);
}

static void test_open_errors(void **state)
{
	const char *dir = *state;
	char path[512], err[256];
	struct mqs_spool *sp;

	/* a regular file where a folder must be */
	snprintf(path, sizeof(path), "%s/file", dir);
	write_file(path, "x", 1);
	snprintf(path, sizeof(path), "%s/file/spool", dir);
	err[0] = '\0';
	assert_null(mqs_spool_open(path, 1000, false, err, sizeof(err)));
	assert_non_null(strstr(err, "/file"));
	assert_non_null(strstr(err, strerror(ENOTDIR)));
	snprintf(path, sizeof(path), "%s/file", dir);
	assert_null(mqs_spool_open(path, 1000, false, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_null(mqs_spool_open("", 1000, false, err, sizeof(err)));
	assert_null(mqs_spool_open(path, 1000, false, NULL, 0)); /* err is optional */

	/* mkdir -p, mode 0700 */
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	sp = open_ok(path, 1000, false);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	mqs_spool_close(sp);

	/* a read-only folder: root ignores permission bits, so as root (CI) the case runs in a child
	 * that drops to nobody; a non-root run checks it directly */
	snprintf(path, sizeof(path), "%s/ro", dir);
	assert_int_equal(mkdir(path, 0555), 0);
	assert_int_equal(chmod(dir, 0755), 0); /* nobody must reach ro/ */
	if(geteuid() == 0) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if(pid == 0) {
			if(setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
			sp = mqs_spool_open(path, 1000, false, err, sizeof(err));
			_exit(sp == NULL && strstr(err, path) != NULL ? 0 : 1);
		}
		int wst = 0;
		assert_int_equal(waitpid(pid, &wst, 0), pid);
		assert_true(WIFEXITED(wst));
		assert_int_equal(WEXITSTATUS(wst), 0);
	} else {
		assert_null(mqs_spool_open(path, 1000, false, err, sizeof(err)));
		assert_non_null(strstr(err, path));
	}
	/* and one no one can write, root included: a folder of procfs */
	err[0] = '\0';
	assert_null(mqs_spool_open("/proc/self/fdinfo", 1000, false, err, sizeof(err)));
	assert_non_null(strstr(err, "/proc/self/fdinfo"));
	chmod(path, 0700);
	chmod(dir, 0700);
}

static void test_replay_misuse(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct test_rec t;
	char err[256];

	sp = open_ok(dir, 1000, false);
	assert_int_equal(replay_ok(sp, &(struct seen){0}, NULL), 0);
	err[0] = '\0';
	assert_int_equal(mqs_spool_replay(sp, collect, &(struct seen){0}, NULL, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	mqs_spool_close(sp);

	sp = open_ok(dir, 1000, false);
	make_rec(&t, 1, 10);
	append_ok(sp, &t.rec);
	assert_int_equal(mqs_spool_replay(sp, collect, &(struct seen){0}, NULL, err, sizeof(err)), -1);
	mqs_spool_close(sp);
}

static void test_append_too_large(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct test_rec t;
	char err[256] = "";
	uint64_t seg;

	sp = open_ok(dir, 1000, false);
	make_rec(&t, 1, 10);
	t.rec.payload_len = 301u * 1024 * 1024; /* refused before the payload is read */
	assert_false(mqs_spool_append(sp, &t.rec, &seg, err, sizeof(err)));
	assert_non_null(strstr(err, "too large"));
	assert_int_equal(mqs_spool_pending_count(sp), 0);
	mqs_spool_close(sp);
}

/* A file size limit makes write() come up short and then fail: the append must fail and leave
 * the segment exactly as it was, and later appends must work again. */
static void test_append_failure(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct test_rec t;
	struct rlimit old, lim;
	struct seen s = {0};
	char err[256] = "";
	uint64_t seg, seg2, seg3;
	size_t size;
	void (*oldsig)(int);

	sp = open_ok(dir, 1 << 20, false);
	make_rec(&t, 1, 100);
	seg = append_ok(sp, &t.rec);
	append_ok(sp, &t.rec);
	size = mqs_spool_rec_size(&t.rec);
	assert_int_equal(seg_size(dir, seg), 2 * size);

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	oldsig = signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 2 * size + 50;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	make_rec(&t, 2, 500);
	assert_false(mqs_spool_append(sp, &t.rec, &seg2, err, sizeof(err)));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);

	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, strerror(EFBIG)));
	assert_int_equal(seg_size(dir, seg), 2 * (off_t)size); /* no partial record */
	assert_int_equal(mqs_spool_pending_count(sp), 2);

	seg3 = append_ok(sp, &t.rec);
	assert_true(seg3 > seg); /* the failed segment is not appended to again */
	mqs_spool_close(sp);

	sp = open_ok(dir, 1 << 20, false);
	assert_int_equal(replay_ok(sp, &s, NULL), 3);
	assert_true(s.segment[0] == seg && s.segment[1] == seg && s.segment[2] == seg3);
	mqs_spool_close(sp);
}

static void test_large_records_on_disk(void **state)
{
	const char *dir = *state;
	struct mqs_spool *sp;
	struct seen s = {0};
	struct mqs_spool_rec r = {0};
	size_t big = 1024 * 1024 + 3;
	uint8_t *p = malloc(big);

	assert_non_null(p);
	for(size_t k = 0; k < big; k++) p[k] = (uint8_t)(k ^ (k >> 9));
	r.group = "g";
	r.group_len = 1;
	r.sender = "u";
	r.sender_len = 1;
	r.payload = p;
	r.payload_len = (uint32_t)big;
	sp = open_ok(dir, 4 << 20, false);
	for(int i = 0; i < 3; i++) {
		r.origin[0] = (uint8_t)i;
		append_ok(sp, &r);
	}
	mqs_spool_close(sp);
	sp = open_ok(dir, 4 << 20, false);
	assert_int_equal(replay_ok(sp, &s, NULL), 3);
	for(int i = 0; i < 3; i++) assert_int_equal(s.size[i], mqs_spool_rec_size(&r));
	assert_int_equal(mqs_spool_pending_bytes(sp), 3 * mqs_spool_rec_size(&r));
	mqs_spool_close(sp);
	free(p);
}

#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_codec_roundtrip),
	        cmocka_unit_test(test_codec_concatenated),
	        cmocka_unit_test(test_codec_torn),
	        cmocka_unit_test(test_codec_corrupt),
	        cmocka_unit_test(test_codec_inconsistent_lengths),
	        cmocka_unit_test(test_codec_garbage),
	        DIR_TEST(test_replay_after_crash),
	        DIR_TEST(test_rotation),
	        DIR_TEST(test_torn_tail_on_disk),
	        DIR_TEST(test_corrupt_middle_on_disk),
	        DIR_TEST(test_old_segments_without_records),
	        DIR_TEST(test_replay_order_and_release_in_fn),
	        DIR_TEST(test_pending_accounting),
	        DIR_TEST(test_open_errors),
	        DIR_TEST(test_replay_misuse),
	        DIR_TEST(test_append_too_large),
	        DIR_TEST(test_append_failure),
	        DIR_TEST(test_large_records_on_disk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
