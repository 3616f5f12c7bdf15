/* store: the health check statement (see store.h; the tables' statements are in store_*.c). */
#include "store.h"

enum store_rc store_ping(struct db_conn *db)
{
	PGresult *res = db_exec(db, "SELECT 1", 0, NULL, false);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return ok ? STORE_OK : STORE_DB_ERROR;
}

void store_append(json_t **arr, json_t *v)
{
	if(*arr == NULL) {
		json_decref(v);
	} else if(v == NULL || json_array_append_new(*arr, v) != 0) {
		json_decref(*arr);
		*arr = NULL;
	}
}
