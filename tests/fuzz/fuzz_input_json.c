/* fuzz_input_json: mqsyncd's request-body parsing (syncd/input.c) on any body: input_json_object,
 * input_only_keys and every field reader, each checked against jansson's view of the same value. */
#include <jansson.h>

#include "fuzz.h"
#include "input.h"

static const char *const allowed[] = {"seq", "id", "name", "flag", "acks", NULL};

static bool is_id(const char *s, size_t n)
{
	if(n == 0 || n > 64) return false;
	for(size_t i = 0; i < n; i++) {
		char c = s[i];
		if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		     c == '-'))
			return false;
	}
	return true;
}

/* Checks what a field reader said against the value v (NULL: missing or JSON null). */
static void check_result(bool ok, bool present, json_t *v, bool required, bool valid, const char *err)
{
	if(v == NULL) {
		FUZZ_CHECK(ok == !required);
		if(!required) FUZZ_CHECK(!present);
		if(required) FUZZ_CHECK(strstr(err, ": required") != NULL);
		return;
	}
	FUZZ_CHECK(present);
	FUZZ_CHECK(ok == valid);
	if(!ok) FUZZ_CHECK(strncmp(err, "f.", 2) == 0);
}

static void check_fields(json_t *obj, bool required)
{
	char err[256];
	bool present, b = false;
	int64_t i = 0;
	const char *s = NULL;

	for(const char *const *k = allowed; *k; k++) {
		json_t *v = json_object_get(obj, *k);
		if(json_is_null(v)) v = NULL;
		bool ok;

		err[0] = '\0';
		ok = input_field_int(obj, *k, "f.int", -100, 1000, required, &i, &present, err, sizeof(err));
		check_result(ok, present, v, required,
		             json_is_integer(v) && json_integer_value(v) >= -100 && json_integer_value(v) <= 1000, err);
		if(ok && v) FUZZ_CHECK(i == json_integer_value(v));
		ok = input_field_int(obj, *k, "f.int", INT64_MIN, INT64_MAX, required, &i, &present, err, sizeof(err));
		check_result(ok, present, v, required, json_is_integer(v), err);
		ok = input_field_bool(obj, *k, "f.bool", required, &b, &present, err, sizeof(err));
		check_result(ok, present, v, required, json_is_boolean(v), err);
		if(ok && v) FUZZ_CHECK(b == json_is_true(v));
		ok = input_field_string(obj, *k, "f.str", 16, required, &s, &present, err, sizeof(err));
		check_result(ok, present, v, required,
		             json_is_string(v) && json_string_length(v) <= 16 &&
		                     memchr(json_string_value(v), '\0', json_string_length(v)) == NULL,
		             err);
		if(ok && v) FUZZ_CHECK(s == json_string_value(v));
		ok = input_field_id(obj, *k, "f.id", required, &s, &present, err, sizeof(err));
		check_result(ok, present, v, required,
		             json_is_string(v) && is_id(json_string_value(v), json_string_length(v)), err);
		if(ok && v) FUZZ_CHECK(s == json_string_value(v));
	}
}

/* The readers of array elements ("acks[3].seq" style). */
static void check_values(json_t *arr)
{
	char err[256];
	size_t idx;
	json_t *el;

	json_array_foreach(arr, idx, el)
	{
		int64_t i = 0;
		const char *s = NULL;
		bool ok = input_value_int(el, "f.el", 0, INT64_MAX, &i, err, sizeof(err));
		FUZZ_CHECK(ok == (json_is_integer(el) && json_integer_value(el) >= 0));
		ok = input_value_id(el, "f.el", &s, err, sizeof(err));
		FUZZ_CHECK(ok == (json_is_string(el) && is_id(json_string_value(el), json_string_length(el))));
		if(json_is_object(el)) check_fields(el, false);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	json_error_t jerr;
	json_t *obj = input_json_object((const char *)data, size, err, sizeof(err));
	json_t *ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	const char *key;
	json_t *v;

	FUZZ_CHECK((obj != NULL) == (ref != NULL && json_is_object(ref)));
	json_decref(ref);
	if(obj == NULL) {
		FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err));
		return 0;
	}
	bool only = true;
	json_object_foreach(obj, key, v)
	{
		bool known = false;
		for(const char *const *k = allowed; *k; k++) known = known || strcmp(*k, key) == 0;
		only = only && known;
	}
	FUZZ_CHECK(input_only_keys(obj, allowed, err, sizeof(err)) == only);
	if(!only) FUZZ_CHECK(strncmp(err, "unknown field", 13) == 0);
	check_fields(obj, true);
	check_fields(obj, false);
	check_values(json_object_get(obj, "acks"));
	json_decref(obj);
	return 0;
}
