/* Aborts on the value `throw` and upper-cases (ASCII) every other value, keeping key and
 * headers: the throwing handler that tests/throwing.rs runs in every language. C has no
 * exception to catch: abort() traps the instance, and the host isolates the message that broke
 * the call. */
#include <stdlib.h>
#include <string.h>

#include "runnel.h"

bool runnel_init(const runnel_config *config) {
    (void)config;
    return true;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    runnel_bytes value = runnel_message_value(message);
    if (value.len == 5 && memcmp(value.ptr, "throw", 5) == 0) abort();
    runnel_send(out, value);
    runnel_mut_bytes copy = runnel_output_value(out);
    for (size_t i = 0; i < copy.len; i++)
        if (copy.ptr[i] >= 'a' && copy.ptr[i] <= 'z') copy.ptr[i] -= 'a' - 'A';
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    return RUNNEL_OK;
}
