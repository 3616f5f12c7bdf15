/* fuzz_conftab: mqs_conftab_set (common/conftab.c) on every setting type with values from the input:
 * a value is taken exactly when it is valid for the type, a refused one leaves the field unchanged
 * with the documented message, and strings are owned (ASan sees any leak or double free). */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <strings.h>

#include "conftab.h"
#include "fuzz.h"

struct target {
	char *str;
	bool flag;
	long num;
	int choice;
};

static const char *const choices[] = {"none", "password", "token", "", NULL};

static const struct mqs_conf_entry table[] = {
        {"str", "--str", NULL, MQS_CONF_STRING, offsetof(struct target, str), "default", 0, 0, NULL},
        {"flag", "--flag", NULL, MQS_CONF_BOOL, offsetof(struct target, flag), "on", 0, 0, NULL},
        {"num", "--num", NULL, MQS_CONF_LONG, offsetof(struct target, num), "5", -3, 70000, NULL},
        {"choice", "--choice", NULL, MQS_CONF_ENUM, offsetof(struct target, choice), "token", 0, 0, choices},
};
#define NENTRIES (sizeof(table) / sizeof(table[0]))

static void check_set(struct target *t, const struct mqs_conf_entry *e, const char *v)
{
	struct target before = *t;
	char *old_str = t->str ? fuzz_cstr((const uint8_t *)t->str, strlen(t->str)) : NULL;
	char err[512] = "";
	bool ok = mqs_conftab_set(e, t, v, err, sizeof(err));
	char *end;
	long n;

	switch(e->type) {
	case MQS_CONF_STRING:
		FUZZ_CHECK(ok && strcmp(t->str, v) == 0 && t->str != v);
		break;
	case MQS_CONF_BOOL: {
		bool yes = !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on");
		bool no = !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off");
		FUZZ_CHECK(ok == (yes || no));
		if(ok) FUZZ_CHECK(t->flag == yes);
		break;
	}
	case MQS_CONF_LONG:
		errno = 0;
		n = strtol(v, &end, 10);
		/* strict: -?[0-9]+ only (strtol would also take white space and '+') */
		FUZZ_CHECK(ok ==
		           (errno == 0 && end != v && *end == '\0' && strspn(v + (v[0] == '-'), "0123456789") > 0 &&
		            strspn(v + (v[0] == '-'), "0123456789") == strlen(v + (v[0] == '-')) && n >= e->min &&
		            n <= e->max));
		if(ok) FUZZ_CHECK(t->num == n);
		break;
	case MQS_CONF_ENUM: {
		int want = -1;
		for(int i = 0; choices[i]; i++) {
			if(want < 0 && strcmp(v, choices[i]) == 0) want = i;
		}
		FUZZ_CHECK(ok == (want >= 0));
		if(ok) FUZZ_CHECK(t->choice == want);
		break;
	}
	}
	if(!ok) {
		size_t ll = strlen(e->label);
		FUZZ_CHECK(strncmp(err, e->label, ll) == 0 && strncmp(err + ll, ": ", 2) == 0);
		FUZZ_CHECK(t->flag == before.flag && t->num == before.num && t->choice == before.choice);
		FUZZ_CHECK(t->str == before.str);
		FUZZ_CHECK(old_str == NULL ? t->str == NULL : strcmp(t->str, old_str) == 0);
	} else if(e->type != MQS_CONF_STRING) {
		FUZZ_CHECK(t->str == before.str);
	}
	free(old_str);
}

/* The input is values separated by newlines; each value's first byte picks the entry. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct target t = {0};
	char err[512];
	char *s = fuzz_cstr(data, size);

	FUZZ_CHECK(mqs_conftab_defaults(table, NENTRIES, &t, err, sizeof(err)));
	FUZZ_CHECK(strcmp(t.str, "default") == 0 && t.flag && t.num == 5 && t.choice == 2);
	for(char *line = s, *next; line != NULL; line = next) {
		next = strchr(line, '\n');
		if(next) *next++ = '\0';
		if(line[0] == '\0') continue;
		const struct mqs_conf_entry *e = &table[(unsigned char)line[0] % NENTRIES];
		FUZZ_CHECK(mqs_conftab_find(table, NENTRIES, e->name, strlen(e->name)) == e);
		check_set(&t, e, line + 1);
		const struct mqs_conf_entry *f = mqs_conftab_find(table, NENTRIES, line + 1, strlen(line + 1));
		FUZZ_CHECK(f == NULL || strcmp(f->name, line + 1) == 0);
	}
	mqs_conftab_free(table, NENTRIES, &t);
	FUZZ_CHECK(t.str == NULL);
	mqs_conftab_free(table, NENTRIES, &t);
	free(s);
	return 0;
}
