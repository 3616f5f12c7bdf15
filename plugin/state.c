/* state: users, groups and memberships — the only code that builds, frees, changes and looks them up.
 *
 * Pure data: no broker API, no libpq, no logging. The listener thread builds snapshots and single
 * rows with it (objects it alone holds until it queues them); the broker thread owns the live copy
 * (p->state), answers auth and ACL checks from it, and applies the listener's changes with
 * mqs_state_apply, which reports what changed instead of acting on it: deliver.c publishes the
 * inbox events and clients.c re-checks connections. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

static void user_free_cb(void *v)
{
	mqs_user_free(v);
}

static void group_free(void *v)
{
	struct mqs_group *g = v;
	if(g == NULL) return;
	hmap_free(g->members);
	free(g);
}

struct mqs_state *mqs_state_new(void)
{
	struct mqs_state *st = calloc(1, sizeof(*st));
	if(st == NULL) return NULL;
	st->users = hmap_new(user_free_cb);
	st->groups = hmap_new(group_free);
	if(st->users == NULL || st->groups == NULL) {
		mqs_state_free(st);
		return NULL;
	}
	return st;
}

void mqs_state_free(struct mqs_state *st)
{
	if(st == NULL) return;
	hmap_free(st->users);
	hmap_free(st->groups);
	free(st);
}

struct mqs_user *mqs_user_new(const char *id, bool admin)
{
	struct mqs_user *u = calloc(1, sizeof(*u));
	if(u == NULL) return NULL;
	snprintf(u->id, sizeof(u->id), "%s", id);
	u->admin = admin;
	return u;
}

bool mqs_user_add_token(struct mqs_user *u, const uint8_t hash[MQS_TOKEN_HASH_LEN])
{
	uint8_t(*t)[MQS_TOKEN_HASH_LEN] = realloc(u->tokens, (size_t)(u->ntokens + 1) * sizeof(*t));
	if(t == NULL) return false;
	memcpy(t[u->ntokens], hash, MQS_TOKEN_HASH_LEN);
	u->tokens = t;
	u->ntokens++;
	return true;
}

bool mqs_user_has_token(const struct mqs_user *u, const uint8_t hash[MQS_TOKEN_HASH_LEN])
{
	bool found = false;
	for(int i = 0; i < u->ntokens; i++) found |= mqs_token_hash_eq(u->tokens[i], hash);
	return found;
}

void mqs_user_free(struct mqs_user *u)
{
	if(u == NULL) return;
	free(u->tokens);
	free(u);
}

bool mqs_state_add_user(struct mqs_state *st, struct mqs_user *u)
{
	return hmap_puts(st->users, u->id, u);
}

bool mqs_state_add_token(struct mqs_state *st, const char *uid, const uint8_t hash[MQS_TOKEN_HASH_LEN])
{
	struct mqs_user *u = hmap_gets(st->users, uid);
	return u == NULL || mqs_user_add_token(u, hash);
}

/* A group without members, or NULL on out of memory. */
static struct mqs_group *group_new(const char *gid, int64_t last_seq)
{
	struct mqs_group *g = calloc(1, sizeof(*g));
	if(g == NULL) return NULL;
	snprintf(g->id, sizeof(g->id), "%s", gid);
	g->last_seq = last_seq;
	g->members = hmap_new(NULL);
	if(g->members == NULL) {
		free(g);
		return NULL;
	}
	return g;
}

bool mqs_state_add_group(struct mqs_state *st, const char *gid, int64_t last_seq)
{
	struct mqs_group *g = group_new(gid, last_seq);
	if(g == NULL || !hmap_puts(st->groups, g->id, g)) {
		group_free(g);
		return false;
	}
	return true;
}

bool mqs_state_add_member(struct mqs_state *st, const char *gid, const char *uid, enum mqs_role role)
{
	struct mqs_group *g = hmap_gets(st->groups, gid);
	return g == NULL || hmap_puts(g->members, uid, (void *)(intptr_t)role);
}

const struct mqs_user *mqs_state_user(const struct mqs_state *st, const char *uid)
{
	return st != NULL && uid != NULL ? hmap_gets(st->users, uid) : NULL;
}

const struct mqs_group *mqs_state_group(const struct mqs_state *st, const char *gid)
{
	return st != NULL ? hmap_gets(st->groups, gid) : NULL;
}

bool mqs_state_is_member(const struct mqs_state *st, const char *gid, const char *uid)
{
	const struct mqs_group *g = mqs_state_group(st, gid);
	return g != NULL && uid != NULL && hmap_gets(g->members, uid) != NULL;
}

bool mqs_state_is_admin(const struct mqs_state *st, const char *uid)
{
	const struct mqs_user *u = mqs_state_user(st, uid);
	return u != NULL && u->admin;
}

size_t mqs_state_user_count(const struct mqs_state *st)
{
	return hmap_count(st->users);
}

size_t mqs_state_group_count(const struct mqs_state *st)
{
	return hmap_count(st->groups);
}

size_t mqs_state_member_count(const struct mqs_group *g)
{
	return hmap_count(g->members);
}

struct each_user {
	void (*fn)(const char *uid, void *arg);
	void *arg;
};

static void each_user_cb(const void *key, size_t keylen, void *value, void *arg)
{
	struct each_user *e = arg;
	(void)keylen;
	(void)value;
	e->fn(key, e->arg);
}

void mqs_state_each_user(const struct mqs_state *st, void (*fn)(const char *uid, void *arg), void *arg)
{
	struct each_user e = {fn, arg};
	hmap_each(st->users, each_user_cb, &e);
}

void mqs_state_raise_seq(struct mqs_state *st, const char *gid, int64_t seq)
{
	struct mqs_group *g = hmap_gets(st->groups, gid);
	if(g != NULL && seq > g->last_seq) g->last_seq = seq;
}

static void apply_member(struct mqs_state *st, const struct mqs_member_change *m, struct mqs_state_change *out)
{
	struct mqs_group *g = hmap_gets(st->groups, m->group);
	bool was = g != NULL && hmap_gets(g->members, m->user) != NULL;

	if(g == NULL) return; /* the group change that created it comes first, or it is gone */
	if(m->exists) {
		if(!hmap_puts(g->members, m->user, (void *)(intptr_t)m->role)) return;
		if(!was) out->member = MQS_MEMBER_ADDED;
	} else if(was) {
		hmap_dels(g->members, m->user);
		out->member = MQS_MEMBER_REMOVED;
	}
	snprintf(out->member_group, sizeof(out->member_group), "%s", m->group);
	snprintf(out->member_user, sizeof(out->member_user), "%s", m->user);
}

static void apply_group(struct mqs_state *st, const struct mqs_group_change *c)
{
	struct mqs_group *g = hmap_gets(st->groups, c->id);

	if(!c->exists) {
		if(g != NULL) hmap_dels(st->groups, c->id);
	} else if(g != NULL) {
		if(c->last_seq > g->last_seq) g->last_seq = c->last_seq;
	} else if(!mqs_state_add_group(st, c->id, c->last_seq)) {
		/* out of memory: the group stays unknown until the next snapshot */
	}
}

static void apply_user(struct mqs_state *st, struct mqs_user_change *u, struct mqs_state_change *out)
{
	if(u->exists) {
		if(mqs_state_add_user(st, u->user)) u->user = NULL;
	} else {
		hmap_dels(st->users, u->id);
	}
	snprintf(out->user, sizeof(out->user), "%s", u->id);
}

void mqs_state_apply(struct mqs_state **st, struct mqs_item *item, struct mqs_state_change *out)
{
	memset(out, 0, sizeof(*out));
	if(item->kind == ITEM_SNAPSHOT) {
		struct mqs_snapshot *s = (struct mqs_snapshot *)item;
		out->replaced = *st;
		out->first_load = !(*st)->loaded;
		*st = s->state;
		(*st)->loaded = true;
		s->state = NULL;
	} else if(!(*st)->loaded) {
		/* Changes before the first snapshot are part of it. */
	} else if(item->kind == ITEM_USER) {
		apply_user(*st, (struct mqs_user_change *)item, out);
	} else if(item->kind == ITEM_GROUP) {
		apply_group(*st, (struct mqs_group_change *)item);
	} else if(item->kind == ITEM_MEMBER) {
		apply_member(*st, (struct mqs_member_change *)item, out);
	} else if(item->kind == ITEM_LASTSEQ) {
		struct mqs_lastseq *l = (struct mqs_lastseq *)item;
		mqs_state_raise_seq(*st, l->group, l->last_seq);
	}
	mqs_item_free(item);
}
