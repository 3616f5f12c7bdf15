/* plugin.h: the plugin's private header: the context and the items its threads exchange, in one
 * section per .c file.
 *
 * Threads (see docs/plugin.md):
 *   broker thread   every Mosquitto callback; owns the in-memory state, the spool, the client
 *                   table; never calls libpq.
 *   writer thread   writer.c: stores messages, receipts, presence; touches only libpq and queues.
 *   listener thread listener.c: LISTEN/NOTIFY, loads users/groups/memberships.
 * They meet in two mutex-protected queues of struct mqs_item (plain malloc, never
 * mosquitto_malloc). Background threads log by queueing ITEM_LOG; the broker thread prints. */
#ifndef MQS_PLUGIN_H
#define MQS_PLUGIN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "hmap.h"
#include "ids.h"
#include "spool.h"
#include "token.h"

struct mosquitto;
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
};

struct mqs_item {
	struct mqs_item *next;
	enum mqs_item_kind kind;
};

enum mqs_msg_status { MSG_PENDING = 0, MSG_STORED, MSG_DUPLICATE, MSG_NO_GROUP };

struct mqs_msg {
	struct mqs_item hdr;
	uint8_t origin[MQS_ORIGIN_LEN];
	char group[MQS_ID_MAX + 1];
	char sender[MQS_ID_MAX + 1];
	char cid[65]; /* "" when absent */
	uint8_t qos;
	bool remote;
	uint64_t received_ms;
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

/* Broker-thread state, also built by the listener for snapshots. */
struct mqs_user {
	char id[MQS_ID_MAX + 1];
	bool admin;
	int ntokens;
	uint8_t (*tokens)[MQS_TOKEN_HASH_LEN];
};

enum mqs_role { ROLE_MEMBER = 1, ROLE_ADMIN = 2 };

struct mqs_group {
	char id[MQS_ID_MAX + 1];
	int64_t last_seq;
	struct hmap *members; /* uid -> (void *)(intptr_t)enum mqs_role */
};

struct mqs_snapshot {
	struct mqs_item hdr;
	struct hmap *users;  /* id -> struct mqs_user * */
	struct hmap *groups; /* id -> struct mqs_group * */
};

struct mqs_user_change {
	struct mqs_item hdr;
	bool exists;
	struct mqs_user *user; /* NULL when !exists */
	char id[MQS_ID_MAX + 1];
};

struct mqs_group_change {
	struct mqs_item hdr;
	bool exists;
	char id[MQS_ID_MAX + 1];
	int64_t last_seq;
};

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

/* The big-endian 64-bit integer at b (spool origins, libpq binary int8 results). */
static inline int64_t mqs_be64(const void *b)
{
	const uint8_t *p = b;
	uint64_t v = 0;
	for(int i = 0; i < 8; i++) v = (v << 8) | p[i];
	return (int64_t)v;
}

/* Frees any item, whatever its kind. Accepts NULL. */
void mqs_item_free(struct mqs_item *item);
void mqs_user_free(void *user);
void mqs_group_free(void *group);

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
/* Takes the whole queue (a chain, oldest first), waiting up to timeout_ms (0 = don't wait) for
 * something to arrive or for *stop to become true. NULL if nothing. */
struct mqs_item *mqs_queue_take(struct mqs_queue *q, int timeout_ms, atomic_bool *stop);
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
	bool warned;
};

/* Parses "HOST:PORT" or "none"; generates the private credentials. False on a bad address. */
bool mqs_wake_init(struct mqs_wake *w, const char *address);
/* Broker thread, at TICK: (re)connects if needed (non-blocking, at most once a second). */
void mqs_wake_tick(struct mqs_wake *w);
/* Any thread: makes the broker loop run soon. Cheap when a wake is already pending. */
void mqs_wake_poke(struct mqs_wake *w);
/* Broker thread: the queue was drained; the next poke sends a packet again. */
void mqs_wake_clear(struct mqs_wake *w);
/* True when username/password are this process's wake credentials (constant time). */
bool mqs_wake_is_credential(const struct mqs_wake *w, const char *username, const char *password);
void mqs_wake_close(struct mqs_wake *w);

/* ---- the context ---------------------------------------------------------------------------- */

struct mqs_client {
	char user[MQS_ID_MAX + 1];
	uint8_t token_hash[MQS_TOKEN_HASH_LEN];
	bool has_token; /* authenticated by us with a token (auth true) */
	bool wake;      /* our own wake connection */
	bool online;    /* false: a persistent session kept while its client is away */
};

struct mqs_plugin {
	mosquitto_plugin_id_t *pid;
	struct mqs_config cfg;
	struct mqs_spool *spool;

	/* broker thread only */
	struct hmap *users;   /* id -> struct mqs_user * */
	struct hmap *groups;  /* id -> struct mqs_group * */
	struct hmap *clients; /* struct mosquitto * (pointer bytes) -> struct mqs_client * */
	struct hmap *conns;   /* uid -> (void *)(intptr_t) live connection count on this node */
	bool state_loaded;
	bool reauth_pass;     /* between MOSQ_EVT_RELOAD and the next TICK: SIGHUP re-authenticates every
	                         session, connected or not, through BASIC_AUTH */
	uint8_t epoch[8];     /* random per process start: first half of every origin */
	uint64_t next_origin; /* second half */
	char sentinel[48];    /* payload of held-back originals; unique to this process */
	size_t sentinel_len;
	time_t last_heartbeat;
	time_t last_backpressure_log;
	uint64_t stat_accepted, stat_refused, stat_delivered;

	/* shared with the threads (immutable after init, or atomic, or behind the queues) */
	struct mqs_wake wake;
	struct mqs_queue to_writer;
	struct mqs_queue to_broker;
	atomic_bool stopping;
	pthread_t writer;
	pthread_t listener;
	bool writer_started;
	bool listener_started;
	uint8_t (*own_epochs)[8]; /* this process's epoch and those found in the replayed spool */
	int own_epoch_count;
};

/* Hands a chain of items to the broker thread and wakes its loop (any thread but the broker's). */
void mqs_to_broker(struct mqs_plugin *p, struct mqs_item *chain);

/* Queues a log line for the broker thread (any thread). */
void mqs_bglog(struct mqs_plugin *p, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- state.c (broker thread) ------------------------------------------------------------------ */

bool mqs_is_member(struct mqs_plugin *p, const char *gid, const char *uid);
struct mqs_group *mqs_group_get(struct mqs_plugin *p, const char *gid);
/* Applies one ITEM_SNAPSHOT/USER/GROUP/MEMBER/LASTSEQ item (consumed). */
void mqs_state_apply(struct mqs_plugin *p, struct mqs_item *item);

/* ---- clients.c (broker thread): auth, disconnect, presence ---------------------------------- */

int mqs_on_basic_auth(int event, void *event_data, void *userdata);
int mqs_on_disconnect(int event, void *event_data, void *userdata);
int mqs_on_reload(int event, void *event_data, void *userdata);
struct mqs_client *mqs_client_get(struct mqs_plugin *p, const struct mosquitto *client);
/* The user id a client acts as, or NULL if it has none we accept (the returned string belongs to
 * the client record or the broker; copy it before the client can disconnect). */
const char *mqs_client_uid(struct mqs_plugin *p, const struct mosquitto *client);
/* Disconnects the clients of uid whose token is no longer valid (all of them if the user is gone). */
void mqs_clients_revalidate(struct mqs_plugin *p, const char *uid);
void mqs_presence_heartbeat(struct mqs_plugin *p, time_t now);

/* ---- acl.c (broker thread) ------------------------------------------------------------------ */

int mqs_on_acl_check(int event, void *event_data, void *userdata);

/* ---- message.c (broker thread) --------------------------------------------------------------- */

int mqs_on_message(int event, void *event_data, void *userdata);
/* Replays the spool into the writer queue at start. Returns records replayed or -1. */
long mqs_spool_replay_all(struct mqs_plugin *p);
/* Handles results from the threads: deliveries, receipts, state, logs. */
void mqs_drain(struct mqs_plugin *p);
/* Publishes a JSON event to users/{uid}/inbox. */
void mqs_inbox_event(struct mqs_plugin *p, const char *uid, const char *event, const char *gid);

/* ---- writer.c / listener.c (own threads) ---------------------------------------------------- */

void *mqs_writer_main(void *arg);
void *mqs_listener_main(void *arg);

#endif
