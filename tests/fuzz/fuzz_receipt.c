/* fuzz_receipt: mqs_receipt_parse (plugin/topic.c) on any payload, cross-checked with jansson's own
 * reading of the same bytes. */
#include <jansson.h>

#include "fuzz.h"
#include "topic.h"

/* The SPEC 3.3 rule, written out on jansson's parse: accepted, and the cursors it gives. */
static bool reference(const uint8_t *data, size_t size, int64_t *delivered, int64_t *read)
{
	json_error_t jerr;
	json_t *root = size ? json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	const char *key;
	json_t *v;
	bool ok = root != NULL && json_is_object(root) && json_object_size(root) > 0;

	*delivered = *read = -1;
	if(ok) {
		json_object_foreach(root, key, v)
		{
			int64_t *slot = strcmp(key, "delivered") == 0 ? delivered
			                : strcmp(key, "read") == 0    ? read
			                                              : NULL;
			if(slot == NULL || !json_is_integer(v) || json_integer_value(v) < 0 ||
			   json_integer_value(v) > (json_int_t)1 << 53) {
				ok = false;
				break;
			}
			*slot = json_integer_value(v);
		}
	}
	if(!ok) *delivered = *read = -1;
	json_decref(root);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t d, r, rd, rr;
	const char *why = NULL;
	bool ok = mqs_receipt_parse(size ? data : NULL, size, &d, &r, &why);
	bool want = reference(data, size, &rd, &rr);

	FUZZ_CHECK(ok == want);
	FUZZ_CHECK(d == rd && r == rr);
	if(ok) {
		FUZZ_CHECK(d >= 0 || r >= 0);
	} else {
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		FUZZ_CHECK(d == -1 && r == -1);
	}
	/* A NULL why is allowed. */
	FUZZ_CHECK(mqs_receipt_parse(size ? data : NULL, size, &d, &r, NULL) == ok);
	return 0;
}
