/* log: one levelled, printf-style logging function writing timestamped lines to stderr. */
#ifndef MQS_LOG_H
#define MQS_LOG_H

enum mqs_log_level { MQS_LOG_DEBUG = 0, MQS_LOG_INFO, MQS_LOG_WARN, MQS_LOG_ERR };

/* Sets the fixed prefix (e.g. "mqsyncd") and the lowest level printed. Call once at start. */
void mqs_log_init(const char *prefix, enum mqs_log_level min_level);

/* Writes one line: "2026-11-23T12:00:00.123Z mqsyncd[pid] LEVEL message". Thread-safe. */
void mqs_log(enum mqs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
