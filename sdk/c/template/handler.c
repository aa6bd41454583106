/* {{name}}: a Runnel message handler. It upper-cases every value (ASCII only), keeping key and
 * headers, to the default topic: change runnel_handle to do what {{name}} should. */
#include "runnel.h"

/* Upper-cases ASCII letters in place; branch-free, so that clang vectorises the loop. */
static void ascii_uppercase(uint8_t *bytes, size_t len) {
    for (size_t i = 0; i < len; i++) bytes[i] -= (uint8_t)((uint8_t)(bytes[i] - 'a') < 26) << 5;
}

bool runnel_init(const runnel_config *config) {
    (void)config; /* read settings with runnel_config_get or runnel_config_require */
    return true;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    runnel_send(out, runnel_message_value(message));
    runnel_mut_bytes value = runnel_output_value(out);
    ascii_uppercase(value.ptr, value.len);
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    return RUNNEL_OK;
}
