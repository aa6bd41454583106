/* What a handler's native tests need: one message built by hand, run through runnel_handle
 * exactly as a host call runs it (encoded into a batch, the answer decoded back). Compile it
 * natively with runnel.c and the handler; it is not part of the plugin. */
#ifndef RUNNEL_TESTING_H
#define RUNNEL_TESTING_H

#include "runnel.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RUNNEL_TEST_MAX = 8 };

typedef struct {
    const char *topic;
    runnel_bytes key; /* RUNNEL_NO_KEY for none */
    runnel_bytes value;
    size_t header_count;
    runnel_header headers[RUNNEL_TEST_MAX];
} runnel_test_message;

typedef struct {
    runnel_str topic; /* len 0: the default topic */
    runnel_bytes key;
    runnel_bytes value;
    size_t header_count;
    runnel_header headers[RUNNEL_TEST_MAX];
} runnel_test_output;

typedef struct {
    int failure; /* 0 succeeded, 1 transient, 2 permanent */
    runnel_str failure_message;
    size_t output_count; /* at most RUNNEL_TEST_MAX are kept */
    runnel_test_output outputs[RUNNEL_TEST_MAX];
    uint8_t *answer; /* what the pointers above point into */
} runnel_test_outcome;

/* Handles message with the plugin's runnel_handle (after runnel_run_init) and reads the
 * outcome. Free it with runnel_test_free. */
runnel_test_outcome runnel_test_handle(const runnel_test_message *message);
void runnel_test_free(runnel_test_outcome *outcome);

#ifdef __cplusplus
}
#endif

#endif
