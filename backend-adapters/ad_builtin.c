/* The adapters built into zaslon, registered by name at start-up. */
#include "adapter.h"

#include "ad_http.h"

void adapter_register_builtin(void)
{
    /* Called once before workers start; a second call finds the names taken. */
    (void)adapter_register(&ad_http_ops);
}
