/* slog: mqsyncd's one log function: mqs_log with a fixed context prefix (the request a line is about). */
#ifndef MQS_SYNCD_SLOG_H
#define MQS_SYNCD_SLOG_H

#include "log.h"

/* Writes "ctx: message" through mqs_log, or just "message" when ctx is NULL (process-level lines:
 * start-up, the LISTEN thread, the pool). ctx is the request ("GET /groups/fam/messages") or the
 * command ("user add"). Thread-safe. */
void syncd_log(enum mqs_log_level level, const char *ctx, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
