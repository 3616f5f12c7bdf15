/* notify: parsers of the NOTIFY payloads (see notify.h). Owns no memory. */
#include "notify.h"

#include <string.h>

/* Copies the id s[0..n) into out when it is valid. */
static bool take_id(const char *s, size_t n, char out[MQS_ID_MAX + 1])
{
	if(!mqs_id_valid_n(s, n)) return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

bool mqs_notify_msg_parse(const char *payload, char gid[MQS_ID_MAX + 1], int64_t *last_seq)
{
	const char *colon = payload ? strchr(payload, ':') : NULL;
	if(colon == NULL || !take_id(payload, (size_t)(colon - payload), gid)) return false;
	const char *p = colon + 1;
	uint64_t v = 0;
	if(*p == '\0') return false;
	for(; *p; p++) {
		if(*p < '0' || *p > '9') return false;
		unsigned d = (unsigned)(*p - '0');
		if(v > ((uint64_t)INT64_MAX - d) / 10) return false;
		v = v * 10 + d;
	}
	*last_seq = (int64_t)v;
	return true;
}

enum mqs_notify_state mqs_notify_state_parse(const char *payload, char a[MQS_ID_MAX + 1], char b[MQS_ID_MAX + 1])
{
	if(payload == NULL) return MQS_NOTIFY_BAD;
	if(strncmp(payload, "user:", 5) == 0)
		return take_id(payload + 5, strlen(payload + 5), a) ? MQS_NOTIFY_USER : MQS_NOTIFY_BAD;
	if(strncmp(payload, "group:", 6) == 0)
		return take_id(payload + 6, strlen(payload + 6), a) ? MQS_NOTIFY_GROUP : MQS_NOTIFY_BAD;
	if(strncmp(payload, "member:", 7) == 0) {
		const char *g = payload + 7, *colon = strchr(g, ':');
		if(colon == NULL || !take_id(g, (size_t)(colon - g), a) || !take_id(colon + 1, strlen(colon + 1), b))
			return MQS_NOTIFY_BAD;
		return MQS_NOTIFY_MEMBER;
	}
	return MQS_NOTIFY_BAD;
}
