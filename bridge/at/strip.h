/* A serial device server's own packets taken out of the modem's byte
 * stream.
 *
 * A device server (USR, CommFront and the like) may add bytes of its own
 * on the network side: a registry packet when the connection opens (its
 * MAC as 6 raw bytes, or a user-defined packet), or in front of every
 * chunk of serial data, and heartbeat packets every few seconds, put
 * between two chunks of serial data, so in the middle of a modem line as
 * well. Each is at most 40 bytes. Left in, they would corrupt the line they
 * land in (a "+CMGS: 12" that reads "+CMGS: 1www.usr.cn2").
 *
 * The strip removes every exact occurrence of the packets it was given,
 * wherever it is, also when the packet arrives split over several reads:
 * the bytes at the end of a read that could be the start of a packet are
 * held back until the next bytes decide. So that a modem line that merely
 * ends like the start of a packet is never delayed for long, held bytes
 * are due AT_STRIP_HOLD_MS after the last of them arrived (at_strip_due)
 * and are then released as they are (at_strip_release: the caller's timer,
 * and every read that finds nothing more to read). Until then, bytes that
 * come late still decide them: the output does not depend on how late a
 * read came, only on whether a release ran before it.
 *
 * The limit: a packet's bytes that the modem itself sends are removed too
 * (the stream has no way of telling them apart). Raw data inside the
 * modem's output (a remote MQTT payload) that contains a packet loses it,
 * and since the chat reads such a block by its announced length, it then
 * takes bytes that follow too: that message is damaged, and the chat may
 * have to resynchronise. Sparing raw blocks would be no better: a
 * heartbeat lands inside a payload as easily as inside a line, and is far
 * more likely there than the payload holding its exact bytes. The
 * packets should therefore be turned off on the device server; named
 * here, they should be ones the modem never sends (README: serial device
 * servers).
 *
 * Pure: no I/O, the time is the caller's. */
#ifndef M2M_AT_STRIP_H
#define M2M_AT_STRIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest packet a device server sends (registry or heartbeat). */
#define AT_STRIP_MAX 40
/* Packets one strip removes: a registry packet and a heartbeat. */
#define AT_STRIP_PACKETS 2
/* How long held bytes wait for the rest of a packet: a device server
 * writes its packet at once, so the rest follows within a network round
 * trip; a modem line is never delayed for longer than this. */
#define AT_STRIP_HOLD_MS 200

struct at_strip {
    uint8_t pkt[AT_STRIP_PACKETS][AT_STRIP_MAX];
    size_t pkt_len[AT_STRIP_PACKETS];
    size_t n_pkt;
    /* The stream's last bytes, a proper prefix of a packet: undecided. */
    uint8_t held[AT_STRIP_MAX];
    size_t n_held;
    int64_t held_since;     /* when the newest held byte arrived */
    uint64_t removed;       /* packets taken out so far */
};

/* An empty strip: everything passes. */
void at_strip_init(struct at_strip *s);
/* One more packet to remove: 0, -EINVAL (empty or longer than
 * AT_STRIP_MAX), -ENOSPC (AT_STRIP_PACKETS already). */
int at_strip_add(struct at_strip *s, const uint8_t *pkt, size_t len);
/* Filters len new bytes that arrived at now_ms into out, which must hold
 * len + AT_STRIP_MAX bytes (held bytes the new ones decide go out ahead
 * of them; held bytes still undecided stay held, due or not). Returns the
 * bytes written to out. */
size_t at_strip_feed(struct at_strip *s, const uint8_t *in, size_t len, uint8_t *out,
                     int64_t now_ms);
/* When the held bytes are due (milliseconds, the clock of now_ms), or -1
 * when none are held. */
int64_t at_strip_due(const struct at_strip *s);
/* The held bytes into out (AT_STRIP_MAX bytes) if they are due at now_ms:
 * the count, else 0. */
size_t at_strip_release(struct at_strip *s, uint8_t *out, int64_t now_ms);

#endif
