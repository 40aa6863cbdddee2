/* log: one-line, timestamped diagnostics on stderr.
 *
 * "2026-11-23T10:15:30.123Z imnode[AMS] warn: commit: disk full".
 * Thread-safe (each line is one write). Level from IM_LOG=debug|info|warn|error. */
#ifndef IM_LOG_H
#define IM_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the program tag ("imnode[AMS]") and reads IM_LOG. */
void log_init(const char *tag);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
