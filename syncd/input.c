/* input: parsing and validation of untrusted request input (integers, ids, headers, JSON bodies). */
#include "input.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ids.h"

static int hexval(char c)
{
	if(c >= '0' && c <= '9') return c - '0';
	if(c >= 'a' && c <= 'f') return c - 'a' + 10;
	if(c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

size_t input_unescape(char *s)
{
	char *w = s;
	for(const char *r = s; *r;) {
		if(r[0] == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
			int v = hexval(r[1]) * 16 + hexval(r[2]);
			if(v != 0) {
				*w++ = (char)v;
				r += 3;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
	return (size_t)(w - s);
}

const char *input_bearer(const char *header, size_t *len)
{
	if(header == NULL || strncasecmp(header, "Bearer", 6) != 0 || header[6] != ' ') return NULL;
	const char *t = header + 6;
	while(*t == ' ') t++;
	size_t n = 0;
	while(t[n] != '\0' && t[n] != ' ' && t[n] != '\t') n++;
	const char *rest = t + n;
	while(*rest == ' ' || *rest == '\t') rest++;
	if(n == 0 || n > 512 || *rest != '\0') return NULL;
	*len = n;
	return t;
}

bool input_is_json_type(const char *ct)
{
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if(ct == NULL) return false;
	while(*ct == ' ') ct++;
	if(strncasecmp(ct, want, n) != 0) return false;
	ct += n;
	while(*ct == ' ') ct++;
	return *ct == '\0' || *ct == ';';
}

json_t *input_json_object(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);

	if(v == NULL) {
		snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if(!json_is_object(v)) {
		snprintf(err, errlen, "the request body must be a JSON object");
		json_decref(v);
		return NULL;
	}
	return v;
}

bool input_only_keys(json_t *obj, const char *const *allowed, char *err, size_t errlen)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val)
	{
		bool ok = false;
		for(const char *const *a = allowed; *a; a++) {
			if(!strcmp(*a, key)) {
				ok = true;
				break;
			}
		}
		if(!ok) {
			/* Keys may hold anything (NUL, quotes): name them only when they look like a name. */
			bool printable = strlen(key) <= 64;
			for(const char *p = key; printable && *p; p++)
				printable = isalnum((unsigned char)*p) || *p == '_';
			if(printable)
				snprintf(err, errlen, "unknown field '%s'", key);
			else
				snprintf(err, errlen, "unknown field in the request body");
			return false;
		}
	}
	return true;
}

/* Looks up key; returns NULL when missing or null. Sets *present accordingly. */
static json_t *field(json_t *obj, const char *key, bool *present)
{
	json_t *v = json_object_get(obj, key);
	if(json_is_null(v)) v = NULL;
	if(present) *present = v != NULL;
	return v;
}

bool input_value_int(json_t *v, const char *name, int64_t min, int64_t max, int64_t *out, char *err, size_t errlen)
{
	if(!json_is_integer(v)) {
		snprintf(err, errlen, "%s: expected an integer", name);
		return false;
	}
	json_int_t n = json_integer_value(v);
	if(n < min || n > max) {
		snprintf(err, errlen, "%s: must be from %lld to %lld", name, (long long)min, (long long)max);
		return false;
	}
	*out = (int64_t)n;
	return true;
}

bool input_value_id(json_t *v, const char *name, const char **out, char *err, size_t errlen)
{
	if(!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string", name);
		return false;
	}
	if(!mqs_id_valid_n(json_string_value(v), json_string_length(v))) {
		snprintf(err, errlen, "%s: must match [A-Za-z0-9_-]{1,64}", name);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

static bool missing(bool required, const char *name, char *err, size_t errlen)
{
	if(required) snprintf(err, errlen, "%s: required", name);
	return !required;
}

bool input_field_int(json_t *obj, const char *key, const char *name, int64_t min, int64_t max, bool required,
                     int64_t *out, bool *present, char *err, size_t errlen)
{
	json_t *v = field(obj, key, present);
	if(v == NULL) return missing(required, name, err, errlen);
	return input_value_int(v, name, min, max, out, err, errlen);
}

bool input_field_bool(json_t *obj, const char *key, const char *name, bool required, bool *out, bool *present,
                      char *err, size_t errlen)
{
	json_t *v = field(obj, key, present);
	if(v == NULL) return missing(required, name, err, errlen);
	if(!json_is_boolean(v)) {
		snprintf(err, errlen, "%s: expected true or false", name);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

bool input_field_string(json_t *obj, const char *key, const char *name, size_t maxlen, bool required, const char **out,
                        bool *present, char *err, size_t errlen)
{
	json_t *v = field(obj, key, present);
	if(v == NULL) return missing(required, name, err, errlen);
	if(!json_is_string(v)) {
		snprintf(err, errlen, "%s: expected a string", name);
		return false;
	}
	if(json_string_length(v) > maxlen || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, errlen, "%s: at most %zu bytes, no NUL characters", name, maxlen);
		return false;
	}
	*out = json_string_value(v);
	return true;
}

bool input_field_id(json_t *obj, const char *key, const char *name, bool required, const char **out, bool *present,
                    char *err, size_t errlen)
{
	json_t *v = field(obj, key, present);
	if(v == NULL) return missing(required, name, err, errlen);
	return input_value_id(v, name, out, err, errlen);
}
