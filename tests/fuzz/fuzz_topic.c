/* fuzz_topic: mqs_topic_parse and mqs_filter_classify (plugin/topic.c) on any string, checked against
 * the topic names they stand for and against plain MQTT filter matching. */
#include "fuzz.h"
#include "topic.h"

static bool kind_allowed(enum mqs_topic_kind k)
{
	return k == MQS_TOPIC_MESSAGES || k == MQS_TOPIC_RECEIPTS || k == MQS_TOPIC_INBOX || k == MQS_TOPIC_ALERTS;
}

/* The allowed topics: prefix, id, suffix (system/alerts has no id). */
static const char *const topic_parts[][2] = {
        {"groups/", "/messages"},
        {"groups/", "/receipts"},
        {"users/", "/inbox"},
        {"system/alerts", ""},
};

/* Allowed topic i with id (ignored for system/alerts). */
static void topic_make(size_t i, const char *id, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%s%s", topic_parts[i][0], i == 3 ? "" : id, topic_parts[i][1]);
}

/* The concrete topic an allowed parsed topic stands for ("" for the others). */
static void topic_name(const struct mqs_topic *t, char *buf, size_t cap)
{
	size_t i = t->kind == MQS_TOPIC_MESSAGES   ? 0
	           : t->kind == MQS_TOPIC_RECEIPTS ? 1
	           : t->kind == MQS_TOPIC_INBOX    ? 2
	           : t->kind == MQS_TOPIC_ALERTS   ? 3
	                                           : 4;
	if(i == 4)
		buf[0] = '\0';
	else
		topic_make(i, t->id, buf, cap);
}

/* True when the first level of s is groups, users or system. */
static bool under_governed(const char *s)
{
	static const char *const first[] = {"groups", "users", "system"};

	for(size_t i = 0; i < 3; i++) {
		size_t n = strlen(first[i]);
		if(strncmp(s, first[i], n) == 0 && (s[n] == '/' || s[n] == '\0')) return true;
	}
	return false;
}

static void check_parsed(const char *s, const struct mqs_topic *t)
{
	char name[160];

	FUZZ_CHECK(t->kind >= MQS_TOPIC_OTHER && t->kind <= MQS_TOPIC_GOVERNED_BAD);
	if(kind_allowed(t->kind) && t->kind != MQS_TOPIC_ALERTS)
		FUZZ_CHECK(mqs_id_valid(t->id));
	else
		FUZZ_CHECK(t->id[0] == '\0');
	/* An allowed kind is exactly its topic name: nothing else parses as it. */
	if(kind_allowed(t->kind)) {
		topic_name(t, name, sizeof(name));
		FUZZ_CHECK(strcmp(name, s) == 0);
	}
	FUZZ_CHECK((t->kind == MQS_TOPIC_OTHER) == !under_governed(s));
}

/* MQTT 3.1.1 / 5 filter matching of a well-formed filter f against topic t ('#' also matches the
 * parent level). */
static bool mqtt_match(const char *f, const char *t)
{
	for(;;) {
		const char *fe = strchr(f, '/'), *te = strchr(t, '/');
		size_t fl = fe ? (size_t)(fe - f) : strlen(f), tl = te ? (size_t)(te - t) : strlen(t);

		if(fl == 1 && f[0] == '#') return true;
		if(!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0)) return false;
		if(fe == NULL || te == NULL) return fe == NULL ? te == NULL : strcmp(fe + 1, "#") == 0;
		f = fe + 1;
		t = te + 1;
	}
}

static bool filter_wellformed(const char *f)
{
	for(const char *p = f; *p; p++) {
		if(*p != '+' && *p != '#') continue;
		if(p != f && p[-1] != '/') return false;
		if(p[1] != '\0' && (p[0] == '#' || p[1] != '/')) return false;
	}
	return true;
}

/* A filter that can match an allowed governed topic must never be OTHER or BAD (the ACL would then
 * not see it). Tries each allowed topic with the filter's own second level as the id (or "x"). */
static void check_filter_semantics(const char *f, enum mqs_filter_scope r)
{
	const char *slash = strchr(f, '/'), *end;
	char id[MQS_ID_MAX + 1] = "x", topic[160];

	if(!filter_wellformed(f)) return;
	if(slash != NULL) {
		end = strchr(slash + 1, '/');
		size_t n = end ? (size_t)(end - slash - 1) : strlen(slash + 1);
		if(n <= MQS_ID_MAX) {
			memcpy(id, slash + 1, n);
			id[n] = '\0';
			if(!mqs_id_valid(id)) strcpy(id, "x");
		}
	}
	for(size_t i = 0; i < sizeof(topic_parts) / sizeof(topic_parts[0]); i++) {
		topic_make(i, id, topic, sizeof(topic));
		if(mqtt_match(f, topic)) FUZZ_CHECK(r == MQS_FILTER_EXACT || r == MQS_FILTER_WILDCARD);
	}
}

static void check_filter(const char *f)
{
	struct mqs_topic t, parsed;
	enum mqs_filter_scope r = mqs_filter_classify(f, &t);
	char name[160];

	FUZZ_CHECK(r >= MQS_FILTER_OTHER && r <= MQS_FILTER_BAD);
	FUZZ_CHECK(mqs_filter_classify(f, NULL) == r);
	if(r == MQS_FILTER_EXACT) {
		FUZZ_CHECK(kind_allowed(t.kind));
		topic_name(&t, name, sizeof(name));
		/* The filter is that topic, possibly behind a $share/NAME/ prefix. */
		size_t nl = strlen(name), fl = strlen(f);
		FUZZ_CHECK(fl >= nl && strcmp(f + fl - nl, name) == 0);
	} else if(r != MQS_FILTER_BAD) {
		/* (topic.h leaves it unspecified for BAD) */
		FUZZ_CHECK(t.kind == MQS_TOPIC_OTHER && t.id[0] == '\0');
	}
	if(r == MQS_FILTER_WILDCARD) FUZZ_CHECK(strchr(f, '+') != NULL || strchr(f, '#') != NULL);
	if(strncmp(f, "$share/", 7) == 0 || strcmp(f, "$share") == 0) {
		/* $share/NAME/F classifies as F does (stripped once: F = "$share/..." is a plain filter then). */
		const char *slash = f[6] == '/' ? strchr(f + 7, '/') : NULL;
		if(r != MQS_FILTER_BAD) FUZZ_CHECK(slash != NULL);
		bool valid = slash != NULL && slash > f + 7 && slash[1] != '\0' &&
		             !memchr(f + 7, '+', (size_t)(slash - f - 7)) &&
		             !memchr(f + 7, '#', (size_t)(slash - f - 7));
		if(valid && strncmp(slash + 1, "$share", 6) != 0) FUZZ_CHECK(mqs_filter_classify(slash + 1, NULL) == r);
		/* mqs_filter_share_body finds that F (acl.c decides shares on it), or says it is no share. */
		FUZZ_CHECK(mqs_filter_share_body(f) == (valid ? slash + 1 : NULL));
		return;
	}
	FUZZ_CHECK(mqs_filter_share_body(f) == NULL);
	/* Without wildcards a filter is a topic name: it classifies as mqs_topic_parse says. */
	if(f[0] != '\0' && strchr(f, '+') == NULL && strchr(f, '#') == NULL) {
		mqs_topic_parse(f, &parsed);
		FUZZ_CHECK(r == (parsed.kind == MQS_TOPIC_OTHER          ? MQS_FILTER_OTHER
		                 : parsed.kind == MQS_TOPIC_GOVERNED_BAD ? MQS_FILTER_BAD
		                                                         : MQS_FILTER_EXACT));
		if(r == MQS_FILTER_EXACT) FUZZ_CHECK(t.kind == parsed.kind && strcmp(t.id, parsed.id) == 0);
	}
	check_filter_semantics(f, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	struct mqs_topic t;

	mqs_topic_parse(s, &t);
	check_parsed(s, &t);
	check_filter(s);
	free(s);
	return 0;
}
