/* queue: the mutex-protected hand-off between the broker thread and the database threads, and the
 * items that travel through it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"
#include "util.h"

void mqs_item_free(struct mqs_item *item)
{
	if(item == NULL) return;
	switch(item->kind) {
	case ITEM_MSG:
		free(((struct mqs_msg *)item)->payload);
		break;
	case ITEM_SNAPSHOT:
		mqs_state_free(((struct mqs_snapshot *)item)->state);
		break;
	case ITEM_USER:
		mqs_user_free(((struct mqs_user_change *)item)->user);
		break;
	case ITEM_CATCHUP: {
		struct mqs_catchup *c = (struct mqs_catchup *)item;
		for(struct mqs_item *m = c->msgs, *next; m != NULL; m = next) {
			next = m->next;
			mqs_item_free(m);
		}
		free(c->clientid);
		free(c->next);
		free(c->req.tok); /* what mqs_sync_req_clear frees (topic.c, not linked by every user of queue.c) */
		free(c->req.id);
		break;
	}
	default:
		break;
	}
	free(item);
}

void mqs_queue_init(struct mqs_queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->head = q->tail = NULL;
	atomic_store(&q->count, 0);
}

void mqs_queue_push(struct mqs_queue *q, struct mqs_item *item)
{
	size_t n = 0;
	struct mqs_item *last = item;

	if(item == NULL) return;
	for(n = 1; last->next != NULL; n++) last = last->next;
	pthread_mutex_lock(&q->lock);
	if(q->tail)
		q->tail->next = item;
	else
		q->head = item;
	q->tail = last;
	atomic_fetch_add(&q->count, n);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

struct mqs_item *mqs_queue_take(struct mqs_queue *q, int timeout_ms, atomic_bool *stop)
{
	struct mqs_item *chain;

	if(timeout_ms == 0 && atomic_load(&q->count) == 0) return NULL;
	pthread_mutex_lock(&q->lock);
	if(q->head == NULL && timeout_ms > 0 && !(stop && atomic_load(stop))) {
		struct timespec ts = mqs_deadline_ms(timeout_ms);
		while(q->head == NULL && !(stop && atomic_load(stop))) {
			if(pthread_cond_timedwait(&q->cond, &q->lock, &ts) == ETIMEDOUT) break;
		}
	}
	chain = q->head;
	q->head = q->tail = NULL;
	atomic_store(&q->count, 0);
	pthread_mutex_unlock(&q->lock);
	return chain;
}

void mqs_queue_kick(struct mqs_queue *q)
{
	pthread_mutex_lock(&q->lock);
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void mqs_queue_destroy(struct mqs_queue *q)
{
	struct mqs_item *it = q->head;
	while(it != NULL) {
		struct mqs_item *next = it->next;
		mqs_item_free(it);
		it = next;
	}
	q->head = q->tail = NULL;
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}

void mqs_bglog(struct mqs_plugin *p, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if(n < 0) return;
	if((size_t)n >= sizeof(buf)) n = sizeof(buf) - 1;
	struct mqs_logline *l = malloc(sizeof(*l) + (size_t)n + 1);
	if(l == NULL) return;
	l->hdr.next = NULL;
	l->hdr.kind = ITEM_LOG;
	l->level = level;
	memcpy(l->text, buf, (size_t)n + 1);
	mqs_to_broker(p, &l->hdr);
}

void mqs_to_broker(struct mqs_plugin *p, struct mqs_item *chain)
{
	mqs_queue_push(&p->to_broker, chain);
	mqs_wake_poke(&p->wake);
}
