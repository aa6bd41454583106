/* {{name}}: a Runnel message handler. It upper-cases every value (ASCII only), keeping key and
 * headers, to the default topic: change runnel_handle to do what {{name}} should. */
#include "runnel.h"

bool runnel_init(const runnel_config *config) {
    (void)config; /* read settings with runnel_config_get or runnel_config_require */
    return true;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    runnel_send(out, runnel_message_value(message));
    size_t len;
    uint8_t *value = runnel_output_value(out, &len);
    for (size_t i = 0; i < len; i++)
        if (value[i] >= 'a' && value[i] <= 'z') value[i] -= 'a' - 'A';
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    return RUNNEL_OK;
}
