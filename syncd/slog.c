/* slog: mqsyncd's one log function with a fixed context prefix (see slog.h). */
#include "slog.h"

#include <stdarg.h>
#include <stdio.h>

void syncd_log(enum mqs_log_level level, const char *ctx, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if(ctx != NULL)
		mqs_log(level, "%s: %s", ctx, msg);
	else
		mqs_log(level, "%s", msg);
}
