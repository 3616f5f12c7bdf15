/* pool: a fixed set of PostgreSQL connections shared by the HTTP worker threads. */
#include "pool.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slog.h"
#include "pg.h"
#include "util.h"

struct syncd_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *conninfo;
	syncd_pool_setup setup;
	int size;
	int in_use;
	int nfree;
	PGconn **free_conns;       /* NULL entries are slots not yet connected */
	atomic_llong failed_at_ms; /* monotonic time of the last failed connect, 0 if none */
};

#define FAIL_FAST_MS 1000 /* after a failed connect, answer "unavailable" at once for this long */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct syncd_pool *syncd_pool_new(const char *conninfo, int size, syncd_pool_setup setup)
{
	struct syncd_pool *pool = calloc(1, sizeof(*pool));
	if(pool == NULL) return NULL;
	pool->conninfo = strdup(conninfo);
	pool->free_conns = calloc((size_t)size, sizeof(PGconn *));
	if(pool->conninfo == NULL || pool->free_conns == NULL) {
		free(pool->conninfo);
		free(pool->free_conns);
		free(pool);
		return NULL;
	}
	pool->setup = setup;
	pool->size = size;
	pool->nfree = size;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	return pool;
}

/* Opens and sets up one connection. NULL on failure, with *unreachable telling a server that could
 * not be reached (slow: the connect timeout) from one that refused the setup (fast). */
static PGconn *connect_db(const char *conninfo, syncd_pool_setup setup, bool *unreachable)
{
	*unreachable = false;
	PGconn *c = mqs_pg_connect(conninfo, "mqsyncd", "3", NULL);
	if(PQstatus(c) != CONNECTION_OK) {
		syncd_log(MQS_LOG_WARN, NULL, "database connection failed: %s", PQerrorMessage(c));
		PQfinish(c);
		*unreachable = true;
		return NULL;
	}
	if(setup != NULL && !setup(c)) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *syncd_pool_get(struct syncd_pool *pool, int timeout_ms)
{
	struct timespec deadline = mqs_deadline_ms(timeout_ms);
	PGconn *c;

	pthread_mutex_lock(&pool->lock);
	while(pool->nfree == 0) {
		if(pthread_cond_timedwait(&pool->cond, &pool->lock, &deadline) == ETIMEDOUT && pool->nfree == 0) {
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
	}
	c = pool->free_conns[--pool->nfree];
	pool->in_use++;
	pthread_mutex_unlock(&pool->lock);

	if(c != NULL && PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		c = NULL;
	}
	if(c == NULL) {
		/* The database was unreachable a moment ago: do not make every request wait out the
		 * connect timeout (3 s) again; the caller answers 503 straight away. */
		long long failed = atomic_load(&pool->failed_at_ms);
		if(failed == 0 || now_ms() - failed >= FAIL_FAST_MS) {
			bool unreachable;
			c = connect_db(pool->conninfo, pool->setup, &unreachable);
			atomic_store(&pool->failed_at_ms, unreachable ? now_ms() : 0);
		}
	}
	if(c == NULL) {
		/* Give the slot back empty so the next caller retries the connection. */
		syncd_pool_put(pool, NULL, true);
	}
	return c;
}

void syncd_pool_put(struct syncd_pool *pool, PGconn *conn, bool broken)
{
	if(conn != NULL && (broken || PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)) {
		PQfinish(conn);
		conn = NULL;
	}
	pthread_mutex_lock(&pool->lock);
	pool->free_conns[pool->nfree++] = conn;
	pool->in_use--;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

void syncd_pool_stats(struct syncd_pool *pool, int *size, int *in_use)
{
	pthread_mutex_lock(&pool->lock);
	*size = pool->size;
	*in_use = pool->in_use;
	pthread_mutex_unlock(&pool->lock);
}

void syncd_pool_free(struct syncd_pool *pool)
{
	if(pool == NULL) return;
	for(int i = 0; i < pool->nfree; i++) PQfinish(pool->free_conns[i]);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->free_conns);
	free(pool->conninfo);
	free(pool);
}
