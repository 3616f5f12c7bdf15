/* writer: the database writer thread. Stores spooled messages in batches (one transaction and one
 * pipelined round trip per batch, per-group seq assigned under the group's row lock), applies
 * receipts and presence, reconnects with backoff, and hands every result back to the broker thread.
 * Touches only libpq, its own state and the queues (never the broker API). */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <mosquitto.h> /* MOSQ_LOG_* levels only: this thread never calls the broker */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"
#include "plugin.h"

#define BATCH_BYTES (16u * 1024 * 1024)

struct writer {
	struct mqs_plugin *p;
	PGconn *conn;
	bool presence_reset; /* this node's stale rows from an earlier run were cleared */
	bool was_down;
	long backoff_ms;
	int64_t next_connect_ms; /* monotonic; no connection attempt before it */
	int64_t retry_at_ms;     /* monotonic; after a failed statement, no retry before it */
	time_t last_error_log;
	/* pending messages, oldest first: a chain of items (no allocation, so nothing to fail) */
	struct mqs_item *msg_head, *msg_tail;
	size_t nmsgs;
	struct mqs_msg **batch; /* batch_max slots, reused */
	struct mqs_msg **cand;  /* batch_max slots: the batch's messages sent to the database, by ord */
	struct hmap *receipts;  /* "gid\0uid" -> struct mqs_receipt *, coalesced */
	struct hmap *presence;  /* uid -> struct mqs_presence *, latest count */
	bool heartbeat;
};

static bool prepare_all(struct writer *w);

static void item_free_cb(void *v)
{
	mqs_item_free(v);
}

static bool has_pending(const struct writer *w)
{
	return w->msg_head != NULL || hmap_count(w->receipts) > 0 || hmap_count(w->presence) > 0 || w->heartbeat;
}

/* Log at most once per 10 s for repeated failures. */
static void log_error(struct writer *w, const char *what, const char *detail)
{
	time_t now = time(NULL);
	if(now - w->last_error_log < 10) return;
	w->last_error_log = now;
	size_t n = strlen(detail);
	while(n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' ')) n--;
	mqs_bglog(w->p, MOSQ_LOG_WARNING, "%s: %.*s (%zu messages waiting; retrying)", what, (int)n, detail, w->nmsgs);
}

/* Takes ownership of a chain of items, merging receipts and presence. */
static void absorb(struct writer *w, struct mqs_item *it)
{
	while(it != NULL) {
		struct mqs_item *next = it->next;
		it->next = NULL;
		if(it->kind == ITEM_MSG) {
			if(w->msg_tail)
				w->msg_tail->next = it;
			else
				w->msg_head = it;
			w->msg_tail = it;
			w->nmsgs++;
		} else if(it->kind == ITEM_RECEIPT) {
			struct mqs_receipt *r = (struct mqs_receipt *)it;
			char key[2 * MQS_ID_MAX + 2];
			size_t gl = strlen(r->group), ul = strlen(r->user);
			memcpy(key, r->group, gl + 1);
			memcpy(key + gl + 1, r->user, ul);
			struct mqs_receipt *old = hmap_get(w->receipts, key, gl + 1 + ul);
			if(old != NULL) {
				if(r->delivered > old->delivered) old->delivered = r->delivered;
				if(r->read > old->read) old->read = r->read;
				mqs_item_free(it);
			} else if(!hmap_put(w->receipts, key, gl + 1 + ul, r)) {
				mqs_item_free(it);
			}
		} else if(it->kind == ITEM_PRESENCE) {
			struct mqs_presence *pr = (struct mqs_presence *)it;
			if(!hmap_puts(w->presence, pr->user, pr)) mqs_item_free(it);
		} else if(it->kind == ITEM_HEARTBEAT) {
			w->heartbeat = true;
			mqs_item_free(it);
		} else {
			mqs_item_free(it);
		}
		it = next;
	}
}

static int64_t mono_ms(void)
{
	return mqs_now_ms(CLOCK_MONOTONIC);
}

/* After a failed statement: roll back and retry a little later, or drop a broken connection. */
static void recover(struct writer *w)
{
	if(w->conn == NULL) return;
	w->retry_at_ms = mono_ms() + 200;
	if(PQstatus(w->conn) != CONNECTION_OK || PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF) {
		PQfinish(w->conn); /* broken, or stuck mid-pipeline: start over on a new connection */
		w->conn = NULL;
		return;
	}
	PGresult *res = PQexec(w->conn, "ROLLBACK");
	PQclear(res);
}

/* Connects if needed, at most once per backoff period (doubling up to reconnect_max_ms). */
static bool ensure_conn(struct writer *w)
{
	if(w->conn != NULL && PQstatus(w->conn) == CONNECTION_OK) return true;
	if(w->conn != NULL) {
		PQfinish(w->conn);
		w->conn = NULL;
	}
	if(mono_ms() < w->next_connect_ms) return false;
	w->next_connect_ms = mono_ms() + w->backoff_ms;
	w->backoff_ms = w->backoff_ms * 2 > w->p->cfg.reconnect_max_ms ? w->p->cfg.reconnect_max_ms : w->backoff_ms * 2;
	char app[96];
	snprintf(app, sizeof(app), "mqsync-writer:%s", w->p->cfg.node);
	/* statement_timeout bounds a stuck statement (keepalives: see mqs_pg_connect). */
	w->conn = mqs_pg_connect(w->p->cfg.conninfo, app, "5", "-c statement_timeout=30000 -c lock_timeout=10000");
	if(PQstatus(w->conn) != CONNECTION_OK) {
		log_error(w, "database unreachable", PQerrorMessage(w->conn));
		PQfinish(w->conn);
		w->conn = NULL;
		w->was_down = true;
		return false;
	}
	if(!prepare_all(w)) {
		PQfinish(w->conn);
		w->conn = NULL;
		return false;
	}
	if(!w->presence_reset) {
		const char *params[1] = {w->p->cfg.node};
		PGresult *res = PQexecParams(w->conn, "UPDATE presence SET connections = 0 WHERE node = $1", 1, NULL,
		                             params, NULL, NULL, 0);
		w->presence_reset = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if(w->was_down) mqs_bglog(w->p, MOSQ_LOG_NOTICE, "database reachable again; draining %zu messages", w->nmsgs);
	w->was_down = false;
	w->backoff_ms = 100;
	w->next_connect_ms = 0;
	w->last_error_log = 0;
	return true;
}

/* ---- messages ------------------------------------------------------------------------------- */

/* Statements prepared on every new connection (see prepare_all). */
static const struct {
	const char *name;
	const char *sql;
} prepared[] = {
        /* Row locks in id order: concurrent writers cannot deadlock, and hold them to commit. */
        {"lock", "SELECT id FROM groups WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE"},
        /* One batch in one statement. m: the batch, in order (ord). f: what is not stored yet —
         * replays at or below their epoch's spool_progress.upto, and client resends whose
         * (sender, cid) is stored, are dropped. b: each group's seqs reserved under its row lock.
         * n: the rows numbered base+1... in batch order. The result maps ord to id/seq/ts. */
        {"ingest",
         "WITH m AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int2[], $5::text[], $6::int8[],"
         "                                $7::int8[]) WITH ORDINALITY AS t(grp, sender, payload, qos, cid, epoch, ctr, "
         "ord)),"
         " f AS (SELECT m.* FROM m"
         "       WHERE NOT EXISTS (SELECT 1 FROM spool_progress p WHERE p.epoch = m.epoch AND p.upto >= m.ctr)"
         "         AND (m.cid IS NULL OR NOT EXISTS (SELECT 1 FROM messages x WHERE x.sender = m.sender"
         "                                                                      AND x.cid = m.cid))),"
         " b AS (UPDATE groups g SET last_seq = g.last_seq + c.n"
         "       FROM (SELECT grp, count(*) AS n FROM f GROUP BY grp) c WHERE g.id = c.grp"
         "       RETURNING g.id, g.last_seq - c.n AS base),"
         " n AS (SELECT f.*, b.base + row_number() OVER (PARTITION BY f.grp ORDER BY f.ord) AS seq"
         "       FROM f JOIN b ON b.id = f.grp),"
         " i AS (INSERT INTO messages (group_id, seq, sender, payload, qos, cid, origin_epoch)"
         "       SELECT grp, seq, sender, payload, qos, cid, epoch FROM n"
         "       RETURNING id, group_id, seq,"
         "       " MQS_SQL_TS("created_at") " AS ts)"
                                            " SELECT n.ord, i.id, i.seq, i.ts FROM i JOIN n ON n.grp = i.group_id AND "
                                            "n.seq = i.seq"},
        {"upto", "INSERT INTO spool_progress (epoch, upto, node) SELECT e, u, $3 FROM unnest($1::int8[], $2::int8[])"
                 " AS t(e, u) ON CONFLICT (epoch) DO UPDATE"
                 " SET upto = greatest(spool_progress.upto, EXCLUDED.upto), updated_at = now()"},
};

static bool prepare_all(struct writer *w)
{
	for(size_t i = 0; i < sizeof(prepared) / sizeof(prepared[0]); i++) {
		PGresult *res = PQprepare(w->conn, prepared[i].name, prepared[i].sql, 0, NULL);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok) log_error(w, "cannot prepare statements", PQresultErrorMessage(res));
		PQclear(res);
		if(!ok) return false;
	}
	return true;
}

/* Appends s to a PostgreSQL array literal under construction, double-quoted with " and \
 * escaped: unquoted, an id such as "null" would be read as SQL NULL, and a cid may hold anything. */
static bool arr_add(char **arr, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	size_t need = *len + 2 * n + 5;
	if(need > *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		while(c < need) c *= 2;
		char *a = realloc(*arr, c);
		if(a == NULL) return false;
		*arr = a;
		*cap = c;
	}
	(*arr)[*len] = *len == 0 ? '{' : ',';
	(*len)++;
	(*arr)[(*len)++] = '"';
	for(size_t i = 0; i < n; i++) {
		if(s[i] == '"' || s[i] == '\\') (*arr)[(*len)++] = '\\';
		(*arr)[(*len)++] = s[i];
	}
	(*arr)[(*len)++] = '"';
	(*arr)[*len] = '}';
	(*arr)[*len + 1] = '\0';
	return true;
}

struct arrays {
	char *a[4];
	size_t len[4], cap[4];
	bool ok;
};

static void add(struct arrays *x, int i, const char *s)
{
	x->ok = x->ok && arr_add(&x->a[i], &x->len[i], &x->cap[i], s);
}

static void add_int(struct arrays *x, int i, int64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	add(x, i, num);
}

static void arrays_free(struct arrays *x)
{
	for(int i = 0; i < 4; i++) free(x->a[i]);
	memset(x, 0, sizeof(*x));
	x->ok = true;
}

#define CID_KEY_MAX (MQS_ID_MAX + 1 + 64)

/* Writes the map key "sender\0cid" into key (CID_KEY_MAX bytes); returns its length, 0 if either
 * part is too long to be one of ours. */
static size_t cid_key(char *key, const char *sender, const char *cid)
{
	size_t sl = strlen(sender), cl = strlen(cid);
	if(sl > MQS_ID_MAX || cl > 64) return 0;
	memcpy(key, sender, sl + 1);
	memcpy(key + sl + 1, cid, cl);
	return sl + 1 + cl;
}

/* ---- one batch, pipelined ------------------------------------------------------------------ */

/* Reads one pipelined query's result and the NULL that ends it. NULL if the query failed or was
 * skipped after an earlier failure in the pipeline. */
static PGresult *pipe_result(struct writer *w, ExecStatusType want)
{
	PGresult *res = PQgetResult(w->conn);
	PGresult *end = res ? PQgetResult(w->conn) : NULL;
	PQclear(end);
	if(res != NULL && PQresultStatus(res) == want) return res;
	if(res != NULL && PQresultStatus(res) != PGRES_PIPELINE_ABORTED) {
		log_error(w, "cannot store messages", PQresultErrorMessage(res));
	}
	PQclear(res);
	return NULL;
}

/* Consumes what is left up to the pipeline's sync point and leaves pipeline mode. */
static bool pipe_finish(struct writer *w)
{
	for(int guard = 0; guard < 64; guard++) {
		PGresult *res = PQgetResult(w->conn);
		if(res == NULL) {
			if(PQstatus(w->conn) != CONNECTION_OK) return false;
			continue;
		}
		bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
		if(sync) return PQexitPipelineMode(w->conn) == 1;
	}
	return false;
}

static bool send_prepared(struct writer *w, const char *name, int n, const char *const *params)
{
	return PQsendQueryPrepared(w->conn, name, n, params, NULL, NULL, 0) == 1;
}

/* A binary array parameter (PostgreSQL's array send format: one dimension, lower bound 1): a
 * 20-byte header, then per element a 4-byte length (-1 for NULL) and the bytes. */
struct barr {
	uint8_t *b;
	size_t len, cap;
	int32_t count;
	bool has_null;
	uint32_t oid;
	bool ok;
};

#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_TEXT  25

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void barr_init(struct barr *a, uint32_t oid)
{
	memset(a, 0, sizeof(*a));
	a->oid = oid;
	a->ok = true;
	a->len = 20; /* header, written by barr_finish */
}

/* Appends one element (data NULL: a NULL element). */
static void barr_put(struct barr *a, const void *data, size_t n)
{
	if(!a->ok) return;
	if(a->len + 4 + n > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while(cap < a->len + 4 + n) cap *= 2;
		uint8_t *b = realloc(a->b, cap);
		if(b == NULL) {
			a->ok = false;
			return;
		}
		a->b = b;
		a->cap = cap;
	}
	put_be32(a->b + a->len, data ? (uint32_t)n : 0xffffffffu);
	a->len += 4;
	if(data) memcpy(a->b + a->len, data, n);
	if(data)
		a->len += n;
	else
		a->has_null = true;
	a->count++;
}

static void barr_put_int(struct barr *a, int64_t v, size_t width)
{
	uint8_t b[8];
	for(size_t i = 0; i < width; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * (width - 1 - i)));
	barr_put(a, b, width);
}

/* Writes the header. False if an allocation failed. */
static bool barr_finish(struct barr *a)
{
	if(!a->ok || (a->b == NULL && (a->b = malloc(20)) == NULL)) return false;
	put_be32(a->b, 1);
	put_be32(a->b + 4, a->has_null ? 1 : 0);
	put_be32(a->b + 8, a->oid);
	put_be32(a->b + 12, (uint32_t)a->count);
	put_be32(a->b + 16, 1);
	return true;
}

/* Stores ms[0..n) in one transaction, in one round trip: BEGIN, the group locks, the ingest
 * statement, the spool_progress update and COMMIT are pipelined. Sets each status: stored (with
 * id, seq, ts), duplicate (a replay already committed, or a client resend of a stored (sender,
 * cid), or repeated within the batch) or no group. False if nothing was committed: the messages
 * stay pending and are retried; a retry after an unknown commit outcome finds them through
 * spool_progress. */
static bool store_batch(struct writer *w, struct mqs_msg **ms, size_t n)
{
	struct barr col[7];
	static const uint32_t oids[7] = {OID_TEXT, OID_TEXT, OID_BYTEA, OID_INT2, OID_TEXT, OID_INT8, OID_INT8};
	struct arrays grp = {.ok = true}, upto = {.ok = true};
	struct hmap *seen = hmap_new(NULL), *groups = hmap_new(NULL);
	PGresult *r_begin = NULL, *r_lock = NULL, *r_ingest = NULL, *r_upto = NULL, *r_commit = NULL;
	size_t ncand = 0;
	bool ok = false, piped = false;

	for(int c = 0; c < 7; c++) barr_init(&col[c], oids[c]);
	if(seen == NULL || groups == NULL) goto out;
	for(size_t i = 0; i < n; i++) {
		struct mqs_msg *m = ms[i];
		m->status = MSG_PENDING;
		/* spool_progress: the highest counter of each epoch run (counters rise within a run). */
		if(i + 1 == n || mqs_be64(ms[i + 1]->origin) != mqs_be64(m->origin)) {
			add_int(&upto, 0, mqs_be64(m->origin));
			add_int(&upto, 1, mqs_be64(m->origin + 8));
		}
		if(m->cid[0] != '\0') {
			char key[CID_KEY_MAX];
			size_t kl = cid_key(key, m->sender, m->cid);
			if(hmap_get(seen, key, kl) != NULL) {
				m->status = MSG_DUPLICATE; /* repeated within the batch */
				continue;
			}
			if(!hmap_put(seen, key, kl, m)) goto out;
		}
		if(hmap_gets(groups, m->group) == NULL) {
			if(!hmap_puts(groups, m->group, m)) goto out;
			add(&grp, 0, m->group);
		}
		w->cand[ncand++] = m; /* ord = ncand */
		barr_put(&col[0], m->group, strlen(m->group));
		barr_put(&col[1], m->sender, strlen(m->sender));
		barr_put(&col[2], m->payload, m->payload_len);
		barr_put_int(&col[3], m->qos, 2);
		barr_put(&col[4], m->cid[0] ? m->cid : NULL, strlen(m->cid));
		barr_put_int(&col[5], mqs_be64(m->origin), 8);
		barr_put_int(&col[6], mqs_be64(m->origin + 8), 8);
	}
	for(int c = 0; c < 7; c++) {
		if(!barr_finish(&col[c])) goto out;
	}
	if(!grp.ok || !upto.ok) goto out;

	const char *vals[7];
	int lens[7], fmts[7];
	for(int c = 0; c < 7; c++) {
		vals[c] = (const char *)col[c].b;
		lens[c] = (int)col[c].len;
		fmts[c] = 1;
	}
	const char *p_lock[1] = {grp.a[0]}, *p_upto[3] = {upto.a[0], upto.a[1], w->p->cfg.node};
	if(PQenterPipelineMode(w->conn) != 1) goto out;
	piped = true;
	if(PQsendQueryParams(w->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	   !send_prepared(w, "lock", 1, p_lock) ||
	   PQsendQueryPrepared(w->conn, "ingest", 7, vals, lens, fmts, 0) != 1 ||
	   !send_prepared(w, "upto", 3, p_upto) ||
	   PQsendQueryParams(w->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 || PQpipelineSync(w->conn) != 1) {
		log_error(w, "cannot store messages", PQerrorMessage(w->conn));
		goto out;
	}
	r_begin = pipe_result(w, PGRES_COMMAND_OK);
	r_lock = pipe_result(w, PGRES_TUPLES_OK);
	r_ingest = pipe_result(w, PGRES_TUPLES_OK);
	r_upto = pipe_result(w, PGRES_COMMAND_OK);
	r_commit = pipe_result(w, PGRES_COMMAND_OK);
	piped = false;
	if(!pipe_finish(w) || !r_begin || !r_lock || !r_ingest || !r_upto || !r_commit) goto out;

	/* Committed. Returned rows are stored; the other candidates are duplicates, or their group is
	 * gone (it was not locked). */
	for(int r = 0; r < PQntuples(r_ingest); r++) {
		long ord = strtol(PQgetvalue(r_ingest, r, 0), NULL, 10);
		if(ord < 1 || (size_t)ord > ncand) continue;
		struct mqs_msg *m = w->cand[ord - 1];
		m->status = MSG_STORED;
		m->id = strtoll(PQgetvalue(r_ingest, r, 1), NULL, 10);
		m->seq = strtoll(PQgetvalue(r_ingest, r, 2), NULL, 10);
		snprintf(m->ts, sizeof(m->ts), "%s", PQgetvalue(r_ingest, r, 3));
	}
	hmap_free(groups);
	groups = hmap_new(NULL);
	for(int r = 0; groups != NULL && r < PQntuples(r_lock); r++) hmap_puts(groups, PQgetvalue(r_lock, r, 0), w);
	for(size_t k = 0; k < ncand; k++) {
		struct mqs_msg *m = w->cand[k];
		if(m->status == MSG_PENDING)
			m->status =
			        groups != NULL && hmap_gets(groups, m->group) == NULL ? MSG_NO_GROUP : MSG_DUPLICATE;
	}
	ok = true;
out:
	if(piped) pipe_finish(w);
	PQclear(r_begin);
	PQclear(r_lock);
	PQclear(r_ingest);
	PQclear(r_upto);
	PQclear(r_commit);
	for(int c = 0; c < 7; c++) free(col[c].b);
	arrays_free(&grp);
	arrays_free(&upto);
	hmap_free(seen);
	hmap_free(groups);
	if(!ok) {
		for(size_t i = 0; i < n; i++) ms[i]->status = MSG_PENDING;
		recover(w);
	}
	return ok;
}

/* Stores pending messages batch by batch, oldest first; committed ones go back to the broker
 * thread. Stops at the first failure (the rest is retried later, in the same order). */
static void flush_msgs(struct writer *w)
{
	size_t batch = (size_t)w->p->cfg.batch_max;

	while(w->msg_head != NULL && w->conn != NULL) {
		size_t n = 0, bytes = 0;
		/* At most batch_max messages and about BATCH_BYTES of payload (at least one message). */
		for(struct mqs_item *it = w->msg_head; it != NULL && n < batch; it = it->next) {
			bytes += ((struct mqs_msg *)it)->payload_len;
			if(n > 0 && bytes > BATCH_BYTES) break;
			w->batch[n++] = (struct mqs_msg *)it;
		}
		if(!store_batch(w, w->batch, n)) break;
		/* Detach the first n items and hand them to the broker thread in one push. */
		struct mqs_item *head = w->msg_head, *last = &w->batch[n - 1]->hdr;
		w->msg_head = last->next;
		if(w->msg_head == NULL) w->msg_tail = NULL;
		last->next = NULL;
		w->nmsgs -= n;
		mqs_to_broker(w->p, head);
	}
}

/* ---- receipts and presence ------------------------------------------------------------------ */

static void receipt_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_receipt *r = value;
	(void)key;
	(void)keylen;
	add(x, 0, r->group);
	add(x, 1, r->user);
	add_int(x, 2, r->delivered);
	add_int(x, 3, r->read);
}

/* Applies all coalesced receipts in one statement. Cursors only move forward, read implies
 * delivered, and nothing moves past the group's last seq. */
static void flush_receipts(struct writer *w)
{
	struct arrays x = {.ok = true};
	hmap_each(w->receipts, receipt_to_arrays, &x);
	if(!x.ok) {
		arrays_free(&x);
		return;
	}
	const char *params[4] = {x.a[0], x.a[1], x.a[2], x.a[3]};
	PGresult *res = PQexecParams(
	        w->conn,
	        "WITH r(g, u, d, rd) AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]))"
	        " UPDATE memberships m SET"
	        "  delivered_seq = greatest(m.delivered_seq, least(greatest(r.d, r.rd), gr.last_seq)),"
	        "  read_seq = greatest(m.read_seq, least(r.rd, gr.last_seq))"
	        " FROM r JOIN groups gr ON gr.id = r.g"
	        " WHERE m.group_id = r.g AND m.user_id = r.u"
	        " RETURNING m.group_id, m.user_id, m.delivered_seq, m.read_seq",
	        4, NULL, params, NULL, NULL, 0);
	arrays_free(&x);
	if(PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error(w, "cannot apply receipts", PQresultErrorMessage(res));
		PQclear(res);
		recover(w);
		return;
	}
	struct mqs_item *head = NULL, **tail = &head;
	for(int r = 0; r < PQntuples(res); r++) {
		char key[2 * MQS_ID_MAX + 2];
		const char *g = PQgetvalue(res, r, 0), *u = PQgetvalue(res, r, 1);
		size_t gl = strlen(g), ul = strlen(u);
		if(gl > MQS_ID_MAX || ul > MQS_ID_MAX) continue;
		memcpy(key, g, gl + 1);
		memcpy(key + gl + 1, u, ul);
		struct mqs_receipt *rc = hmap_take(w->receipts, key, gl + 1 + ul);
		if(rc == NULL) continue;
		rc->applied = true;
		rc->delivered = strtoll(PQgetvalue(res, r, 2), NULL, 10);
		rc->read = strtoll(PQgetvalue(res, r, 3), NULL, 10);
		*tail = &rc->hdr;
		tail = &rc->hdr.next;
	}
	PQclear(res);
	/* What is left matched no membership (removed meanwhile): nothing to broadcast. Without
	 * memory for a new map the old one stays: applying those again changes nothing. */
	struct hmap *fresh = hmap_new(item_free_cb);
	if(fresh != NULL) {
		hmap_free(w->receipts);
		w->receipts = fresh;
	}
	if(head != NULL) mqs_to_broker(w->p, head);
}

static void presence_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_presence *pr = value;
	(void)key;
	(void)keylen;
	add(x, 0, pr->user);
	add_int(x, 1, pr->connections);
}

static void flush_presence(struct writer *w)
{
	if(hmap_count(w->presence) > 0) {
		struct arrays x = {.ok = true};
		hmap_each(w->presence, presence_to_arrays, &x);
		if(!x.ok) {
			arrays_free(&x);
			return;
		}
		const char *params[3] = {w->p->cfg.node, x.a[0], x.a[1]};
		PGresult *res = PQexecParams(w->conn,
		                             "INSERT INTO presence (user_id, node, connections, last_seen)"
		                             " SELECT u, $1, c, now() FROM unnest($2::text[], $3::int4[]) AS t(u, c)"
		                             " ON CONFLICT (user_id, node) DO UPDATE"
		                             " SET connections = EXCLUDED.connections, last_seen = now()",
		                             3, NULL, params, NULL, NULL, 0);
		arrays_free(&x);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok) log_error(w, "cannot record presence", PQresultErrorMessage(res));
		PQclear(res);
		if(!ok) {
			recover(w);
			return;
		}
		/* Without memory for a new map the counts stay and are written again: harmless. */
		struct hmap *fresh = hmap_new(item_free_cb);
		if(fresh != NULL) {
			hmap_free(w->presence);
			w->presence = fresh;
		}
	}
	if(w->heartbeat) {
		const char *params[1] = {w->p->cfg.node};
		PGresult *res = PQexecParams(
		        w->conn, "UPDATE presence SET last_seen = now() WHERE node = $1 AND connections > 0", 1, NULL,
		        params, NULL, NULL, 0);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if(ok)
			w->heartbeat = false;
		else
			recover(w);
	}
}

/* ---- the thread ----------------------------------------------------------------------------- */

/* Frees what w holds (not w itself): pending items, buffers, the connection. */
static void writer_clear(struct writer *w)
{
	while(w->msg_head != NULL) {
		struct mqs_item *next = w->msg_head->next;
		mqs_item_free(w->msg_head);
		w->msg_head = next;
	}
	free(w->batch);
	free(w->cand);
	hmap_free(w->receipts);
	hmap_free(w->presence);
	if(w->conn != NULL) PQfinish(w->conn);
}

/* The thread: owns arg (its struct writer) and frees it on the way out. */
static void *writer_main(void *arg)
{
	struct writer *wp = arg;
	struct writer w = *wp;
	struct mqs_plugin *p = w.p;
	time_t stop_deadline = 0;

	free(wp);
	for(;;) {
		bool stopping = atomic_load(&p->stopping);
		if(stopping && stop_deadline == 0) stop_deadline = time(NULL) + 3;
		int timeout = 1000;
		if(stopping) {
			timeout = 0;
		} else if(has_pending(&w)) {
			int64_t until = w.conn != NULL ? w.retry_at_ms : w.next_connect_ms;
			int64_t left = until - mono_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		absorb(&w, mqs_queue_take(&p->to_writer, timeout, &p->stopping));
		if(stopping && (!has_pending(&w) || time(NULL) >= stop_deadline)) break;
		if(!has_pending(&w)) continue;
		if(w.conn != NULL && mono_ms() < w.retry_at_ms) {
			if(stopping) break; /* failed while stopping: what is left stays in the spool */
			continue;
		}
		if(!ensure_conn(&w)) {
			if(stopping) break;
			continue;
		}
		if(w.msg_head != NULL) flush_msgs(&w);
		if(w.conn != NULL && hmap_count(w.receipts) > 0) flush_receipts(&w);
		if(w.conn != NULL) flush_presence(&w);
	}
	if(w.nmsgs > 0) {
		mqs_bglog(p, MOSQ_LOG_WARNING, "stopping with %zu messages not yet stored: they stay in the spool",
		          w.nmsgs);
	}
	writer_clear(&w);
	return NULL;
}

bool mqs_writer_start(struct mqs_plugin *p)
{
	struct writer *w = calloc(1, sizeof(*w));

	if(w == NULL) return false;
	w->p = p;
	w->backoff_ms = 100;
	w->receipts = hmap_new(item_free_cb);
	w->presence = hmap_new(item_free_cb);
	w->batch = calloc((size_t)p->cfg.batch_max, sizeof(*w->batch));
	w->cand = calloc((size_t)p->cfg.batch_max, sizeof(*w->cand));
	if(w->receipts == NULL || w->presence == NULL || w->batch == NULL || w->cand == NULL ||
	   pthread_create(&p->writer, NULL, writer_main, w) != 0) {
		writer_clear(w);
		free(w);
		return false;
	}
	p->writer_started = true;
	return true;
}
