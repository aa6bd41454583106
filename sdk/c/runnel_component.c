/* Connects the SDK to the component's world: the exports and the log import that wit-bindgen
 * generated from wit/runnel.wit into plugin.h and plugin.c. */
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "runnel.h"

bool exports_runnel_plugin_handler_init(plugin_list_tuple2_string_string_t *config,
                                        plugin_string_t *err) {
    size_t count = config->len;
    runnel_str *settings = malloc((2 * count + 1) * sizeof *settings);
    if (!settings) abort();
    for (size_t i = 0; i < count; i++) {
        settings[2 * i] = (runnel_str){(const char *)config->ptr[i].f0.ptr, config->ptr[i].f0.len};
        settings[2 * i + 1] = (runnel_str){(const char *)config->ptr[i].f1.ptr, config->ptr[i].f1.len};
    }
    const char *error = runnel_run_init(settings, count);
    free(settings);
    /* The strings were copied by runnel_init where it keeps them. */
    plugin_list_tuple2_string_string_free(config);
    if (!error) return true;
    /* The generated post-return function frees the error after the host copied it. */
    plugin_string_dup(err, error);
    return false;
}

void exports_runnel_plugin_handler_handle(plugin_list_u8_t *batch, plugin_list_u8_t *ret) {
    size_t len;
    ret->ptr = runnel_run_handle(batch->ptr, batch->len, &len);
    ret->len = len;
    plugin_list_u8_free(batch);
}

void runnel_host_log(int level, const char *message, size_t len) {
    plugin_string_t text = {(uint8_t *)message, len};
    runnel_plugin_log_log((runnel_plugin_log_level_t)level, &text);
}
