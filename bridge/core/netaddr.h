/* A socket address as users write it in the config: "HOST:PORT". */
#ifndef M2M_CORE_NETADDR_H
#define M2M_CORE_NETADDR_H

#include <sys/socket.h>

/* Pure: HOST an IPv4 literal or a bracketed IPv6 literal ("127.0.0.1:9713",
 * "[::1]:9713", "0.0.0.0:9713"), PORT 1-65535 in decimal; no names, so
 * nothing waits for DNS. 0 or -EINVAL. */
int netaddr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
