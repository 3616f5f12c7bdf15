/* msgjson: the SPEC 5.1 message object (see msgjson.h). Owns no memory: it appends to the caller's
 * writer. */
#include "msgjson.h"

#include <stdbool.h>

void mqs_msgjson_write(struct jsonw *w, const struct mqs_msg_view *m)
{
	const char *p = m->payload_len ? m->payload : "";
	bool utf8 = jsonw_utf8_valid(p, m->payload_len);

	jsonw_lit(w, "{\"id\":");
	jsonw_int(w, m->id);
	jsonw_lit(w, ",\"group\":");
	jsonw_str(w, m->group, m->group_len);
	jsonw_lit(w, ",\"seq\":");
	jsonw_int(w, m->seq);
	jsonw_lit(w, ",\"sender\":");
	jsonw_str(w, m->sender, m->sender_len);
	jsonw_lit(w, ",\"ts\":");
	jsonw_str(w, m->ts, m->ts_len);
	jsonw_lit(w, ",\"payload\":");
	if(utf8)
		jsonw_str(w, p, m->payload_len);
	else
		jsonw_base64(w, (const unsigned char *)p, m->payload_len);
	jsonw_lit(w, utf8 ? ",\"encoding\":\"utf8\"" : ",\"encoding\":\"base64\"");
	if(m->cid != NULL) {
		jsonw_lit(w, ",\"cid\":");
		jsonw_str(w, m->cid, m->cid_len);
	}
	jsonw_lit(w, "}");
}
