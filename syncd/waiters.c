/* waiters: held long-poll requests and the LISTEN thread that resumes them. */
#include "waiters.h"

#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slog.h"
#include "hmap.h"
#include "notify.h"
#include "pg.h"

/* The highest seq announced per group (gid -> malloc'ed int64_t), in common/hmap. Two generations
 * are kept and rotated every SEQMAP_ROTATE_S seconds, so memory is bounded by the groups active in
 * the last minute: an announcement only matters for the moment between a handler's query and its
 * suspension. */
#define SEQMAP_ROTATE_S 30

struct waiters {
	pthread_mutex_t lock;
	struct waiter *head; /* held requests */
	size_t count;
	struct hmap *announced[2]; /* [0] current generation, [1] previous one; NULL when empty */
	struct timespec rotated;
	bool stop;
	bool connected;
	char *conninfo;
	int pipefd[2]; /* wakes the thread when a waiter with an earlier deadline arrives */
	pthread_t thread;
	bool thread_started;
};

void waiter_reset(struct waiter *w)
{
	w->n = 0;
}

bool waiter_add(struct waiter *w, const char *gid, int64_t seen)
{
	if(w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 16;
		void *g = realloc(w->gids, cap * sizeof(*w->gids));
		if(g == NULL) return false;
		w->gids = g;
		void *s = realloc(w->seen, cap * sizeof(*w->seen));
		if(s == NULL) return false;
		w->seen = s;
		w->cap = cap;
	}
	size_t len = strnlen(gid, MQS_ID_MAX);
	memcpy(w->gids[w->n], gid, len);
	w->gids[w->n][len] = '\0';
	w->seen[w->n] = seen;
	w->n++;
	return true;
}

void waiter_free(struct waiter *w)
{
	free(w->gids);
	free(w->seen);
	w->gids = NULL;
	w->seen = NULL;
	w->n = w->cap = 0;
}

static int64_t seqmap_get(const struct hmap *m, const char *gid)
{
	const int64_t *v = m ? hmap_gets(m, gid) : NULL;
	return v ? *v : 0;
}

/* Raises gid's announced seq to at least seq in *m (created when NULL). On out of memory the entry
 * is dropped: a request registering right after may then miss this one wake-up and answer at its
 * deadline instead. */
static void seqmap_raise(struct hmap **m, const char *gid, int64_t seq)
{
	if(*m == NULL) *m = hmap_new(free);
	if(*m == NULL) return;
	int64_t *v = hmap_gets(*m, gid);
	if(v != NULL) {
		if(seq > *v) *v = seq;
		return;
	}
	v = malloc(sizeof(*v));
	if(v == NULL) return;
	*v = seq;
	if(!hmap_puts(*m, gid, v)) free(v);
}

static void unlink_waiter(struct waiters *ws, struct waiter *w)
{
	if(w->prev)
		w->prev->next = w->next;
	else
		ws->head = w->next;
	if(w->next) w->next->prev = w->prev;
	w->prev = w->next = NULL;
	ws->count--;
}

/* Moves w from the registry onto the to-resume list (singly linked through next). Lock held. */
static void take(struct waiters *ws, struct waiter *w, struct waiter **out)
{
	unlink_waiter(ws, w);
	w->next = *out;
	*out = w;
}

/* Resumes the taken waiters. Called without the lock: once resumed, a request may run (and
 * reuse its waiter) on another thread at once, so next is read first. */
static void resume_all(struct waiter *list)
{
	while(list) {
		struct waiter *next = list->next;
		struct MHD_Connection *c = list->conn;
		list->next = NULL;
		list->conn = NULL;
		MHD_resume_connection(c);
		list = next;
	}
}

static void kick(struct waiters *ws)
{
	char b = 1;
	ssize_t r = write(ws->pipefd[1], &b, 1);
	(void)r; /* a full pipe already wakes the thread */
}

enum waiters_result waiters_suspend(struct waiters *ws, struct waiter *w, struct MHD_Connection *conn)
{
	pthread_mutex_lock(&ws->lock);
	if(ws->stop) {
		pthread_mutex_unlock(&ws->lock);
		return WAITERS_STOPPING;
	}
	for(size_t i = 0; i < w->n; i++) {
		int64_t announced = seqmap_get(ws->announced[0], w->gids[i]);
		int64_t older = seqmap_get(ws->announced[1], w->gids[i]);
		if(announced > w->seen[i] || older > w->seen[i]) {
			pthread_mutex_unlock(&ws->lock);
			return WAITERS_RETRY;
		}
	}
	w->conn = conn;
	w->prev = NULL;
	w->next = ws->head;
	if(ws->head) ws->head->prev = w;
	ws->head = w;
	ws->count++;
	MHD_suspend_connection(conn);
	pthread_mutex_unlock(&ws->lock);
	kick(ws);
	return WAITERS_SUSPENDED;
}

size_t waiters_count(struct waiters *ws)
{
	pthread_mutex_lock(&ws->lock);
	size_t n = ws->count;
	pthread_mutex_unlock(&ws->lock);
	return n;
}

bool waiters_connected(struct waiters *ws)
{
	pthread_mutex_lock(&ws->lock);
	bool c = ws->connected;
	pthread_mutex_unlock(&ws->lock);
	return c;
}

static int64_t ms_until(const struct timespec *t, const struct timespec *now)
{
	return (int64_t)(t->tv_sec - now->tv_sec) * 1000 + (t->tv_nsec - now->tv_nsec) / 1000000;
}

/* Applies one notification. Lock held. */
static void on_notify(struct waiters *ws, const char *channel, const char *payload, struct waiter **out)
{
	char gid[MQS_ID_MAX + 1], uid[MQS_ID_MAX + 1];
	int64_t seq;

	if(!strcmp(channel, MQS_CHAN_MSG)) {
		if(!mqs_notify_msg_parse(payload, gid, &seq)) return;
		seqmap_raise(&ws->announced[0], gid, seq);
		for(struct waiter *w = ws->head, *next; w; w = next) {
			next = w->next;
			for(size_t i = 0; i < w->n; i++) {
				if(w->seen[i] < seq && !strcmp(w->gids[i], gid)) {
					take(ws, w, out);
					break;
				}
			}
		}
	} else if(!strcmp(channel, MQS_CHAN_STATE) && mqs_notify_state_parse(payload, gid, uid) == MQS_NOTIFY_MEMBER) {
		/* member:<gid>:<uid>: the user's set of groups changed; let its requests look again. */
		for(struct waiter *w = ws->head, *next; w; w = next) {
			next = w->next;
			if(!strcmp(w->user, uid)) take(ws, w, out);
		}
	}
}

static PGconn *listen_connect(const char *conninfo)
{
	/* Keepalives (mqs_pg_connect): a silently dead peer must not leave held requests unwoken. */
	PGconn *c = mqs_pg_connect(conninfo, "mqsyncd-listen", "2", NULL);
	if(PQstatus(c) != CONNECTION_OK) goto fail;
	PGresult *r = PQexec(c, "LISTEN " MQS_CHAN_MSG "; LISTEN " MQS_CHAN_STATE);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if(!ok) goto fail;
	if(PQsetnonblocking(c, 1) != 0) goto fail;
	return c;
fail:
	PQfinish(c);
	return NULL;
}

/* One connection attempt of the LISTEN thread: the connection or NULL (next_try then a second
 * from now). On success every held request is taken into *wake: notifications may have been
 * missed while down, so everyone looks again. *warned keeps the log to one line per outage. */
static PGconn *listen_reconnect(struct waiters *ws, struct timespec *now, struct timespec *next_try, bool *warned,
                                struct waiter **wake)
{
	PGconn *pg = listen_connect(ws->conninfo);

	clock_gettime(CLOCK_MONOTONIC, now);
	pthread_mutex_lock(&ws->lock);
	ws->connected = pg != NULL;
	if(pg != NULL) {
		while(ws->head) take(ws, ws->head, wake);
	}
	pthread_mutex_unlock(&ws->lock);
	if(pg == NULL) {
		if(!*warned) syncd_log(MQS_LOG_WARN, NULL, "listener: cannot connect; long-polls only time out");
		*warned = true;
		*next_try = *now;
		next_try->tv_sec += 1;
	} else {
		if(*warned) syncd_log(MQS_LOG_INFO, NULL, "listener: connected");
		*warned = false;
	}
	return pg;
}

/* Reads what arrived on pg and applies its notifications (lock held). Returns pg, or NULL after
 * closing it when the connection was lost. */
static PGconn *listen_consume(struct waiters *ws, PGconn *pg, bool *warned, struct waiter **wake)
{
	if(PQconsumeInput(pg) == 0) {
		syncd_log(MQS_LOG_WARN, NULL, "listener: connection lost: %s", PQerrorMessage(pg));
		PQfinish(pg);
		ws->connected = false;
		*warned = true;
		return NULL;
	}
	PGnotify *nf;
	while((nf = PQnotifies(pg)) != NULL) {
		on_notify(ws, nf->relname, nf->extra, wake);
		PQfreemem(nf);
	}
	return pg;
}

static void *listen_thread(void *arg)
{
	struct waiters *ws = arg;
	PGconn *pg = NULL;
	struct timespec next_try = {0, 0};
	bool warned = false;

	for(;;) {
		struct waiter *wake = NULL;
		struct timespec now;
		int timeout = 1000;

		clock_gettime(CLOCK_MONOTONIC, &now);
		if(pg == NULL && ms_until(&next_try, &now) <= 0)
			pg = listen_reconnect(ws, &now, &next_try, &warned, &wake);
		pthread_mutex_lock(&ws->lock);
		if(ws->stop) {
			pthread_mutex_unlock(&ws->lock);
			resume_all(wake);
			break;
		}
		for(struct waiter *w = ws->head; w; w = w->next) {
			int64_t ms = ms_until(&w->deadline, &now);
			if(ms < timeout) timeout = ms < 0 ? 0 : (int)ms + 1;
		}
		pthread_mutex_unlock(&ws->lock);
		resume_all(wake);
		wake = NULL;
		if(pg == NULL) {
			int64_t ms = ms_until(&next_try, &now);
			if(ms < timeout) timeout = ms < 0 ? 0 : (int)ms;
		}

		struct pollfd fds[2] = {{ws->pipefd[0], POLLIN, 0}, {pg ? PQsocket(pg) : -1, POLLIN, 0}};
		int r = poll(fds, pg ? 2 : 1, timeout);
		if(r < 0 && errno != EINTR) syncd_log(MQS_LOG_WARN, NULL, "listener: poll: %s", strerror(errno));
		if(r > 0 && (fds[0].revents & POLLIN)) {
			char buf[256];
			while(read(ws->pipefd[0], buf, sizeof(buf)) > 0) {
			}
		}
		pthread_mutex_lock(&ws->lock);
		if(pg != NULL && r > 0 && fds[1].revents) pg = listen_consume(ws, pg, &warned, &wake);
		clock_gettime(CLOCK_MONOTONIC, &now);
		for(struct waiter *w = ws->head, *next; w; w = next) {
			next = w->next;
			if(ms_until(&w->deadline, &now) <= 0) take(ws, w, &wake);
		}
		if(now.tv_sec - ws->rotated.tv_sec >= SEQMAP_ROTATE_S) {
			hmap_free(ws->announced[1]);
			ws->announced[1] = ws->announced[0];
			ws->announced[0] = NULL; /* created at the next announcement */
			ws->rotated = now;
		}
		pthread_mutex_unlock(&ws->lock);
		resume_all(wake);
	}
	PQfinish(pg);
	return NULL;
}

struct waiters *waiters_start(const char *conninfo)
{
	struct waiters *ws = calloc(1, sizeof(*ws));
	if(ws == NULL) return NULL;
	ws->pipefd[0] = ws->pipefd[1] = -1;
	pthread_mutex_init(&ws->lock, NULL);
	ws->conninfo = strdup(conninfo);
	if(ws->conninfo == NULL || pipe(ws->pipefd) != 0) goto fail;
	for(int i = 0; i < 2; i++) {
		fcntl(ws->pipefd[i], F_SETFL, O_NONBLOCK);
		fcntl(ws->pipefd[i], F_SETFD, FD_CLOEXEC);
	}
	clock_gettime(CLOCK_MONOTONIC, &ws->rotated);
	if(pthread_create(&ws->thread, NULL, listen_thread, ws) != 0) goto fail;
	ws->thread_started = true;
	return ws;
fail:
	waiters_free(ws);
	return NULL;
}

void waiters_stop(struct waiters *ws)
{
	struct waiter *wake = NULL;

	if(ws == NULL) return;
	pthread_mutex_lock(&ws->lock);
	bool was = ws->stop;
	ws->stop = true;
	pthread_mutex_unlock(&ws->lock);
	if(was) return;
	kick(ws);
	if(ws->thread_started) pthread_join(ws->thread, NULL);
	ws->thread_started = false;
	pthread_mutex_lock(&ws->lock);
	while(ws->head) take(ws, ws->head, &wake);
	pthread_mutex_unlock(&ws->lock);
	resume_all(wake);
}

void waiters_free(struct waiters *ws)
{
	if(ws == NULL) return;
	waiters_stop(ws);
	for(int i = 0; i < 2; i++) {
		if(ws->pipefd[i] >= 0) close(ws->pipefd[i]);
	}
	hmap_free(ws->announced[0]);
	hmap_free(ws->announced[1]);
	free(ws->conninfo);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
}
