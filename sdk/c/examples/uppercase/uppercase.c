/* Upper-cases every value (ASCII only), keeping key and headers, to the default topic: the
 * smallest complete Runnel plugin. */
#include "runnel.h"

bool runnel_init(const runnel_config *config) {
    (void)config;
    return true;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    /* Sending the value and editing the copy in place saves a copy per message. */
    runnel_send(out, runnel_message_value(message));
    size_t len;
    uint8_t *value = runnel_output_value(out, &len);
    for (size_t i = 0; i < len; i++)
        if (value[i] >= 'a' && value[i] <= 'z') value[i] -= 'a' - 'A';
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    return RUNNEL_OK;
}
