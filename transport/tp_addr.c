#include "tp_addr.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tp_err.h"

int tp_addr_resolve(const char *host, uint16_t port, struct sockaddr_storage *addrs,
                    socklen_t *lens, size_t max, size_t *n)
{
    char portstr[8];
    int len = snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if (len < 0 || (size_t)len >= sizeof(portstr))
        return TP_ERR_INVALID;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int rv = getaddrinfo(host, portstr, &hints, &res);
    if (rv != 0)
        return rv == EAI_MEMORY ? TP_ERR_NOMEM : TP_ERR_CONNECT;
    size_t k = 0;
    for (struct addrinfo *ai = res; ai && k < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(addrs[0]))
            continue;
        memcpy(&addrs[k], ai->ai_addr, ai->ai_addrlen);
        lens[k] = ai->ai_addrlen;
        k++;
    }
    freeaddrinfo(res);
    *n = k;
    return k > 0 ? 0 : TP_ERR_CONNECT;
}
