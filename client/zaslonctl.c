/* zaslonctl: the operator and client tool. Commands live in ctl_*.c. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* Weak so that the tool builds while a command group is not linked in. */
extern const struct ctl_command ctl_keys_commands[] __attribute__((weak));
extern const struct ctl_command ctl_request_commands[] __attribute__((weak));

static const struct ctl_command *const groups[] = {ctl_config_commands, ctl_keys_commands,
                                                   ctl_request_commands};

static void usage(FILE *f)
{
    fprintf(f, "usage: zaslonctl COMMAND [ARGS]\ncommands:\n");
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
        for (const struct ctl_command *c = groups[g]; c && c->name; c++)
            fprintf(f, "  %s %s\n", c->name, c->usage);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        for (const struct ctl_command *c = groups[g]; c && c->name; c++) {
            /* A command name may be two words ("keys export"). */
            size_t n = strlen(c->name);
            const char *sp = strchr(c->name, ' ');
            int words = 1;
            if (sp) {
                if (argc < 3 || strncmp(argv[1], c->name, (size_t)(sp - c->name)) != 0 ||
                    strlen(argv[1]) != (size_t)(sp - c->name) || strcmp(argv[2], sp + 1) != 0)
                    continue;
                words = 2;
            } else if (strlen(argv[1]) != n || strcmp(argv[1], c->name) != 0) {
                continue;
            }
            int rv = c->run(argc - 1 - words, argv + 1 + words);
            if (rv == 2)
                fprintf(stderr, "usage: zaslonctl %s %s\n", c->name, c->usage);
            return rv;
        }
    }
    fprintf(stderr, "zaslonctl: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
