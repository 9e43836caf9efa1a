/* zaslonctl's commands: each ctl_*.c file defines one or more and lists them here. */
#ifndef ZASLON_CLIENT_CTL_H
#define ZASLON_CLIENT_CTL_H

/* A command gets its arguments after the command word(s); returns the exit status
   (0 success, 1 failure, 2 usage). */
struct ctl_command {
    const char *name;  /* "check-config", "keygen", "keys export", "request" */
    const char *usage; /* one line: arguments and what it does */
    int (*run)(int argc, char **argv);
};

extern const struct ctl_command ctl_config_commands[];
extern const struct ctl_command ctl_keys_commands[];
extern const struct ctl_command ctl_request_commands[];

#endif
