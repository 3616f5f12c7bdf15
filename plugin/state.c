/* state: the broker thread's copy of users, groups and memberships, answering every auth and ACL
 * check from memory, kept fresh by the listener thread's changes. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct mqs_group *mqs_group_get(struct mqs_plugin *p, const char *gid)
{
	return p->groups ? hmap_gets(p->groups, gid) : NULL;
}

bool mqs_is_member(struct mqs_plugin *p, const char *gid, const char *uid)
{
	struct mqs_group *g = mqs_group_get(p, gid);
	return g != NULL && uid != NULL && hmap_gets(g->members, uid) != NULL;
}

/* Re-checks the connected clients of one user of the previous snapshot. */
static void revalidate_one(const void *key, size_t keylen, void *value, void *arg)
{
	(void)keylen;
	(void)value;
	mqs_clients_revalidate(arg, (const char *)key);
}

static void apply_snapshot(struct mqs_plugin *p, struct mqs_snapshot *s)
{
	struct hmap *old_users = p->users;

	hmap_free(p->groups);
	p->users = s->users;
	p->groups = s->groups;
	s->users = s->groups = NULL;
	/* Connected users whose tokens were revoked while we were not listening. */
	if(old_users != NULL) {
		hmap_each(old_users, revalidate_one, p);
		hmap_free(old_users);
	}
	if(!p->state_loaded) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqsync: state loaded: %zu users, %zu groups",
		                     hmap_count(p->users), hmap_count(p->groups));
	}
	p->state_loaded = true;
}

static void apply_member(struct mqs_plugin *p, struct mqs_member_change *m)
{
	struct mqs_group *g = mqs_group_get(p, m->group);
	bool was = g != NULL && hmap_gets(g->members, m->user) != NULL;

	if(g == NULL) return; /* the group change that created it comes first, or it is gone */
	if(m->exists) {
		hmap_puts(g->members, m->user, (void *)(intptr_t)m->role);
		if(!was) mqs_inbox_event(p, m->user, "member_added", m->group);
	} else if(was) {
		hmap_dels(g->members, m->user);
		mqs_inbox_event(p, m->user, "member_removed", m->group);
	}
}

static void apply_group(struct mqs_plugin *p, struct mqs_group_change *c)
{
	struct mqs_group *g = mqs_group_get(p, c->id);

	if(!c->exists) {
		if(g != NULL) hmap_dels(p->groups, c->id);
		return;
	}
	if(g != NULL) {
		if(c->last_seq > g->last_seq) g->last_seq = c->last_seq;
		return;
	}
	g = calloc(1, sizeof(*g));
	if(g == NULL) return;
	snprintf(g->id, sizeof(g->id), "%s", c->id);
	g->last_seq = c->last_seq;
	g->members = hmap_new(NULL);
	if(g->members == NULL || !hmap_puts(p->groups, c->id, g)) mqs_group_free(g);
}

void mqs_state_apply(struct mqs_plugin *p, struct mqs_item *item)
{
	if(item->kind == ITEM_SNAPSHOT) {
		apply_snapshot(p, (struct mqs_snapshot *)item);
	} else if(!p->state_loaded) {
		/* Changes before the first snapshot are part of it. */
	} else if(item->kind == ITEM_USER) {
		struct mqs_user_change *u = (struct mqs_user_change *)item;
		if(u->exists) {
			if(hmap_puts(p->users, u->id, u->user)) u->user = NULL;
		} else {
			hmap_dels(p->users, u->id);
		}
		mqs_clients_revalidate(p, u->id);
	} else if(item->kind == ITEM_GROUP) {
		apply_group(p, (struct mqs_group_change *)item);
	} else if(item->kind == ITEM_MEMBER) {
		apply_member(p, (struct mqs_member_change *)item);
	} else if(item->kind == ITEM_LASTSEQ) {
		struct mqs_lastseq *l = (struct mqs_lastseq *)item;
		struct mqs_group *g = mqs_group_get(p, l->group);
		if(g != NULL && l->last_seq > g->last_seq) g->last_seq = l->last_seq;
	}
	mqs_item_free(item);
}
