/* log: one levelled, printf-style logging function writing timestamped lines to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set once at start, before any thread exists; read-only afterwards. */
static const char *log_prefix = "mqsync";
static enum mqs_log_level log_min = MQS_LOG_INFO;

void mqs_log_init(const char *prefix, enum mqs_log_level min_level)
{
	log_prefix = prefix;
	log_min = min_level;
}

void mqs_log(enum mqs_log_level level, const char *fmt, ...)
{
	static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	char msg[2048];
	char ts[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;

	if(level < log_min) return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One fprintf per line: stdio locks the stream, so lines from threads do not interleave. */
	fprintf(stderr, "%s.%03ldZ %s[%d] %s %s\n", ts, (long)(tv.tv_usec / 1000), log_prefix, (int)getpid(),
	        names[level], msg);
}
