#include "adapter.h"

#include <stdio.h>
#include <string.h>

/* A fixed table: adapters register at start-up, before any worker runs. */
#define ADAPTER_MAX 16
static const struct adapter_ops *registry[ADAPTER_MAX];
static size_t nregistry;

int adapter_register(const struct adapter_ops *ops)
{
    if (!ops || !ops->name || adapter_lookup(ops->name) || nregistry == ADAPTER_MAX)
        return -1;
    registry[nregistry++] = ops;
    return 0;
}

const struct adapter_ops *adapter_lookup(const char *name)
{
    for (size_t i = 0; i < nregistry; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int adapter_config_error(const struct adapter_config *conf, unsigned line, const char *fmt,
                         ...)
{
    if (!conf->errbuf || conf->errlen == 0)
        return ADAPTER_ERR_CONFIG;
    int n = snprintf(conf->errbuf, conf->errlen, "%s:%u: ", conf->file ? conf->file : "-",
                     line);
    if (n < 0 || (size_t)n >= conf->errlen)
        return ADAPTER_ERR_CONFIG;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(conf->errbuf + n, conf->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return ADAPTER_ERR_CONFIG;
}
