/* Name resolution for the client sides (upstream pools, the relay's HTTP/2 client).
   Called at start-up only: getaddrinfo blocks, and nothing may block a loop thread. */
#ifndef ZASLON_TRANSPORT_TP_ADDR_H
#define ZASLON_TRANSPORT_TP_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Resolves |host| (a name or a literal, IPv4 or IPv6) and |port| into at most |max|
   addresses, in resolver order, in |addrs| and |lens|; sets *n. Returns 0, TP_ERR_NOMEM,
   TP_ERR_INVALID, or TP_ERR_CONNECT when nothing resolves. */
int tp_addr_resolve(const char *host, uint16_t port, struct sockaddr_storage *addrs,
                    socklen_t *lens, size_t max, size_t *n);

#endif
