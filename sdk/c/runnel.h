/* Write Runnel message handlers in C (or C++).
 *
 * A handler sees one message at a time and sends zero or more outputs for it; this SDK turns
 * that into the batch-at-a-time contract of wit/runnel.wit and its encoding (wit/ENCODING.md).
 * A plugin defines two functions, runnel_init and runnel_handle:
 *
 *     #include "runnel.h"
 *
 *     bool runnel_init(const runnel_config *config) { return true; }
 *
 *     runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
 *         runnel_send(out, runnel_message_value(message));
 *         runnel_output_key(out, runnel_message_key(message));
 *         runnel_output_headers(out, message);
 *         return RUNNEL_OK;
 *     }
 *
 * Everything a message gives (key, value, topic, headers) points into the batch and is valid
 * until runnel_handle returns: copy what you keep. Nothing here is thread-safe; a WebAssembly
 * instance has one thread.
 */
#ifndef RUNNEL_H
#define RUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes someone else owns. A key with ptr == NULL is "no key", which Kafka distinguishes from an
 * empty key (a non-NULL ptr with len 0). */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} runnel_bytes;

/* Bytes to change in place. */
typedef struct {
    uint8_t *ptr;
    size_t len;
} runnel_mut_bytes;

/* UTF-8 text someone else owns; not NUL-terminated. */
typedef struct {
    const char *ptr;
    size_t len;
} runnel_str;

/* Text from a NUL-terminated string, and the same as bytes. */
runnel_str runnel_cstr(const char *text);
runnel_bytes runnel_cbytes(const char *text);

/* The "no key" key. */
#define RUNNEL_NO_KEY ((runnel_bytes){NULL, 0})

/* ---------------------------------------------------------------- what a plugin defines */

typedef struct runnel_config runnel_config;
typedef struct runnel_message runnel_message;
typedef struct runnel_outputs runnel_outputs;

typedef enum {
    RUNNEL_OK = 0,
    /* The message failed: returned by runnel_permanent and runnel_transient. */
    RUNNEL_FAILED = 1,
} runnel_status;

/* Called once per instance, before any message, with the plugin's configuration. Return false
 * to refuse the plugin, after runnel_init_error (or a failed runnel_config_require) said why. */
bool runnel_init(const runnel_config *config);

/* Sends the outputs of one message to out, or fails it with runnel_permanent or
 * runnel_transient. A failed message's outputs are discarded. Calling abort() (or any trap)
 * fails the whole batch: the host then retries its messages on a fresh instance, one by one,
 * to find the one that traps. */
runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out);

/* ---------------------------------------------------------------- configuration */

/* The value of setting name; when a name is repeated the last value wins. False if unset. */
bool runnel_config_get(const runnel_config *config, const char *name, runnel_str *value);

/* runnel_config_get, but a missing setting is an error for init to return: it sets the init
 * error to "missing required setting `NAME`: add it to this plugin's config" and returns false. */
bool runnel_config_require(const runnel_config *config, const char *name, runnel_str *value);

/* Every setting, in the order the host passed them. */
size_t runnel_config_count(const runnel_config *config);
void runnel_config_at(const runnel_config *config, size_t index, runnel_str *name, runnel_str *value);

/* Sets the message that refuses the plugin (printf-style) and returns false, for
 * `return runnel_init_error("...", ...);`. */
bool runnel_init_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- the message */

typedef struct {
    runnel_str name;
    runnel_bytes value;
} runnel_header;

/* The key; ptr is NULL when the message has no key. */
runnel_bytes runnel_message_key(const runnel_message *message);
runnel_bytes runnel_message_value(const runnel_message *message);
/* The topic the message was read from. */
runnel_str runnel_message_topic(const runnel_message *message);
/* The Kafka partition and offset, or -1 for inputs without them. */
int32_t runnel_message_partition(const runnel_message *message);
int64_t runnel_message_offset(const runnel_message *message);
/* Milliseconds since the Unix epoch; false when the input does not know it. */
bool runnel_message_timestamp(const runnel_message *message, int64_t *millis);
/* The name of the pipeline input (Kafka consumer or Dapr binding) the message came from. */
runnel_str runnel_message_source(const runnel_message *message);
/* Headers in the order the producer wrote them; a name may repeat. */
size_t runnel_message_header_count(const runnel_message *message);
runnel_header runnel_message_header_at(const runnel_message *message, size_t index);
/* The value of the last header called name (case-sensitive), like Kafka's lastHeader. */
bool runnel_message_header(const runnel_message *message, const char *name, runnel_bytes *value);

/* ---------------------------------------------------------------- outputs */

/* Sends a copy of value to the pipeline's default output topic, without key or headers; the
 * runnel_output_ functions then change that output, the last one sent. */
void runnel_send(runnel_outputs *out, runnel_bytes value);
/* Sets the key; RUNNEL_NO_KEY (the default) sends the output without a key. */
void runnel_output_key(runnel_outputs *out, runnel_bytes key);
/* The sent value, to change in place: sending the input and editing the copy is the cheapest
 * way to transform a message. Valid until the next call on out. */
runnel_mut_bytes runnel_output_value(runnel_outputs *out);
/* Adds a header; names may repeat. */
void runnel_output_header(runnel_outputs *out, runnel_str name, runnel_bytes value);
/* Adds every header of message, in order. */
void runnel_output_headers(runnel_outputs *out, const runnel_message *message);
/* Sends the output to topic instead of the pipeline's default output topic. */
void runnel_output_topic(runnel_outputs *out, runnel_str topic);

/* ---------------------------------------------------------------- failures */

/* Fails the message (printf-style message): retrying cannot help, the host dead-letters or
 * skips it. Returns RUNNEL_FAILED, for `return runnel_permanent(out, "...");`. */
runnel_status runnel_permanent(runnel_outputs *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* Fails the message: a later retry of the same message may succeed. */
runnel_status runnel_transient(runnel_outputs *out, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- logging */

/* Writes a printf-style line into the host's log, tagged with the plugin's name. Every call
 * crosses into the host: log per batch or per problem, not per message at info level. */
void runnel_trace(const char *format, ...) __attribute__((format(printf, 1, 2)));
void runnel_debug(const char *format, ...) __attribute__((format(printf, 1, 2)));
void runnel_info(const char *format, ...) __attribute__((format(printf, 1, 2)));
void runnel_warn(const char *format, ...) __attribute__((format(printf, 1, 2)));
void runnel_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- the exports' work */

/* What the component's exports call (runnel_component.c), and native tests with them. */

/* Runs runnel_init with settings given as 2 * count strings (name, value, name, ...). Returns
 * NULL when the plugin accepted them, or the error, valid until the next call. */
const char *runnel_run_init(const runnel_str *settings, size_t count);

/* Runs runnel_handle over every message of an encoded batch and returns the encoded answer, a
 * malloc'd buffer the caller frees. */
uint8_t *runnel_run_handle(const uint8_t *batch, size_t len, size_t *answer_len);

/* Where log lines go: the host's log in a component, standard error in a native test. */
void runnel_host_log(int level, const char *message, size_t len);

#ifdef __cplusplus
}
#endif

#endif
