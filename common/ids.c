/* ids: validation of user and group identifiers (SPEC 2). */
#include "ids.h"

#include <string.h>

bool mqs_id_valid_n(const char *s, size_t len)
{
	if(s == NULL || len == 0 || len > MQS_ID_MAX) return false;
	for(size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		          c == '-';
		if(!ok) return false;
	}
	return true;
}

bool mqs_id_valid(const char *s)
{
	if(s == NULL) return false;
	return mqs_id_valid_n(s, strnlen(s, MQS_ID_MAX + 1));
}
