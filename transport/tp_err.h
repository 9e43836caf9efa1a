/* transport/ error codes. Functions that can fail return 0 or a negative TP_ERR_*.
   Codes at or below TP_ERR_FATAL leave the object unusable: free it. */
#ifndef ZASLON_TRANSPORT_TP_ERR_H
#define ZASLON_TRANSPORT_TP_ERR_H

enum tp_err {
    TP_OK = 0,
    TP_ERR_INVALID = -1,   /* malformed input or argument */
    TP_ERR_TOO_LARGE = -2, /* a length or count over its limit */
    TP_ERR_TRUNCATED = -3, /* input ended early */
    TP_ERR_STATE = -4,     /* call not allowed in this state */
    TP_ERR_CRYPTO = -5,    /* authentication failed or a primitive refused */
    TP_ERR_UNSUPPORTED = -6, /* unknown suite, key id, version */
    TP_ERR_IO = -7,        /* a system call failed */
    TP_ERR_TIMEOUT = -8,
    TP_ERR_CONNECT = -9,   /* could not connect to an upstream */
    TP_ERR_PROTO = -10,    /* peer broke the protocol */
    TP_ERR_CLOSED = -11,   /* peer closed */
    TP_ERR_CANCELLED = -12,
    TP_ERR_FATAL = -100,
    TP_ERR_NOMEM = -101,
};

/* Returns a fixed English string for |err|; never NULL. */
const char *tp_strerror(int err);

#endif
