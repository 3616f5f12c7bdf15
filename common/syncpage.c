/* syncpage: the pure page logic of sync: plan, positions after the fetch, next token (see syncpage.h). */
#include "syncpage.h"

#include <stdlib.h>
#include <string.h>

size_t syncpage_plan(struct syncpage_group *g, size_t n, bool has_token, const struct synctoken_entry *tok, size_t ntok,
                     int64_t limit, bool *has_more)
{
	int64_t remaining = limit;
	size_t nranges = 0;

	*has_more = false;
	for(size_t i = 0; i < n; i++) {
		struct syncpage_group *x = &g[i];
		if(has_token) {
			x->pos = x->joined;
			synctoken_find(tok, ntok, synctoken_key(x->gid), &x->pos);
		} else {
			x->pos = x->delivered;
		}
		if(x->pos < x->joined) x->pos = x->joined;
		if(x->pos > x->last) x->pos = x->last;
		x->upto = x->pos;
		if(x->pos == x->last) continue;
		if(remaining == 0) {
			*has_more = true;
			continue;
		}
		int64_t take = x->last - x->pos < remaining ? x->last - x->pos : remaining;
		x->upto = x->pos + take;
		remaining -= take;
		if(x->upto < x->last) *has_more = true;
		nranges++;
	}
	return nranges;
}

bool syncpage_returned(struct syncpage_group *g, size_t n, size_t *cursor, const char *gid, size_t gid_len, int64_t seq)
{
	while(*cursor < n && (strlen(g[*cursor].gid) != gid_len || memcmp(g[*cursor].gid, gid, gid_len) != 0))
		(*cursor)++;
	if(*cursor == n) return false;
	g[*cursor].pos = seq;
	return true;
}

char *syncpage_next_token(const struct syncpage_group *g, size_t n)
{
	struct synctoken_entry *next = calloc(n + 1, sizeof(*next));
	size_t nn = 0;

	if(next == NULL) return NULL;
	for(size_t i = 0; i < n; i++) {
		if(g[i].pos > g[i].joined) next[nn++] = (struct synctoken_entry){synctoken_key(g[i].gid), g[i].pos};
	}
	/* A group left out (no progress) reads its join point from the token, unless its key collides
	 * with one that is in: then it must be in too, so the merged entry holds the lower position. */
	synctoken_normalize(next, &nn);
	size_t with_progress = nn;
	for(size_t i = 0; i < n; i++) {
		int64_t ignored;
		uint32_t k = synctoken_key(g[i].gid);
		if(g[i].pos <= g[i].joined && synctoken_find(next, with_progress, k, &ignored))
			next[nn++] = (struct synctoken_entry){k, g[i].pos};
	}
	synctoken_normalize(next, &nn);
	char *s = synctoken_encode(next, nn);
	free(next);
	return s;
}
