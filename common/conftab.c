/* conftab: the settings-table mechanism (see conftab.h). The target owns its strings. */
#include "conftab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool parse_bool(const char *v, bool *out)
{
	if(!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
		*out = true;
		return true;
	}
	if(!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
		*out = false;
		return true;
	}
	return false;
}

bool mqs_conftab_set(const struct mqs_conf_entry *e, void *target, const char *value, char *err, size_t errlen)
{
	char *field = (char *)target + e->offset;

	switch(e->type) {
	case MQS_CONF_STRING: {
		char *copy = strdup(value);
		if(copy == NULL) {
			snprintf(err, errlen, "%s: out of memory", e->label);
			return false;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return true;
	}
	case MQS_CONF_BOOL:
		if(!parse_bool(value, (bool *)field)) {
			snprintf(err, errlen, "%s: expected true or false, got '%s'", e->label, value);
			return false;
		}
		return true;
	case MQS_CONF_LONG: {
		int64_t v;
		if(!mqs_parse_int(value, e->min, e->max, &v)) {
			snprintf(err, errlen, "%s: expected an integer from %ld to %ld, got '%s'", e->label, e->min,
			         e->max, value);
			return false;
		}
		*(long *)field = (long)v; /* in [min, max], which are longs */
		return true;
	}
	case MQS_CONF_ENUM:
		for(int i = 0; e->choices[i] != NULL; i++) {
			if(!strcmp(value, e->choices[i])) {
				*(int *)field = i;
				return true;
			}
		}
		snprintf(err, errlen, "%s: invalid value '%s'", e->label, value);
		return false;
	}
	snprintf(err, errlen, "%s: unknown setting type", e->label);
	return false;
}

bool mqs_conftab_defaults(const struct mqs_conf_entry *t, size_t n, void *target, char *err, size_t errlen)
{
	for(size_t i = 0; i < n; i++) {
		const char *v = t[i].env ? getenv(t[i].env) : NULL;
		if(v == NULL || v[0] == '\0') v = t[i].def;
		if(v != NULL && !mqs_conftab_set(&t[i], target, v, err, errlen)) return false;
	}
	return true;
}

const struct mqs_conf_entry *mqs_conftab_find(const struct mqs_conf_entry *t, size_t n, const char *name, size_t len)
{
	for(size_t i = 0; i < n; i++) {
		if(strlen(t[i].name) == len && !strncmp(name, t[i].name, len)) return &t[i];
	}
	return NULL;
}

void mqs_conftab_free(const struct mqs_conf_entry *t, size_t n, void *target)
{
	for(size_t i = 0; i < n; i++) {
		if(t[i].type != MQS_CONF_STRING) continue;
		char **field = (char **)((char *)target + t[i].offset);
		free(*field);
		*field = NULL;
	}
}
