/* spool: the write-ahead spool of accepted messages: record codec, segment files, replay, release. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SPOOL_MAGIC      0x4d515331u
#define SPOOL_HDR_LEN    12u
#define SPOOL_BODY_FIXED (MQS_ORIGIN_LEN + 8u + 4u + 4u)
/* Larger bodies are refused by append and treated as garbage by decode. */
#define SPOOL_BODY_MAX    (300u * 1024u * 1024u)
#define SPOOL_NAME_PREFIX "spool-"
#define SPOOL_NAME_SUFFIX ".log"
#define SPOOL_NAME_LEN    30 /* prefix + 20 digits + suffix */
#define SPOOL_READ_CHUNK  (64u * 1024u)

/* One segment file and the records in it that are not released yet. */
struct spool_seg {
	uint64_t num;
	uint64_t pending_count;
	uint64_t pending_bytes;
	bool old; /* existed at open: replayed, never appended to */
};

struct mqs_spool {
	char *dir;
	int dirfd;
	size_t segment_bytes;
	bool fsync;
	struct spool_seg *segs; /* ascending by num */
	size_t nsegs;
	size_t capsegs;
	int cur_fd; /* -1 when there is no current segment: the next append creates one */
	uint64_t cur_num;
	uint64_t cur_size;
	uint64_t next_num;
	bool replayed;
	bool appended;
	bool in_replay; /* replaying segment `replaying`: release must not delete it yet */
	uint64_t replaying;
	uint64_t pending_count;
	uint64_t pending_bytes;
	uint8_t *buf; /* encode buffer, reused by appends */
	size_t bufcap;
};

__attribute__((format(printf, 3, 4))) static void spool__err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if(err == NULL || errlen == 0) return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void spool__put32(uint8_t *p, uint32_t v)
{
	for(int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void spool__put64(uint8_t *p, uint64_t v)
{
	for(int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t spool__get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t spool__get64(const uint8_t *p)
{
	return (uint64_t)spool__get32(p) | (uint64_t)spool__get32(p + 4) << 32;
}

/* A record's cid length: a NULL cid is absent whatever cid_len says. */
static size_t spool__cid_len(const struct mqs_spool_rec *rec)
{
	return rec->cid != NULL ? rec->cid_len : 0;
}

size_t mqs_spool_rec_size(const struct mqs_spool_rec *rec)
{
	return SPOOL_HDR_LEN + SPOOL_BODY_FIXED + (size_t)rec->group_len + rec->sender_len + spool__cid_len(rec) +
	       rec->payload_len;
}

/* Encodes rec. The body must not exceed SPOOL_BODY_MAX (mqs_spool_append checks; decode would
 * reject such a record). */
size_t mqs_spool_rec_encode(const struct mqs_spool_rec *rec, uint8_t *buf)
{
	size_t total = mqs_spool_rec_size(rec);
	size_t cid_len = spool__cid_len(rec);
	uint8_t *p = buf + SPOOL_HDR_LEN;

	memcpy(p, rec->origin, MQS_ORIGIN_LEN);
	p += MQS_ORIGIN_LEN;
	spool__put64(p, rec->received_ms);
	p += 8;
	*p++ = rec->qos;
	*p++ = rec->group_len;
	*p++ = rec->sender_len;
	*p++ = (uint8_t)cid_len;
	spool__put32(p, rec->payload_len);
	p += 4;
	if(rec->group_len > 0) memcpy(p, rec->group, rec->group_len);
	p += rec->group_len;
	if(rec->sender_len > 0) memcpy(p, rec->sender, rec->sender_len);
	p += rec->sender_len;
	if(cid_len > 0) memcpy(p, rec->cid, cid_len);
	p += cid_len;
	if(rec->payload_len > 0) memcpy(p, rec->payload, rec->payload_len);

	spool__put32(buf, SPOOL_MAGIC);
	spool__put32(buf + 4, (uint32_t)(total - SPOOL_HDR_LEN));
	spool__put32(buf + 8, (uint32_t)crc32(0L, buf + SPOOL_HDR_LEN, (uInt)(total - SPOOL_HDR_LEN)));
	return total;
}

/* Decodes without reading past buf[len): every length is checked against what is present before
 * it is used, and the inner lengths must add up to body_len exactly. A prefix of a valid record is
 * always 0 (torn), never -1, so a torn tail is not mistaken for corruption. */
long mqs_spool_rec_decode(const uint8_t *buf, size_t len, struct mqs_spool_rec *rec)
{
	uint8_t magic[4];
	uint32_t body_len;
	const uint8_t *b;
	uint64_t inner;

	if(len == 0) return 0;
	spool__put32(magic, SPOOL_MAGIC);
	if(memcmp(buf, magic, len < 4 ? len : 4) != 0) return -1;
	if(len < 8) return 0;
	body_len = spool__get32(buf + 4);
	if(body_len < SPOOL_BODY_FIXED || body_len > SPOOL_BODY_MAX) return -1;
	if(len < SPOOL_HDR_LEN || len - SPOOL_HDR_LEN < body_len) return 0;
	b = buf + SPOOL_HDR_LEN;
	if((uint32_t)crc32(0L, b, body_len) != spool__get32(buf + 8)) return -1;

	inner = (uint64_t)SPOOL_BODY_FIXED + b[25] + b[26] + b[27] + spool__get32(b + 28);
	if(inner != body_len) return -1;

	memcpy(rec->origin, b, MQS_ORIGIN_LEN);
	rec->received_ms = spool__get64(b + 16);
	rec->qos = b[24];
	rec->group_len = b[25];
	rec->sender_len = b[26];
	rec->cid_len = b[27];
	rec->payload_len = spool__get32(b + 28);
	b += SPOOL_BODY_FIXED;
	rec->group = (const char *)b;
	b += rec->group_len;
	rec->sender = (const char *)b;
	b += rec->sender_len;
	rec->cid = rec->cid_len > 0 ? (const char *)b : NULL;
	b += rec->cid_len;
	rec->payload = b;
	return (long)(SPOOL_HDR_LEN + body_len);
}

static void spool__name(uint64_t num, char name[SPOOL_NAME_LEN + 1])
{
	snprintf(name, SPOOL_NAME_LEN + 1, SPOOL_NAME_PREFIX "%020llu" SPOOL_NAME_SUFFIX, (unsigned long long)num);
}

/* Parses a segment file name; false for any other name. */
static bool spool__parse_name(const char *name, uint64_t *num)
{
	const char *digits = name + strlen(SPOOL_NAME_PREFIX);
	unsigned long long v;
	char *end;

	if(strlen(name) != SPOOL_NAME_LEN) return false;
	if(strncmp(name, SPOOL_NAME_PREFIX, strlen(SPOOL_NAME_PREFIX)) != 0) return false;
	if(strcmp(digits + 20, SPOOL_NAME_SUFFIX) != 0) return false;
	for(int i = 0; i < 20; i++) {
		if(digits[i] < '0' || digits[i] > '9') return false;
	}
	errno = 0;
	v = strtoull(digits, &end, 10);
	if(errno != 0 || end != digits + 20) return false;
	*num = v;
	return true;
}

/* The tracked segment num, or NULL. */
static struct spool_seg *spool__seg_find(const struct mqs_spool *sp, uint64_t num)
{
	size_t lo = 0, hi = sp->nsegs;

	while(lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if(sp->segs[mid].num == num) return &sp->segs[mid];
		if(sp->segs[mid].num < num) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

/* Tracks segment num. Callers keep segs sorted (open sorts after its scan; new segments are
 * numbered above every existing one). False on out of memory. */
static bool spool__seg_add(struct mqs_spool *sp, uint64_t num, bool old)
{
	if(sp->nsegs == sp->capsegs) {
		size_t cap = sp->capsegs ? sp->capsegs * 2 : 8;
		struct spool_seg *segs = realloc(sp->segs, cap * sizeof(*segs));
		if(segs == NULL) return false;
		sp->segs = segs;
		sp->capsegs = cap;
	}
	sp->segs[sp->nsegs++] = (struct spool_seg){.num = num, .old = old};
	return true;
}

/* Unlinks segment seg and stops tracking it. An unlink failure is ignored: the file is replayed
 * again at the next start, and the database deduplicates on origin. */
static void spool__seg_delete(struct mqs_spool *sp, struct spool_seg *seg)
{
	char name[SPOOL_NAME_LEN + 1];
	size_t i = (size_t)(seg - sp->segs);

	spool__name(seg->num, name);
	(void)unlinkat(sp->dirfd, name, 0);
	sp->pending_count -= seg->pending_count;
	sp->pending_bytes -= seg->pending_bytes;
	memmove(&sp->segs[i], &sp->segs[i + 1], (sp->nsegs - i - 1) * sizeof(*seg));
	sp->nsegs--;
}

/* Closes the current segment; it is deleted if nothing in it is pending. */
static void spool__retire_current(struct mqs_spool *sp)
{
	struct spool_seg *seg;

	if(sp->cur_fd < 0) return;
	close(sp->cur_fd);
	sp->cur_fd = -1;
	seg = spool__seg_find(sp, sp->cur_num);
	if(seg != NULL && seg->pending_count == 0) spool__seg_delete(sp, seg);
}

/* Creates the next segment and makes it current (retiring the previous one). On failure the
 * previous current segment stays current; returns false with err set. */
static bool spool__rotate(struct mqs_spool *sp, char *err, size_t errlen)
{
	char name[SPOOL_NAME_LEN + 1];
	uint64_t num = sp->next_num;
	int fd;

	if(num == 0) {
		spool__err(err, errlen, "spool %s: segment numbers exhausted", sp->dir);
		return false;
	}
	spool__name(num, name);
	fd = openat(sp->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if(fd < 0) {
		spool__err(err, errlen, "cannot create spool segment %s/%s: %s", sp->dir, name, strerror(errno));
		return false;
	}
	/* The new file's directory entry must be durable before records in it are acknowledged. */
	if(sp->fsync && fsync(sp->dirfd) != 0) {
		spool__err(err, errlen, "cannot fsync spool folder %s: %s", sp->dir, strerror(errno));
		goto fail;
	}
	if(!spool__seg_add(sp, num, false)) {
		spool__err(err, errlen, "spool %s: out of memory", sp->dir);
		goto fail;
	}
	spool__retire_current(sp);
	sp->cur_fd = fd;
	sp->cur_num = num;
	sp->cur_size = 0;
	sp->next_num = num + 1;
	return true;

fail:
	close(fd);
	(void)unlinkat(sp->dirfd, name, 0);
	return false;
}

/* mkdir -p dir with mode 0700 for the folders it creates. False with err naming the folder. */
static bool spool__mkdirs(const char *dir, char *err, size_t errlen)
{
	char *path = strdup(dir);
	bool ok = false;

	if(path == NULL) {
		spool__err(err, errlen, "spool %s: out of memory", dir);
		return false;
	}
	for(char *p = path + 1; *p != '\0'; p++) {
		if(*p != '/') continue;
		*p = '\0';
		if(mkdir(path, 0700) != 0 && errno != EEXIST) {
			spool__err(err, errlen, "cannot create spool folder %s: %s", path, strerror(errno));
			goto done;
		}
		*p = '/';
	}
	if(mkdir(path, 0700) != 0 && errno != EEXIST) {
		spool__err(err, errlen, "cannot create spool folder %s: %s", path, strerror(errno));
		goto done;
	}
	ok = true;
done:
	free(path);
	return ok;
}

static int spool__seg_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct spool_seg *)a)->num, y = ((const struct spool_seg *)b)->num;
	return x < y ? -1 : x > y;
}

/* Tracks every segment file already in the folder as old, and numbers new ones after them. */
static bool spool__scan(struct mqs_spool *sp, char *err, size_t errlen)
{
	DIR *d = opendir(sp->dir);
	struct dirent *de;
	uint64_t max = 0;

	if(d == NULL) {
		spool__err(err, errlen, "cannot read spool folder %s: %s", sp->dir, strerror(errno));
		return false;
	}
	for(;;) {
		struct stat st;
		uint64_t num;

		errno = 0;
		de = readdir(d);
		if(de == NULL) break;
		if(!spool__parse_name(de->d_name, &num)) continue;
		if(fstatat(sp->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
		if(!spool__seg_add(sp, num, true)) {
			spool__err(err, errlen, "spool %s: out of memory", sp->dir);
			goto fail;
		}
		if(num > max) max = num;
	}
	if(errno != 0) {
		spool__err(err, errlen, "cannot read spool folder %s: %s", sp->dir, strerror(errno));
		goto fail;
	}
	closedir(d);
	if(sp->nsegs > 1) qsort(sp->segs, sp->nsegs, sizeof(*sp->segs), spool__seg_cmp);
	sp->next_num = max + 1; /* 0 after UINT64_MAX: rotate reports exhaustion */
	return true;

fail:
	closedir(d);
	return false;
}

/* Creates the folder, tracks its segments and creates the first new segment now, so that a folder
 * we cannot write to fails the open rather than every append. */
struct mqs_spool *mqs_spool_open(const char *dir, size_t segment_bytes, bool fsync, char *err, size_t errlen)
{
	struct mqs_spool *sp;

	if(dir == NULL || dir[0] == '\0') {
		spool__err(err, errlen, "spool folder not set");
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if(sp == NULL) {
		spool__err(err, errlen, "spool %s: out of memory", dir);
		return NULL;
	}
	sp->dirfd = -1;
	sp->cur_fd = -1;
	sp->segment_bytes = segment_bytes;
	sp->fsync = fsync;
	sp->dir = strdup(dir);
	if(sp->dir == NULL) {
		spool__err(err, errlen, "spool %s: out of memory", dir);
		goto fail;
	}
	if(!spool__mkdirs(dir, err, errlen)) goto fail;
	sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if(sp->dirfd < 0) {
		spool__err(err, errlen, "cannot open spool folder %s: %s", dir, strerror(errno));
		goto fail;
	}
	if(!spool__scan(sp, err, errlen)) goto fail;
	if(!spool__rotate(sp, err, errlen)) goto fail;
	return sp;

fail:
	mqs_spool_close(sp);
	return NULL;
}

/* Replays segment num into fn. Returns the records replayed, -1 on an I/O error (err set). */
static long spool__replay_seg(struct mqs_spool *sp, uint64_t num,
                              void (*fn)(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size, void *arg),
                              void *arg, uint64_t *skipped, char *err, size_t errlen)
{
	char name[SPOOL_NAME_LEN + 1];
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap = SPOOL_READ_CHUNK, have = 0, pos = 0;
	uint64_t offset = 0; /* file offset of buf[0] */
	bool eof = false;
	long n = 0;
	int fd;

	spool__name(num, name);
	fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
	if(fd < 0 || fstat(fd, &st) != 0) {
		spool__err(err, errlen, "cannot read spool segment %s/%s: %s", sp->dir, name, strerror(errno));
		goto fail;
	}
	buf = malloc(cap);
	if(buf == NULL) {
		spool__err(err, errlen, "spool %s: out of memory", sp->dir);
		goto fail;
	}
	for(;;) {
		struct mqs_spool_rec rec;
		long r = mqs_spool_rec_decode(buf + pos, have - pos, &rec);

		if(r > 0) {
			struct spool_seg *seg = spool__seg_find(sp, num);
			seg->pending_count++;
			seg->pending_bytes += (uint64_t)r;
			sp->pending_count++;
			sp->pending_bytes += (uint64_t)r;
			fn(&rec, num, (size_t)r, arg);
			n++;
			pos += (size_t)r;
			continue;
		}
		if(r < 0) {
			uint64_t at = offset + pos;
			*skipped += (uint64_t)st.st_size > at ? (uint64_t)st.st_size - at : have - pos;
			break;
		}
		if(eof) {
			*skipped += have - pos;
			break;
		}
		memmove(buf, buf + pos, have - pos);
		offset += pos;
		have -= pos;
		pos = 0;
		if(have == cap) {
			/* decode bounds body_len, so a record needing more never comes */
			uint8_t *bigger = realloc(buf, cap * 2);
			if(bigger == NULL) {
				spool__err(err, errlen, "spool %s: out of memory", sp->dir);
				goto fail;
			}
			buf = bigger;
			cap *= 2;
		}
		ssize_t rd = read(fd, buf + have, cap - have);
		if(rd < 0 && errno == EINTR) continue;
		if(rd < 0) {
			spool__err(err, errlen, "cannot read spool segment %s/%s: %s", sp->dir, name, strerror(errno));
			goto fail;
		}
		if(rd == 0) eof = true;
		have += (size_t)rd;
	}
	free(buf);
	close(fd);
	return n;

fail:
	free(buf);
	if(fd >= 0) close(fd);
	return -1;
}

long mqs_spool_replay(struct mqs_spool *sp,
                      void (*fn)(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size, void *arg),
                      void *arg, uint64_t *skipped_bytes, char *err, size_t errlen)
{
	uint64_t skipped = 0, last = 0;
	bool first = true;
	long total = 0;

	if(skipped_bytes != NULL) *skipped_bytes = 0;
	if(sp->replayed || sp->appended) {
		spool__err(err, errlen, "spool %s: replay must run once, before any append", sp->dir);
		return -1;
	}
	sp->replayed = true;
	for(;;) {
		struct spool_seg *seg = NULL;
		uint64_t num;
		long n;

		/* By number, not index: fn may release records, which deletes other old segments. */
		for(size_t i = 0; i < sp->nsegs; i++) {
			if(sp->segs[i].old && (first || sp->segs[i].num > last)) {
				seg = &sp->segs[i];
				break;
			}
		}
		if(seg == NULL) break;
		num = seg->num;
		first = false;
		last = num;
		sp->in_replay = true;
		sp->replaying = num;
		n = spool__replay_seg(sp, num, fn, arg, &skipped, err, errlen);
		sp->in_replay = false;
		if(n < 0) goto fail;
		total += n;
		seg = spool__seg_find(sp, num);
		if(seg != NULL && seg->pending_count == 0) spool__seg_delete(sp, seg);
	}
	if(skipped_bytes != NULL) *skipped_bytes = skipped;
	return total;

fail:
	if(skipped_bytes != NULL) *skipped_bytes = skipped;
	return -1;
}

/* Writes the encoded record with write() calls until it is all there (one call unless short
 * writes), then fdatasync when configured. Any failure truncates the segment back to its previous
 * size and retires it, so the next append starts a fresh segment even if the truncate failed. */
bool mqs_spool_append(struct mqs_spool *sp, const struct mqs_spool_rec *rec, uint64_t *segment, char *err,
                      size_t errlen)
{
	size_t size = mqs_spool_rec_size(rec);
	size_t done = 0;
	struct spool_seg *seg;

	if(size - SPOOL_HDR_LEN > SPOOL_BODY_MAX) {
		spool__err(err, errlen, "spool %s: record of %zu bytes is too large", sp->dir, size);
		return false;
	}
	if(size > sp->bufcap) {
		uint8_t *buf = realloc(sp->buf, size);
		if(buf == NULL) {
			spool__err(err, errlen, "spool %s: out of memory", sp->dir);
			return false;
		}
		sp->buf = buf;
		sp->bufcap = size;
	}
	mqs_spool_rec_encode(rec, sp->buf);
	if(sp->cur_fd < 0 || (sp->cur_size > 0 && sp->cur_size + size > sp->segment_bytes)) {
		if(!spool__rotate(sp, err, errlen)) return false;
	}
	sp->appended = true;
	while(done < size) {
		ssize_t w = write(sp->cur_fd, sp->buf + done, size - done);
		if(w < 0 && errno == EINTR) continue;
		if(w < 0) {
			spool__err(err, errlen, "cannot write spool segment %s/spool-%020llu.log: %s", sp->dir,
			           (unsigned long long)sp->cur_num, strerror(errno));
			goto fail;
		}
		done += (size_t)w;
	}
	if(sp->fsync && fdatasync(sp->cur_fd) != 0) {
		spool__err(err, errlen, "cannot fdatasync spool segment %s/spool-%020llu.log: %s", sp->dir,
		           (unsigned long long)sp->cur_num, strerror(errno));
		goto fail;
	}
	seg = spool__seg_find(sp, sp->cur_num);
	seg->pending_count++;
	seg->pending_bytes += size;
	sp->pending_count++;
	sp->pending_bytes += size;
	sp->cur_size += size;
	if(segment != NULL) *segment = sp->cur_num;
	return true;

fail:
	(void)ftruncate(sp->cur_fd, (off_t)sp->cur_size);
	spool__retire_current(sp);
	return false;
}

/* Unknown segments and releases beyond what is pending are ignored (a caller bug, but deleting
 * or underflowing would be worse). */
void mqs_spool_release(struct mqs_spool *sp, uint64_t segment, size_t rec_size)
{
	struct spool_seg *seg = spool__seg_find(sp, segment);
	uint64_t bytes;

	if(seg == NULL || seg->pending_count == 0) return;
	bytes = rec_size < seg->pending_bytes ? rec_size : seg->pending_bytes;
	seg->pending_count--;
	seg->pending_bytes -= bytes;
	sp->pending_count--;
	sp->pending_bytes -= bytes;
	if(seg->pending_count > 0) return;
	if(sp->cur_fd >= 0 && segment == sp->cur_num) return;
	if(sp->in_replay && segment == sp->replaying) return;
	spool__seg_delete(sp, seg);
}

uint64_t mqs_spool_pending_bytes(const struct mqs_spool *sp)
{
	return sp->pending_bytes;
}

uint64_t mqs_spool_pending_count(const struct mqs_spool *sp)
{
	return sp->pending_count;
}

/* The current segment is deleted too when nothing in it is pending; old segments never replayed
 * stay for the next start. */
void mqs_spool_close(struct mqs_spool *sp)
{
	if(sp == NULL) return;
	spool__retire_current(sp);
	if(sp->dirfd >= 0) close(sp->dirfd);
	free(sp->segs);
	free(sp->buf);
	free(sp->dir);
	free(sp);
}
