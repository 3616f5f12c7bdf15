/* store: the health check statement (see store.h; the tables' statements are in store_*.c). */
#include "store.h"

enum store_rc store_ping(struct db_conn *db)
{
	PGresult *res = db_exec(db, "SELECT 1", 0, NULL, false);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return ok ? STORE_OK : STORE_DB_ERROR;
}
