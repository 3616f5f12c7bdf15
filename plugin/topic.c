/* topic: classification of governed topic names and subscription filters, and receipt and catch-up
 * request payloads. */
#include "topic.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* More levels than any governed topic has; longer names are split only this far. */
#define TOPIC_MAX_LEVELS 8

/* The levels of a topic or filter (not NUL-terminated: pointer + length into the caller's string). */
struct topic_levels {
	const char *s[TOPIC_MAX_LEVELS];
	size_t len[TOPIC_MAX_LEVELS];
	size_t n;     /* levels stored (at most TOPIC_MAX_LEVELS) */
	size_t total; /* levels in the string */
};

static void topic__split(const char *topic, struct topic_levels *lv)
{
	const char *p = topic;

	lv->n = 0;
	lv->total = 0;
	for(;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if(lv->n < TOPIC_MAX_LEVELS) {
			lv->s[lv->n] = p;
			lv->len[lv->n] = len;
			lv->n++;
		}
		lv->total++;
		if(slash == NULL) break;
		p = slash + 1;
	}
}

static bool topic__is(const struct topic_levels *lv, size_t i, const char *word)
{
	return i < lv->n && lv->len[i] == strlen(word) && memcmp(lv->s[i], word, lv->len[i]) == 0;
}

static bool topic__governed_first(const struct topic_levels *lv)
{
	return topic__is(lv, 0, "groups") || topic__is(lv, 0, "users") || topic__is(lv, 0, "system");
}

static void topic__set(struct mqs_topic *out, enum mqs_topic_kind kind, const char *id, size_t len)
{
	out->kind = kind;
	memcpy(out->id, id, len);
	out->id[len] = '\0';
}

static void topic__parse_levels(const struct topic_levels *lv, struct mqs_topic *out)
{
	topic__set(out, MQS_TOPIC_OTHER, "", 0);
	if(!topic__governed_first(lv)) return;
	out->kind = MQS_TOPIC_GOVERNED_BAD;
	if(topic__is(lv, 0, "system")) {
		if(lv->total == 2 && topic__is(lv, 1, "alerts")) out->kind = MQS_TOPIC_ALERTS;
		return;
	}
	if(lv->total != 3 || !mqs_id_valid_n(lv->s[1], lv->len[1])) return;
	if(topic__is(lv, 0, "groups") && topic__is(lv, 2, "messages")) {
		topic__set(out, MQS_TOPIC_MESSAGES, lv->s[1], lv->len[1]);
	} else if(topic__is(lv, 0, "groups") && topic__is(lv, 2, "receipts")) {
		topic__set(out, MQS_TOPIC_RECEIPTS, lv->s[1], lv->len[1]);
	} else if(topic__is(lv, 0, "users") && topic__is(lv, 2, "inbox")) {
		topic__set(out, MQS_TOPIC_INBOX, lv->s[1], lv->len[1]);
	} else if(topic__is(lv, 0, "users") && topic__is(lv, 2, "sync")) {
		topic__set(out, MQS_TOPIC_SYNC, lv->s[1], lv->len[1]);
	}
}

/* A NULL topic is OTHER. */
void mqs_topic_parse(const char *topic, struct mqs_topic *out)
{
	struct topic_levels lv;

	if(topic == NULL) {
		topic__set(out, MQS_TOPIC_OTHER, "", 0);
		return;
	}
	topic__split(topic, &lv);
	topic__parse_levels(&lv, out);
}

/* The allowed topics as level patterns: NULL stands for a valid id. */
static const char *const topic_patterns[][3] = {
        {"groups", NULL, "messages"},
        {"groups", NULL, "receipts"},
        {"users", NULL, "inbox"},
        {"system", "alerts", ""},
};
static const size_t topic_pattern_levels[] = {3, 3, 3, 2};

/* True when the (well-formed) filter lv can match some topic of pattern p. */
static bool topic__filter_matches(const struct topic_levels *lv, size_t p)
{
	size_t np = topic_pattern_levels[p];

	for(size_t i = 0; i < lv->total; i++) {
		const char *want;

		if(i >= lv->n) return false; /* longer than any pattern */
		if(lv->len[i] == 1 && lv->s[i][0] == '#') return true;
		if(i >= np) return false;
		if(lv->len[i] == 1 && lv->s[i][0] == '+') continue;
		want = topic_patterns[p][i];
		if(want == NULL ? !mqs_id_valid_n(lv->s[i], lv->len[i]) : !topic__is(lv, i, want)) return false;
	}
	return lv->total == np;
}

/* Checks the MQTT wildcard rules on filter f: '+' and '#' only as whole levels, '#' last. Sets
 * *wild when there is a wildcard. */
static bool topic__filter_wellformed(const char *f, bool *wild)
{
	*wild = false;
	for(const char *p = f; *p != '\0'; p++) {
		if(*p != '+' && *p != '#') continue;
		*wild = true;
		if(p != f && p[-1] != '/') return false;
		if(*p == '+' && p[1] != '\0' && p[1] != '/') return false;
		if(*p == '#' && p[1] != '\0') return false;
	}
	return true;
}

const char *mqs_filter_share_body(const char *filter)
{
	const char *name, *slash;

	if(filter == NULL || strncmp(filter, "$share/", 7) != 0) return NULL;
	name = filter + 7;
	slash = strchr(name, '/');
	if(slash == NULL || slash == name || slash[1] == '\0') return NULL;
	if(memchr(name, '+', (size_t)(slash - name)) || memchr(name, '#', (size_t)(slash - name))) return NULL;
	return slash + 1;
}

/* Conservative: a wildcard filter is WILDCARD whenever it can match an allowed governed topic, or
 * when its first level is a wildcard (it then matches governed topics, and ungoverned ones that must
 * keep working); BAD only when it sits entirely under groups/, users/ or system/ yet matches nothing
 * allowed. topic (may be NULL) is filled for EXACT and set to OTHER/"" for WILDCARD. */
enum mqs_filter_scope mqs_filter_classify(const char *filter, struct mqs_topic *topic)
{
	struct mqs_topic scratch;
	struct topic_levels lv;
	bool wild;

	if(topic == NULL) topic = &scratch;
	topic__set(topic, MQS_TOPIC_OTHER, "", 0);
	if(filter == NULL || filter[0] == '\0') return MQS_FILTER_BAD;
	if(strncmp(filter, "$share/", 7) == 0 || strcmp(filter, "$share") == 0) {
		filter = mqs_filter_share_body(filter);
		if(filter == NULL) return MQS_FILTER_BAD;
	}
	if(!topic__filter_wellformed(filter, &wild)) return MQS_FILTER_BAD;
	topic__split(filter, &lv);
	if(!wild) {
		topic__parse_levels(&lv, topic);
		if(topic->kind == MQS_TOPIC_OTHER) return MQS_FILTER_OTHER;
		if(topic->kind == MQS_TOPIC_GOVERNED_BAD) return MQS_FILTER_BAD;
		return MQS_FILTER_EXACT;
	}
	for(size_t p = 0; p < sizeof(topic_pattern_levels) / sizeof(topic_pattern_levels[0]); p++) {
		if(topic__filter_matches(&lv, p)) return MQS_FILTER_WILDCARD;
	}
	if(topic__is(&lv, 0, "+") || topic__is(&lv, 0, "#")) return MQS_FILTER_WILDCARD;
	return topic__governed_first(&lv) ? MQS_FILTER_BAD : MQS_FILTER_OTHER;
}

/* Reads one receipt cursor into *out. False with *why set when v is not an integer 0..2^53. */
static bool receipt__cursor(json_t *v, int64_t *out, const char *why_bad, const char **why)
{
	json_int_t n;

	if(!json_is_integer(v)) goto fail;
	n = json_integer_value(v);
	if(n < 0 || n > (json_int_t)1 << 53) goto fail;
	*out = (int64_t)n;
	return true;

fail:
	*why = why_bad;
	return false;
}

/* Reads exactly payload[0..len) (need not be NUL-terminated). why may be NULL. */
bool mqs_receipt_parse(const void *payload, size_t len, int64_t *delivered, int64_t *read, const char **why)
{
	const char *dummy;
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *key;
	bool ok = false;

	if(why == NULL) why = &dummy;
	*delivered = -1;
	*read = -1;
	if(payload == NULL || len == 0) {
		*why = "empty payload";
		return false;
	}
	root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if(root == NULL) {
		*why = "not valid JSON";
		goto fail;
	}
	if(!json_is_object(root)) {
		*why = "not a JSON object";
		goto fail;
	}
	if(json_object_size(root) == 0) {
		*why = "empty receipt";
		goto fail;
	}
	json_object_foreach(root, key, v)
	{
		if(strcmp(key, "delivered") == 0) {
			if(!receipt__cursor(v, delivered, "delivered must be a non-negative integer", why)) goto fail;
		} else if(strcmp(key, "read") == 0) {
			if(!receipt__cursor(v, read, "read must be a non-negative integer", why)) goto fail;
		} else {
			*why = "unknown key";
			goto fail;
		}
	}
	ok = true;

fail:
	if(!ok) {
		*delivered = -1;
		*read = -1;
	}
	json_decref(root);
	return ok;
}

/* One field of a catch-up request into out. False with *why set when it is not allowed. */
static bool sync_req__field(const char *key, json_t *v, struct mqs_sync_req *out, const char **why)
{
	if(strcmp(key, "group") == 0) {
		if(!json_is_string(v) || !mqs_id_valid(json_string_value(v))) {
			*why = "group: must match [A-Za-z0-9_-]{1,64}";
			return false;
		}
		strcpy(out->group, json_string_value(v));
	} else if(strcmp(key, "limit") == 0) {
		if(!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SYNCPAGE_LIMIT_MAX) {
			*why = "limit: expected an integer from 1 to 1000";
			return false;
		}
		out->limit = (int64_t)json_integer_value(v);
	} else if(strcmp(key, "after") == 0) {
		if(!json_is_string(v) || !synctoken_decode(json_string_value(v), &out->tok, &out->ntok)) {
			*why = "after: not a token returned as 'next' by this server";
			return false;
		}
		out->has_token = true;
	} else if(strcmp(key, "id") == 0) {
		if(!json_is_string(v) || json_string_length(v) > MQS_SYNC_REQ_ID_MAX) {
			*why = "id: expected a string of at most 256 bytes";
			return false;
		}
		out->id = strdup(json_string_value(v));
		if(out->id == NULL) {
			*why = "out of memory";
			return false;
		}
	} else {
		*why = "unknown key (expected group, after, limit, id)";
		return false;
	}
	return true;
}

bool mqs_sync_req_parse(const void *payload, size_t len, struct mqs_sync_req *out, const char **why)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	bool ok = true;

	memset(out, 0, sizeof(*out));
	out->limit = SYNCPAGE_LIMIT_DEFAULT;
	root = payload != NULL && len > 0 ? json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	if(root == NULL || !json_is_object(root)) {
		*why = "not a JSON object";
		json_decref(root);
		return false;
	}
	json_object_foreach(root, key, v)
	{
		if(ok) ok = sync_req__field(key, v, out, why);
	}
	json_decref(root);
	if(!ok) mqs_sync_req_clear(out);
	return ok;
}

void mqs_sync_req_clear(struct mqs_sync_req *out)
{
	free(out->tok);
	free(out->id);
	memset(out, 0, sizeof(*out));
}
