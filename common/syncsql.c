/* syncsql: the rows and parameters of a sync page's statements (see syncsql.h). */
#include "syncsql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct syncpage_group *syncpage_groups_read(const PGresult *res, size_t *n)
{
	size_t ng = (size_t)PQntuples(res);
	struct syncpage_group *gs = calloc(ng + 1, sizeof(*gs));

	*n = 0;
	if(gs == NULL) return NULL;
	for(size_t i = 0; i < ng; i++) {
		int row = (int)i;
		snprintf(gs[i].gid, sizeof(gs[i].gid), "%s", PQgetvalue(res, row, 0));
		gs[i].joined = mqs_pg_int(res, row, 1);
		gs[i].delivered = mqs_pg_int(res, row, 2);
		gs[i].last = mqs_pg_int(res, row, 3);
	}
	*n = ng;
	return gs;
}

bool syncpage_ranges(const struct syncpage_group *g, size_t n, struct mqs_pgarr *ids, struct mqs_pgarr *los,
                     struct mqs_pgarr *his)
{
	for(size_t i = 0; i < n; i++) {
		if(g[i].upto <= g[i].pos) continue;
		mqs_pgarr_add_str(ids, g[i].gid, strlen(g[i].gid));
		mqs_pgarr_add_int(los, g[i].pos);
		mqs_pgarr_add_int(his, g[i].upto);
	}
	return mqs_pgarr_text(ids) != NULL && mqs_pgarr_text(los) != NULL && mqs_pgarr_text(his) != NULL;
}
