/* plugin.h: the plugin's private header: the context and the items its threads exchange, in one
 * section per .c file.
 *
 * One message's path, by file: ingest.c (MESSAGE: validate, spool, hold back) -> queue.c ->
 * writer.c with batch.c (store in one transaction) -> queue.c -> deliver.c (stamp, publish,
 * receipts, inbox events). replay.c feeds the spool back to the writer at start; listener.c feeds
 * state.c (users, groups, memberships) and other brokers' messages to deliver.c; acl.c and
 * clients.c answer the broker's checks from state.c.
 *
 * Threads (see docs/plugin.md):
 *   broker thread   every Mosquitto callback; owns the in-memory state, the spool, the client
 *                   table; never calls libpq.
 *   writer thread   writer.c: stores messages, receipts, presence; touches only libpq and queues.
 *   listener thread listener.c: LISTEN/NOTIFY, loads users/groups/memberships.
 *   catch-up thread catchup.c: reads catch-up pages (SPEC 3.6) on a connection of its own.
 * They meet in mutex-protected queues of struct mqs_item (plain malloc, never
 * mosquitto_malloc). Background threads log by queueing ITEM_LOG; the broker thread prints. */
#ifndef MQS_PLUGIN_H
#define MQS_PLUGIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "codec.h"
#include "config.h"
#include "hmap.h"
#include "ids.h"
#include "pgarr.h"
#include "spool.h"
#include "token.h"
#include "topic.h"
#include "util.h"

struct mosquitto;
struct mosquitto_evt_message;
typedef struct mosquitto_plugin_id_t mosquitto_plugin_id_t;

/* ---- items crossing threads ----------------------------------------------------------------- */

enum mqs_item_kind {
	ITEM_MSG,       /* broker -> writer: store; writer -> broker: stored (status set). listener ->
	                   broker: committed by another broker, deliver only (remote = true) */
	ITEM_RECEIPT,   /* broker -> writer: apply; writer -> broker: resulting cursors */
	ITEM_PRESENCE,  /* broker -> writer: a user's connection count on this node */
	ITEM_HEARTBEAT, /* broker -> writer: refresh last_seen of this node's connected users */
	ITEM_SNAPSHOT,  /* listener -> broker: the whole state (after (re)connecting) */
	ITEM_USER,      /* listener -> broker: one user's row and tokens changed */
	ITEM_GROUP,     /* listener -> broker: a group appeared or disappeared */
	ITEM_MEMBER,    /* listener -> broker: a membership appeared, changed or disappeared */
	ITEM_LASTSEQ,   /* listener -> broker: a group's last_seq moved (any writer) */
	ITEM_LOG,       /* any thread -> broker: a log line */
	ITEM_CATCHUP,   /* broker -> catch-up thread: a request; back: its page (catchup.c) */
};

struct mqs_item {
	struct mqs_item *next;
	enum mqs_item_kind kind;
};

enum mqs_msg_status { MSG_PENDING = 0, MSG_STORED, MSG_DUPLICATE, MSG_NO_GROUP };

/* One group message. The spool record's received_ms is written at ingest (wall clock, for
 * people reading a spool file) and never read back: nothing in memory carries it. */
struct mqs_msg {
	struct mqs_item hdr;
	uint8_t origin[MQS_ORIGIN_LEN];
	char group[MQS_ID_MAX + 1];
	char sender[MQS_ID_MAX + 1];
	char cid[65]; /* "" when absent */
	uint8_t qos;
	bool remote;
	uint64_t segment; /* spool segment and encoded size, for mqs_spool_release */
	size_t rec_size;
	uint32_t payload_len;
	void *payload; /* malloc'ed, owned by the item */
	/* set by the writer (or the listener for remote ones) */
	enum mqs_msg_status status;
	int64_t id;
	int64_t seq;
	char ts[32];
};

struct mqs_receipt {
	struct mqs_item hdr;
	char group[MQS_ID_MAX + 1];
	char user[MQS_ID_MAX + 1];
	int64_t delivered; /* -1 = absent */
	int64_t read;
	bool applied; /* result: the membership existed and was updated */
};

struct mqs_presence {
	struct mqs_item hdr;
	char user[MQS_ID_MAX + 1];
	int connections;
};

struct mqs_snapshot {
	struct mqs_item hdr;
	struct mqs_state *state; /* owned by the item until applied */
};

struct mqs_user_change {
	struct mqs_item hdr;
	bool exists;
	struct mqs_user *user; /* NULL when !exists; owned by the item until applied */
	char id[MQS_ID_MAX + 1];
};

struct mqs_group_change {
	struct mqs_item hdr;
	bool exists;
	char id[MQS_ID_MAX + 1];
	int64_t last_seq;
};

enum mqs_role { ROLE_MEMBER = 1, ROLE_ADMIN = 2 };

struct mqs_member_change {
	struct mqs_item hdr;
	bool exists;
	char group[MQS_ID_MAX + 1];
	char user[MQS_ID_MAX + 1];
	enum mqs_role role;
};

struct mqs_lastseq {
	struct mqs_item hdr;
	char group[MQS_ID_MAX + 1];
	int64_t last_seq;
};

struct mqs_logline {
	struct mqs_item hdr;
	int level; /* MOSQ_LOG_* */
	char text[];
};

/* One catch-up request over MQTT (SPEC 3.6) and, once the catch-up thread read it, its page. The
 * broker thread fills the request part; the catch-up thread the page part. Freed by mqs_item_free. */
struct mqs_catchup {
	struct mqs_item hdr;
	const struct mosquitto *conn; /* the asking connection: a key only, never dereferenced */
	uint64_t ticket;              /* matches the connection's pending entry while it is connected */
	char *clientid;               /* malloc'ed: where the page goes */
	char user[MQS_ID_MAX + 1];
	struct mqs_sync_req req; /* owned (topic.h) */
	/* the page */
	bool failed;           /* the database did not answer: nothing to send but the failure */
	struct mqs_item *msgs; /* ITEM_MSG chain (status MSG_STORED, qos 1), by group then seq */
	size_t count;
	bool has_more;
	char *next; /* malloc'ed token, NULL when failed */
};

/* Milliseconds on clock clk: CLOCK_MONOTONIC for timers, CLOCK_REALTIME for wall-clock stamps. */
static inline int64_t mqs_now_ms(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reconnection backoff of the database threads (writer, listener, catch-up): the delay starts at
 * 100 ms and doubles up to reconnect_max_ms after each failed attempt; a success resets it. */
struct mqs_backoff {
	long delay_ms;   /* the next delay; 0 until the first attempt (read as 100) */
	int64_t next_ms; /* monotonic; no attempt before it (0: now) */
};

/* Returns the delay to wait after a failed attempt and doubles the next one. */
static inline long mqs_backoff_step(struct mqs_backoff *b, long max_ms)
{
	long d = b->delay_ms > 0 ? b->delay_ms : 100;
	b->delay_ms = d * 2 > max_ms ? max_ms : d * 2;
	return d;
}

/* For threads that poll: false while the previous failure's delay runs; otherwise schedules the
 * next attempt's earliest time as if this one fails, and returns true (attempt now). */
static inline bool mqs_backoff_due(struct mqs_backoff *b, long max_ms)
{
	int64_t now = mqs_now_ms(CLOCK_MONOTONIC);
	if(now < b->next_ms) return false;
	b->next_ms = now + mqs_backoff_step(b, max_ms);
	return true;
}

/* After a success: the next failure waits 100 ms, and an attempt may be made at once. */
static inline void mqs_backoff_reset(struct mqs_backoff *b)
{
	b->delay_ms = 0;
	b->next_ms = 0;
}

/* Frees any item, whatever its kind (state items through state.c's frees). Accepts NULL. */
void mqs_item_free(struct mqs_item *item);

/* ---- state.c: users, groups, memberships (pure data; see state.c for who calls it where) ----- */

struct mqs_user {
	char id[MQS_ID_MAX + 1];
	bool admin;
	int ntokens;
	uint8_t (*tokens)[MQS_TOKEN_HASH_LEN];
};

struct mqs_group {
	char id[MQS_ID_MAX + 1];
	int64_t last_seq;
	struct hmap *members; /* uid -> (void *)(intptr_t)enum mqs_role */
};

struct mqs_state {
	struct hmap *users;  /* id -> struct mqs_user * */
	struct hmap *groups; /* id -> struct mqs_group * */
	bool loaded;         /* a snapshot from the database (not the empty state of start-up) */
};

/* An empty state (loaded false), or NULL on out of memory. The caller frees it with mqs_state_free. */
MQS_MUST_CHECK struct mqs_state *mqs_state_new(void);
void mqs_state_free(struct mqs_state *st);
/* A user without tokens, or NULL on out of memory. Free with mqs_user_free (or give it to a state). */
MQS_MUST_CHECK struct mqs_user *mqs_user_new(const char *id, bool admin);
/* Adds one token hash. False on out of memory (u unchanged). */
MQS_MUST_CHECK bool mqs_user_add_token(struct mqs_user *u, const uint8_t hash[MQS_TOKEN_HASH_LEN]);
/* True when hash is one of u's tokens (compares against every token, without stopping early). */
bool mqs_user_has_token(const struct mqs_user *u, const uint8_t hash[MQS_TOKEN_HASH_LEN]);
void mqs_user_free(struct mqs_user *u);
/* Building a snapshot: st takes u (replacing a user of the same id) on success; on false (out of
 * memory) the caller still owns u. */
MQS_MUST_CHECK bool mqs_state_add_user(struct mqs_state *st, struct mqs_user *u);
/* Adds a token hash to uid's user; a user st does not hold is ignored. False on out of memory. */
MQS_MUST_CHECK bool mqs_state_add_token(struct mqs_state *st, const char *uid, const uint8_t hash[MQS_TOKEN_HASH_LEN]);
/* Adds a group without members. False on out of memory. */
MQS_MUST_CHECK bool mqs_state_add_group(struct mqs_state *st, const char *gid, int64_t last_seq);
/* Adds a membership; a group st does not hold is ignored. False on out of memory. */
MQS_MUST_CHECK bool mqs_state_add_member(struct mqs_state *st, const char *gid, const char *uid, enum mqs_role role);
/* Lookups; NULL when absent. The pointers belong to st and live until the next change. */
const struct mqs_user *mqs_state_user(const struct mqs_state *st, const char *uid);
const struct mqs_group *mqs_state_group(const struct mqs_state *st, const char *gid);
bool mqs_state_is_member(const struct mqs_state *st, const char *gid, const char *uid);
/* Whether uid (may be NULL) is an admin user (SPEC 2, 3.7). */
bool mqs_state_is_admin(const struct mqs_state *st, const char *uid);
size_t mqs_state_user_count(const struct mqs_state *st);
size_t mqs_state_group_count(const struct mqs_state *st);
size_t mqs_state_member_count(const struct mqs_group *g);
/* Calls fn for every user id of st. */
void mqs_state_each_user(const struct mqs_state *st, void (*fn)(const char *uid, void *arg), void *arg);
/* Raises gid's last_seq to seq if it is lower (a stored or notified message). */
void mqs_state_raise_seq(struct mqs_state *st, const char *gid, int64_t seq);

enum mqs_member_event { MQS_MEMBER_SAME = 0, MQS_MEMBER_ADDED, MQS_MEMBER_REMOVED };

/* What one applied item changed, for the caller to act on (deliver.c). */
struct mqs_state_change {
	struct mqs_state *replaced; /* ITEM_SNAPSHOT: the previous state, whose users' clients must be
	                               re-checked; the caller frees it with mqs_state_free */
	bool first_load;            /* ITEM_SNAPSHOT: the first one since start */
	char user[MQS_ID_MAX + 1];  /* ITEM_USER: "" or the user whose clients must be re-checked */
	enum mqs_member_event member;
	char member_group[MQS_ID_MAX + 1]; /* with member != SAME */
	char member_user[MQS_ID_MAX + 1];
};

/* Applies one ITEM_SNAPSHOT/USER/GROUP/MEMBER/LASTSEQ item to *st (a snapshot replaces *st) and
 * consumes it. Changes before the first snapshot are ignored (they are part of it). Out of memory
 * leaves the change unapplied. out is always initialised. */
void mqs_state_apply(struct mqs_state **st, struct mqs_item *item, struct mqs_state_change *out);

/* ---- queue.c ------------------------------------------------------------------------------- */

struct mqs_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mqs_item *head;
	struct mqs_item *tail;
	atomic_size_t count;
};

void mqs_queue_init(struct mqs_queue *q);
/* Appends one item (or a NULL-terminated chain) and signals a waiter. */
void mqs_queue_push(struct mqs_queue *q, struct mqs_item *item);
/* Takes the whole queue (a chain, oldest first, owned by the caller), waiting up to timeout_ms
 * (0 = don't wait) for something to arrive or for *stop to become true. NULL if nothing. */
MQS_MUST_CHECK struct mqs_item *mqs_queue_take(struct mqs_queue *q, int timeout_ms, atomic_bool *stop);
/* Wakes waiters (used with stop flags). */
void mqs_queue_kick(struct mqs_queue *q);
/* Frees remaining items and the primitives. */
void mqs_queue_destroy(struct mqs_queue *q);

/* ---- wake.c: a loopback MQTT connection that ends the broker's 100 ms idle wait ------------- */

struct mqs_wake {
	pthread_mutex_t lock;
	int fd; /* -1 when not connected */
	char host[64];
	int port; /* 0 = disabled */
	char username[48];
	char password[48];
	char topic[48];
	atomic_bool pending;
	time_t last_attempt;
};

/* Initialises w disabled (port 0), ready for mqs_wake_close. Call exactly once, first. */
void mqs_wake_init(struct mqs_wake *w);
/* Parses "HOST:PORT" or "none" and generates the private credentials. False on a bad address (or
 * no randomness); w then stays disabled. */
MQS_MUST_CHECK bool mqs_wake_configure(struct mqs_wake *w, const char *address);
/* Broker thread, at TICK: (re)connects if needed (non-blocking, at most once a second). */
void mqs_wake_tick(struct mqs_wake *w);
/* Any thread: makes the broker loop run soon. Cheap when a wake is already pending. */
void mqs_wake_poke(struct mqs_wake *w);
/* Broker thread: the queue was drained; the next poke sends a packet again. */
void mqs_wake_clear(struct mqs_wake *w);
/* True when username/password are this process's wake credentials (constant time). */
bool mqs_wake_is_credential(const struct mqs_wake *w, const char *username, const char *password);
void mqs_wake_close(struct mqs_wake *w);

/* ---- plog.c: the plugin's log line (broker thread) ----------------------------------------- */

/* Logs "mqsync: [client 'ID': ]message" through the broker at level (MOSQ_LOG_*). client may be
 * NULL (no connection involved). Broker thread only: other threads use mqs_bglog. */
void mqs_plog(const struct mosquitto *client, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct mqs_plugin;

#define MQS_REFUSAL_SUMMARY_S 10 /* seconds between "suppressed" lines per reason */
#define MQS_REFUSAL_REASONS   64 /* reasons counted apart; the others share one count */

/* A refusal's log line (SPEC 3.1: every refusal has one), throttled so that a flood of refusals
 * cannot flood the log: per reason ("KIND: WHY", e.g. "subscription: not a member"), the first
 * refusal_log_burst (option; 0: no limit) of each second are logged at NOTICE, the rest only counted; mqs_refusal_tick
 * then logs "N more refusals (REASON) suppressed in the last S s", at most once per
 * MQS_REFUSAL_SUMMARY_S per reason. Out of memory: the line is logged unthrottled. Broker thread. */
void mqs_refusal_log(struct mqs_plugin *p, const struct mosquitto *client, const char *kind, const char *why,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Broker thread, at TICK: the summaries that are due. */
void mqs_refusal_tick(struct mqs_plugin *p);

/* ---- the context ---------------------------------------------------------------------------- */

struct mqs_client {
	char user[MQS_ID_MAX + 1];
	uint8_t token_hash[MQS_TOKEN_HASH_LEN];
	bool has_token;  /* authenticated by us with a token (auth true) */
	bool wake;       /* our own wake connection */
	bool online;     /* false: a persistent session kept while its client is away */
	bool group_subs; /* was granted a subscription that can match groups/{gid}/messages|receipts
	                    (exact or wildcard; never cleared: unsubscribing is not tracked) */
};

/* A membership removal whose connections are still to be disconnected (clients.c). */
struct mqs_removal {
	struct mqs_removal *next;
	int64_t due_ms; /* monotonic */
	char user[MQS_ID_MAX + 1];
	char group[MQS_ID_MAX + 1];
};

struct mqs_plugin {
	mosquitto_plugin_id_t *pid;
	struct mqs_config cfg;
	struct mqs_spool *spool;

	/* broker thread only */
	struct mqs_state *state; /* never NULL after init; state->loaded once the database answered */
	struct hmap *clients;    /* struct mosquitto * (pointer bytes) -> struct mqs_client * */
	struct hmap *conns;      /* uid -> (void *)(intptr_t) live connection count on this node */
	bool reauth_pass;        /* between MOSQ_EVT_RELOAD and the next TICK: SIGHUP re-authenticates every
	                            session, connected or not, through BASIC_AUTH */
	bool loop_21;            /* the broker has 2.1's loop (see plugin.c, on_tick): set once at init */
	uint8_t epoch[8];        /* random per process start: first half of every origin */
	uint64_t next_origin;    /* second half */
	char sentinel[48];       /* payload of held-back originals; unique to this process */
	size_t sentinel_len;
	time_t last_heartbeat;
	time_t last_backpressure_log;
	uint64_t stat_accepted, stat_refused, stat_delivered;
	struct hmap *refusals;        /* reason -> throttle counters (plog.c) */
	int64_t refusals_next_ms;     /* monotonic: the next look for due summaries (plog.c) */
	struct mqs_removal *removals; /* pending disconnects of removed members, oldest first (clients.c) */
	struct mqs_removal **removals_tail;
	/* The last client that logged in and a copy of its client id (malloc; both cleared at its
	 * DISCONNECT): tell a taken-over connection's will from a live publish (clients.c). The pointer
	 * is only compared, never dereferenced. */
	const struct mosquitto *last_auth;
	char *last_auth_id;

	/* shared with the threads (immutable after init, or atomic, or behind the queues) */
	struct mqs_wake wake;
	struct mqs_queue to_writer;
	struct mqs_queue to_broker;
	atomic_bool stopping;
	pthread_t writer;
	pthread_t listener;
	bool writer_started;
	bool listener_started;
	bool client_offline_registered; /* MQS_EVT_CLIENT_OFFLINE (2.1 only) */

	/* catch-up over MQTT (catchup.c) */
	struct hmap *catchups;   /* broker thread: connection pointer bytes -> uint64_t * ticket of its
	                            request in flight (at most one per connection) */
	uint64_t catchup_ticket; /* broker thread: the last ticket given */
	struct mqs_queue to_catchup;
	pthread_t catchup;
	bool catchup_started;
};

/* MOSQ_EVT_CLIENT_OFFLINE of Mosquitto 2.1 (not in 2.0's headers). */
#define MQS_EVT_CLIENT_OFFLINE 28

/* Hands a chain of items to the broker thread and wakes its loop (any thread but the broker's). */
void mqs_to_broker(struct mqs_plugin *p, struct mqs_item *chain);

/* Queues a log line for the broker thread (any thread). */
void mqs_bglog(struct mqs_plugin *p, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- clients.c (broker thread): auth, disconnect, presence ---------------------------------- */

int mqs_on_basic_auth(int event, void *event_data, void *userdata);
int mqs_on_disconnect(int event, void *event_data, void *userdata);
int mqs_on_reload(int event, void *event_data, void *userdata);
/* Whether client is connected now, as far as the plugin can tell: false for a session kept while its
 * client is away, and for a connection being taken over (SPEC 3.1 wills, 3.6 no queueing). */
bool mqs_client_connected(struct mqs_plugin *p, const struct mosquitto *client);
struct mqs_client *mqs_client_get(struct mqs_plugin *p, const struct mosquitto *client);
/* The user id a client acts as, or NULL if it has none we accept (the returned string belongs to
 * the client record or the broker; copy it before the client can disconnect). */
const char *mqs_client_uid(struct mqs_plugin *p, const struct mosquitto *client);
/* For log lines: the client's user id, else the username it gave (a clean session's record is gone
 * by the time its will is checked), else NULL. Same lifetime as mqs_client_uid's answer. */
const char *mqs_client_name(struct mqs_plugin *p, const struct mosquitto *client);
/* Disconnects the clients of uid whose token is no longer valid (all of them if the user is gone). */
void mqs_clients_revalidate(struct mqs_plugin *p, const char *uid);

#define MQS_REMOVAL_KICK_MS 200 /* from a membership removal to the disconnect of the removed member */

/* uid was removed from gid: in MQS_REMOVAL_KICK_MS (time for the member_removed inbox event to
 * go out to a client that keeps up), its connections that may hold deliveries of gid are
 * disconnected (SPEC 3: deliveries stop within 1 s; Mosquitto 2.0 cannot drop what it has queued
 * for a connection): those granted a group subscription and every persistent session (which may
 * hold subscriptions from an earlier connection). Not if uid is an admin user (they read every
 * group, 3.7) or a member of gid again by then. Out of memory: logged, nobody is disconnected. */
void mqs_clients_removed(struct mqs_plugin *p, const char *uid, const char *gid);
/* Broker thread, at TICK: the disconnects that are due. */
void mqs_clients_tick(struct mqs_plugin *p);
/* Frees the pending removals (at cleanup). */
void mqs_clients_removals_free(struct mqs_plugin *p);
void mqs_presence_heartbeat(struct mqs_plugin *p, time_t now);

/* ---- acl.c (broker thread): ACL decisions ---------------------------------------------------- */

/* One decision: rc is MOSQ_ERR_SUCCESS, MOSQ_ERR_ACL_DENIED or MOSQ_ERR_PLUGIN_DEFER; why, when
 * not NULL, is the refusal to log (SPEC 3.1; a static string). */
struct mqs_acl_decision {
	int rc;
	const char *why;
};

/* The decision for user uid (NULL: none we accept) asking access (MOSQ_ACL_*) to topic (a topic
 * name for READ/WRITE, a filter for SUBSCRIBE/UNSUBSCRIBE), from st alone. Pure: no broker
 * calls, no logging. other is the enum mqs_other_topics for ungoverned topics. */
MQS_MUST_CHECK struct mqs_acl_decision mqs_acl_decide(const struct mqs_state *st, int other, const char *uid,
                                                      int access, const char *topic);
int mqs_on_acl_check(int event, void *event_data, void *userdata);

/* ---- ingest.c (broker thread): MESSAGE ------------------------------------------------------- */

int mqs_on_message(int event, void *event_data, void *userdata);

/* ---- replay.c (broker thread, at init) -------------------------------------------------------- */

/* Origin epochs: this process's and those of earlier runs found in the spool. */
struct mqs_epochs {
	uint8_t (*e)[8];
	int n;
};

/* Queues every spooled record for the writer. *own gets this process's epoch first, then every
 * other epoch seen (the caller frees it with mqs_epochs_free, also on failure). Returns the
 * records replayed, or -1 (logged). */
MQS_MUST_CHECK long mqs_replay_spool(struct mqs_plugin *p, struct mqs_epochs *own);
void mqs_epochs_free(struct mqs_epochs *e);

/* ---- deliver.c (broker thread): everything that comes back from the threads ----------------- */

enum mqs_drain_mode {
	MQS_DRAIN_LIVE,  /* running: deliver, broadcast, apply state, print logs */
	MQS_DRAIN_START, /* before the callbacks are registered: apply state, print logs */
	MQS_DRAIN_STOP,  /* threads joined: print logs, release what was committed */
};

/* Takes everything queued for the broker thread and handles it as mode says. Returns whether
 * anything was taken. */
bool mqs_deliver_drain(struct mqs_plugin *p, enum mqs_drain_mode mode);

/* ---- catchup.c: catch-up over MQTT (SPEC 3.6) -------------------------------------------------- */

/* Broker thread, from MESSAGE on users/{topic_uid}/sync: validates the request of client (user uid,
 * NULL if none) and queues it for the catch-up thread. Returns MOSQ_ERR_SUCCESS (queued; no
 * subscriber can receive the request itself) or MOSQ_ERR_ACL_DENIED (refused, logged: 0x87). */
int mqs_catchup_request(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, const char *uid,
                        const char *topic_uid);
/* Broker thread, at DISCONNECT: the connection's request in flight, if any, is dropped when its
 * page comes back. */
void mqs_catchup_forget(struct mqs_plugin *p, const struct mosquitto *client);
/* Broker thread, when a page comes back: true when the connection that asked is still connected
 * (its pending entry ends here); false: drop the page. */
MQS_MUST_CHECK bool mqs_catchup_claim(struct mqs_plugin *p, const struct mqs_catchup *c);
/* Starts the catch-up thread (p->catchup, p->catchup_started). False if it did not start. */
MQS_MUST_CHECK bool mqs_catchup_start(struct mqs_plugin *p);

/* ---- batch.c (writer thread): one batch of messages, pure ------------------------------------- */

#define MQS_BATCH_BYTES (16u * 1024 * 1024) /* payload bytes per transaction, about */

/* A binary array parameter (PostgreSQL's array send format: one dimension, lower bound 1): a
 * 20-byte header, then per element a 4-byte length (-1 for NULL) and the bytes. */
struct mqs_barr {
	char *b;
	size_t len, cap;
	int32_t count;
	bool has_null;
	uint32_t oid;
	bool ok;
};

/* The ingest statement's columns: group, sender, payload, qos, cid, origin epoch, origin counter. */
#define MQS_BATCH_COLUMNS 7

struct mqs_batch {
	struct mqs_msg **cand; /* the messages sent to the database; ord k is cand[k - 1] */
	size_t ncand;
	struct mqs_barr col[MQS_BATCH_COLUMNS]; /* the ingest parameters (binary) */
	struct mqs_pgarr groups;                /* the lock parameter: each group once */
	struct mqs_pgarr upto_epoch;            /* spool_progress: per run of one epoch, its highest */
	struct mqs_pgarr upto_ctr;              /* counter */
};

/* The next batch from head (a chain of ITEM_MSG, oldest first): at most max messages and about
 * max_bytes of payload, at least one. Fills out[0..n) and returns n. */
size_t mqs_batch_split(struct mqs_item *head, size_t max, size_t max_bytes, struct mqs_msg **out);
/* Builds b from ms[0..n): every status is reset to pending, a repeat of a (sender, cid) within the
 * batch is marked duplicate and left out, the others become candidates in cand (n slots, the
 * caller's). False on out of memory. Free b with mqs_batch_free in every case. */
MQS_MUST_CHECK bool mqs_batch_build(struct mqs_batch *b, struct mqs_msg **ms, size_t n, struct mqs_msg **cand);
/* One row of the committed ingest result: candidate ord was stored as id/seq/ts. Ignores an ord
 * out of range. */
void mqs_batch_stored(struct mqs_batch *b, long ord, int64_t id, int64_t seq, const char *ts);
/* After commit: every candidate not stored is a duplicate, or, when its group is not in locked
 * (gid -> anything; the groups that still exist), of a deleted group. locked NULL (out of
 * memory): all duplicates. */
void mqs_batch_settle(struct mqs_batch *b, const struct hmap *locked);
/* Frees b's buffers (not the messages). Accepts NULL. */
void mqs_batch_free(struct mqs_batch *b);

/* ---- writer.c / listener.c (own threads) ---------------------------------------------------- */

/* Start the thread (broker thread, at init; p->writer / p->listener set). Each thread gets its
 * own state, allocated here: the listener a copy of own (as the array literal it queries with),
 * so nothing it reads changes after it starts. False if the thread did not start (logged). */
MQS_MUST_CHECK bool mqs_writer_start(struct mqs_plugin *p);
MQS_MUST_CHECK bool mqs_listener_start(struct mqs_plugin *p, const struct mqs_epochs *own);

#endif
