/* zaslonctl check-config */
#include <stdio.h>

#include "adapter.h"
#include "ctl.h"
#include "gw_runtime.h"

static int check_config(int argc, char **argv)
{
    if (argc != 1)
        return 2;
    adapter_register_builtin();
    char err[1024];
    struct gw_runtime *rt = NULL;
    if (gw_runtime_load(argv[0], &rt, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gw_runtime_free(rt);
    printf("%s: configuration is valid\n", argv[0]);
    return 0;
}

const struct ctl_command ctl_config_commands[] = {
    {"check-config", "FILE  validate a configuration file (as zaslon -t does)", check_config},
    {NULL, NULL, NULL},
};
