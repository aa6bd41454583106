/* A native test of {{name}}'s handler: `sdk/c/build.sh --test .` builds and runs it. */
#include <stdio.h>
#include <string.h>

#include "runnel_testing.h"

void runnel_host_log(int level, const char *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, message);
}

int main(void) {
    if (runnel_run_init(NULL, 0)) return fprintf(stderr, "init refused its configuration\n"), 1;
    runnel_test_message message = {
        .topic = "in",
        .key = runnel_cbytes("k"),
        .value = runnel_cbytes("hello"),
        .header_count = 1,
        .headers = {{runnel_cstr("trace"), runnel_cbytes("1")}},
    };
    runnel_test_outcome outcome = runnel_test_handle(&message);
    runnel_test_output *output = &outcome.outputs[0];
    int ok = outcome.failure == 0 && outcome.output_count == 1 && output->value.len == 5 &&
             memcmp(output->value.ptr, "HELLO", 5) == 0 && output->key.len == 1 && output->header_count == 1;
    runnel_test_free(&outcome);
    if (!ok) return fprintf(stderr, "FAIL: expected one output HELLO with key and header\n"), 1;
    printf("ok: {{name}}\n");
    return 0;
}
