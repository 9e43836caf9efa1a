/* zaslonctl: the operator tool. */
#include <stdio.h>
#include <string.h>

#include "adapter.h"
#include "gw_runtime.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: zaslonctl COMMAND [ARGS]\n"
               "commands:\n"
               "  check-config FILE   validate a configuration file (as zaslon -t does)\n");
}

static int check_config(int argc, char **argv)
{
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
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

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "check-config") == 0)
        return check_config(argc - 2, argv + 2);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "zaslonctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
