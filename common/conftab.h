/* conftab: one settings-table mechanism for both programs' configuration (the plugin's
 * plugin_opt_* options, mqsyncd's flags and MQSYNC_* environment).
 *
 * The one ownership rule: the target struct owns its strings. Every function here leaves the target
 * valid, also after a failure (defaults or values set so far, an old string replaced only once its
 * copy exists), and the caller frees it with the program's x_config_free (which calls
 * mqs_conftab_free), the only free. */
#ifndef MQS_CONFTAB_H
#define MQS_CONFTAB_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum mqs_conf_type {
	MQS_CONF_STRING, /* char *, owned by the target */
	MQS_CONF_BOOL,   /* bool: true/1/yes/on or false/0/no/off, any case for the words */
	MQS_CONF_LONG,   /* long in [min, max] */
	MQS_CONF_ENUM,   /* int: the index of the value in choices (exact match) */
};

struct mqs_conf_entry {
	const char *name;  /* the key the program matches (option name or flag) */
	const char *label; /* how error messages name it: "plugin_opt_auth", "--threads" */
	const char *env;   /* environment variable overriding def when set and non-empty, or NULL */
	enum mqs_conf_type type;
	size_t offset;              /* of the field in the target struct */
	const char *def;            /* default as text; NULL: none (the field keeps its zero) */
	long min, max;              /* MQS_CONF_LONG bounds */
	const char *const *choices; /* MQS_CONF_ENUM, NULL-terminated */
};

/* Applies to target, in table order, each entry's environment value (when env is set and
 * non-empty) or else its default. False at the first invalid value, with err naming the entry. */
MQS_MUST_CHECK bool mqs_conftab_defaults(const struct mqs_conf_entry *t, size_t n, void *target, char *err,
                                         size_t errlen);

/* The entry whose name is the len bytes at name, or NULL. */
const struct mqs_conf_entry *mqs_conftab_find(const struct mqs_conf_entry *t, size_t n, const char *name, size_t len);

/* Parses value into e's field of target (a string is copied). False on an invalid value or out of
 * memory, with err: "<label>: expected true or false, got '<v>'", "<label>: expected an integer from
 * <min> to <max>, got '<v>'", "<label>: invalid value '<v>'" or "<label>: out of memory"; the field
 * is then unchanged. */
MQS_MUST_CHECK bool mqs_conftab_set(const struct mqs_conf_entry *e, void *target, const char *value, char *err,
                                    size_t errlen);

/* Frees every MQS_CONF_STRING field of target and sets it to NULL. Accepts a zeroed target. */
void mqs_conftab_free(const struct mqs_conf_entry *t, size_t n, void *target);

#endif
