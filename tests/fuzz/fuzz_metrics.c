/* core/metrics: the request and listen-address parsers on any bytes. A
 * request judged complete must stay judged the same with more bytes after
 * it (the responder decides on what it has read so far). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/metrics.h"
#include "core/netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    int r = metrics_parse_request(buf, size);

    if (r != 0 && r != 200 && r != 400 && r != 404 && r != 405)
        abort();
    if (r != 0 && size > 0 && metrics_parse_request(buf, size - 1) != 0 &&
        metrics_parse_request(buf, size - 1) != r)
        abort();

    char s[80];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    struct sockaddr_storage ss;
    socklen_t len;
    if (netaddr_parse(s, &ss, &len) == 0 && ss.ss_family != AF_INET &&
        ss.ss_family != AF_INET6)
        abort();
    return 0;
}
