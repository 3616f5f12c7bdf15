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

struct writer {
	struct mqs_plugin *p;
	PGconn *conn;
	bool presence_reset; /* this node's stale rows from an earlier run were cleared */
	bool was_down;
	struct mqs_backoff reconnect;
	int64_t retry_at_ms; /* monotonic; after a failed statement, no retry before it */
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
	if(!mqs_backoff_due(&w->reconnect, w->p->cfg.reconnect_max_ms)) return false;
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
	mqs_backoff_reset(&w->reconnect);
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

/* Sends the batch's transaction as one pipeline: BEGIN, the group locks, the ingest statement,
 * the spool_progress update, COMMIT. False if libpq refused (logged); the caller leaves the
 * pipeline. */
static bool send_batch(struct writer *w, struct mqs_batch *b)
{
	const char *vals[MQS_BATCH_COLUMNS];
	int lens[MQS_BATCH_COLUMNS], fmts[MQS_BATCH_COLUMNS];

	for(int c = 0; c < MQS_BATCH_COLUMNS; c++) {
		vals[c] = (const char *)b->col[c].b;
		lens[c] = (int)b->col[c].len;
		fmts[c] = 1;
	}
	const char *p_lock[1] = {mqs_pgarr_text(&b->groups)};
	const char *p_upto[3] = {mqs_pgarr_text(&b->upto_epoch), mqs_pgarr_text(&b->upto_ctr), w->p->cfg.node};
	if(p_lock[0] == NULL || p_upto[0] == NULL || p_upto[1] == NULL) return false; /* checked by build */
	if(PQsendQueryParams(w->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	   !send_prepared(w, "lock", 1, p_lock) ||
	   PQsendQueryPrepared(w->conn, "ingest", MQS_BATCH_COLUMNS, vals, lens, fmts, 0) != 1 ||
	   !send_prepared(w, "upto", 3, p_upto) ||
	   PQsendQueryParams(w->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 || PQpipelineSync(w->conn) != 1) {
		log_error(w, "cannot store messages", PQerrorMessage(w->conn));
		return false;
	}
	return true;
}

/* Reads the pipeline's results and, if it committed, sets each candidate's outcome: returned
 * rows are stored; the others are duplicates, or their group is gone (it was not locked). False
 * if nothing was committed. Leaves pipeline mode. */
static bool read_batch(struct writer *w, struct mqs_batch *b)
{
	PGresult *r_begin = pipe_result(w, PGRES_COMMAND_OK);
	PGresult *r_lock = pipe_result(w, PGRES_TUPLES_OK);
	PGresult *r_ingest = pipe_result(w, PGRES_TUPLES_OK);
	PGresult *r_upto = pipe_result(w, PGRES_COMMAND_OK);
	PGresult *r_commit = pipe_result(w, PGRES_COMMAND_OK);
	bool ok = pipe_finish(w) && r_begin && r_lock && r_ingest && r_upto && r_commit;

	if(ok) {
		for(int r = 0; r < PQntuples(r_ingest); r++) {
			mqs_batch_stored(b, mqs_pg_int(r_ingest, r, 0), mqs_pg_int(r_ingest, r, 1),
			                 mqs_pg_int(r_ingest, r, 2), PQgetvalue(r_ingest, r, 3));
		}
		struct hmap *locked = hmap_new(NULL);
		for(int r = 0; locked != NULL && r < PQntuples(r_lock); r++) {
			if(!hmap_puts(locked, PQgetvalue(r_lock, r, 0), w)) {
				hmap_free(locked); /* out of memory: settle treats every group as existing */
				locked = NULL;
			}
		}
		mqs_batch_settle(b, locked);
		hmap_free(locked);
	}
	PQclear(r_begin);
	PQclear(r_lock);
	PQclear(r_ingest);
	PQclear(r_upto);
	PQclear(r_commit);
	return ok;
}

/* Stores ms[0..n) in one transaction, in one round trip (send_batch). Sets each status: stored
 * (with id, seq, ts), duplicate (a replay already committed, or a client resend of a stored
 * (sender, cid), or repeated within the batch) or no group. False if nothing was committed: the
 * messages stay pending and are retried; a retry after an unknown commit outcome finds them
 * through spool_progress. */
static bool store_batch(struct writer *w, struct mqs_msg **ms, size_t n)
{
	struct mqs_batch b;
	bool ok = false;

	if(mqs_batch_build(&b, ms, n, w->cand) && PQenterPipelineMode(w->conn) == 1) {
		if(send_batch(w, &b))
			ok = read_batch(w, &b);
		else
			pipe_finish(w);
	}
	mqs_batch_free(&b);
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
		size_t n = mqs_batch_split(w->msg_head, batch, MQS_BATCH_BYTES, w->batch);
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

static void pgarrs_free(struct mqs_pgarr *x, int n)
{
	for(int i = 0; i < n; i++) mqs_pgarr_free(&x[i]);
}

static void receipt_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct mqs_pgarr *x = arg;
	struct mqs_receipt *r = value;
	(void)key;
	(void)keylen;
	mqs_pgarr_add_str(&x[0], r->group, strlen(r->group));
	mqs_pgarr_add_str(&x[1], r->user, strlen(r->user));
	mqs_pgarr_add_int(&x[2], r->delivered);
	mqs_pgarr_add_int(&x[3], r->read);
}

/* Applies all coalesced receipts in one statement. Cursors only move forward, read implies
 * delivered, and nothing moves past the group's last seq. */
static void flush_receipts(struct writer *w)
{
	struct mqs_pgarr x[4] = {{0}};
	hmap_each(w->receipts, receipt_to_arrays, x);
	const char *params[4] = {mqs_pgarr_text(&x[0]), mqs_pgarr_text(&x[1]), mqs_pgarr_text(&x[2]),
	                         mqs_pgarr_text(&x[3])};
	if(!params[0] || !params[1] || !params[2] || !params[3]) {
		pgarrs_free(x, 4);
		return;
	}
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
	pgarrs_free(x, 4);
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
		rc->delivered = mqs_pg_int(res, r, 2);
		rc->read = mqs_pg_int(res, r, 3);
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
	struct mqs_pgarr *x = arg;
	struct mqs_presence *pr = value;
	(void)key;
	(void)keylen;
	mqs_pgarr_add_str(&x[0], pr->user, strlen(pr->user));
	mqs_pgarr_add_int(&x[1], pr->connections);
}

static void flush_presence(struct writer *w)
{
	if(hmap_count(w->presence) > 0) {
		struct mqs_pgarr x[2] = {{0}};
		hmap_each(w->presence, presence_to_arrays, x);
		const char *params[3] = {w->p->cfg.node, mqs_pgarr_text(&x[0]), mqs_pgarr_text(&x[1])};
		if(!params[1] || !params[2]) {
			pgarrs_free(x, 2);
			return;
		}
		PGresult *res = PQexecParams(w->conn,
		                             "INSERT INTO presence (user_id, node, connections, last_seen)"
		                             " SELECT u, $1, c, now() FROM unnest($2::text[], $3::int4[]) AS t(u, c)"
		                             " ON CONFLICT (user_id, node) DO UPDATE"
		                             " SET connections = EXCLUDED.connections, last_seen = now()",
		                             3, NULL, params, NULL, NULL, 0);
		pgarrs_free(x, 2);
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
			int64_t until = w.conn != NULL ? w.retry_at_ms : w.reconnect.next_ms;
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
