/* Every byte value, upper-cased only when it is an ASCII lower-case letter:
 * `sdk/c/build.sh --test sdk/c/examples/uppercase`. */
#include <stdio.h>

#include "runnel_testing.h"

void runnel_host_log(int level, const char *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, message);
}

int main(void) {
    uint8_t value[256];
    for (int b = 0; b < 256; b++) value[b] = (uint8_t)b;
    runnel_run_init(NULL, 0);
    runnel_test_message message = {.topic = "in", .key = RUNNEL_NO_KEY, .value = {value, sizeof value}};
    runnel_test_outcome outcome = runnel_test_handle(&message);
    int failures = outcome.output_count == 1 && outcome.outputs[0].key.ptr == NULL ? 0 : 1;
    for (int b = 0; b < 256 && !failures; b++) {
        int want = b >= 'a' && b <= 'z' ? b - 32 : b;
        if (outcome.outputs[0].value.ptr[b] != want) {
            fprintf(stderr, "FAIL: byte %d became %d\n", b, outcome.outputs[0].value.ptr[b]);
            failures++;
        }
    }
    runnel_test_free(&outcome);
    if (!failures) printf("ok: uppercase\n");
    return failures != 0;
}
