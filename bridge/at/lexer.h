/* AT lexer: pure, fed with bytes from the module, emits events.
 *
 * It never touches a file descriptor or a clock, so tests feed transcripts
 * split at every byte boundary.
 *
 *  - AT_LEX_LINE:   a line without its CR/LF terminator. Empty lines are
 *                   dropped. CR, LF, CRLF and SIM7600's CR CR LF all end a
 *                   line. data is NUL-terminated (data[len] == 0).
 *  - AT_LEX_PROMPT: '>' at the start of a line (27.005 sends "\r\n> " and
 *                   no LF after it; CMQTT sends ">"). One following space is
 *                   consumed with it. Only while a prompt is expected
 *                   (at_lexer_expect_prompt()); otherwise '>' is an
 *                   ordinary character (a USSD menu line "> 1 Balance").
 *  - AT_LEX_BLOCK:  exactly the number of raw bytes announced with
 *                   at_lexer_expect_block() (CMQTT RX topic/payload chunks,
 *                   which may contain CR, LF and NUL). Delivered in one piece.
 *  - AT_LEX_OVERFLOW: a line exceeded max_line; the partial line is dropped,
 *                   the lexer resynchronises at the next line end. data is
 *                   the dropped first max_line bytes (for a log message).
 *
 * Callbacks run synchronously inside at_lexer_feed(). A LINE callback may
 * call at_lexer_expect_block(): the bytes right after that line's
 * terminator (a single LF after the CR included) are then the block.
 * Only one LF is skipped: a block after SIM7600's CR CR LF would start
 * with CR LF (the A7670's CMQTT RX uses CR LF).
 * Any callback may call at_lexer_expect_block() or at_lexer_reset() (the
 * rest of the bytes being fed then go to the new state); none may call
 * at_lexer_feed() or at_lexer_free(). data is borrowed for the callback. */
#ifndef M2M_AT_LEXER_H
#define M2M_AT_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum at_lex_event { AT_LEX_LINE, AT_LEX_PROMPT, AT_LEX_BLOCK, AT_LEX_OVERFLOW };

typedef void (*at_lex_cb)(void *ctx, enum at_lex_event ev, const uint8_t *data, size_t len);

/* NULL when cb is NULL, max_line is 0, or out of memory.
 * max_line: longest line kept (the A7670 line buffer is 3071 bytes; its
 * responses are shorter, but a PDU line is up to 2*176 hex digits).
 * max_block: largest block accepted by at_lexer_expect_block(). */
struct at_lexer *at_lexer_new(size_t max_line, size_t max_block, at_lex_cb cb, void *ctx);
void at_lexer_free(struct at_lexer *lx);

void at_lexer_feed(struct at_lexer *lx, const uint8_t *data, size_t len);

/* 0, or -EMSGSIZE when len > max_block (nothing changes then). */
int at_lexer_expect_block(struct at_lexer *lx, size_t len);

/* Whether a '>' at line start is the data prompt (off after
 * at_lexer_new() and at_lexer_reset()). The chat turns it on only while a
 * command that writes data after the prompt waits for it. */
void at_lexer_expect_prompt(struct at_lexer *lx, bool on);

/* Drops any partial line or block: after a port reopen or a timeout. */
void at_lexer_reset(struct at_lexer *lx);

#endif
