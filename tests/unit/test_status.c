/* Status parsers, fed with lines as A7670/SIM7600 modules print them. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "at/chat.h"
#include "core/loop.h"
#include "modem/modem.h"
#include "modem/status.h"

/* --- link seams: the service runs against a scripted modem --------------- *
 * These definitions stand in for modem.o, chat.o and loop.o, which the
 * linker then never takes from libm2m.a (status.o needs nothing else of
 * them). Commands are recorded; the test answers them in order. */

#define MAX_CMDS 64

static struct {
    struct { char cmd[32]; at_done_cb cb; void *ctx; } cmds[MAX_CMDS];
    size_t n_cmds, n_done;
    const struct at_urc *urcs;
    size_t n_urcs;
    void *urc_ctx;
    struct status_info published[16];
    size_t n_published;
    bool ucs2;                   /* the modem's TE character set flag */
} F;

static int fake_chat_obj;

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    (void)m;
    (void)opts;
    assert_true(F.n_cmds < MAX_CMDS);
    snprintf(F.cmds[F.n_cmds].cmd, sizeof(F.cmds[0].cmd), "%s", cmd);
    F.cmds[F.n_cmds].cb = cb;
    F.cmds[F.n_cmds].ctx = ctx;
    F.n_cmds++;
    return 0;
}

bool modem_charset_ucs2(const struct modem *m)
{
    (void)m;
    return F.ucs2;
}

struct at_chat *modem_chat(struct modem *m)
{
    (void)m;
    return (struct at_chat *)(void *)&fake_chat_obj;
}

int at_chat_add_urcs(struct at_chat *chat, const struct at_urc *table, size_t n, void *ctx)
{
    (void)chat;
    F.urcs = table;
    F.n_urcs = n;
    F.urc_ctx = ctx;
    return 0;
}

int loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *ctx, uint64_t *id)
{
    (void)loop;
    (void)delay_ms;
    (void)cb;
    (void)ctx;
    if (id)
        *id = 1;   /* the interval timer is never fired here */
    return 0;
}

void loop_cancel_timer(struct loop *loop, uint64_t id)
{
    (void)loop;
    (void)id;
}

static void on_changed(void *ctx, const struct status_info *info)
{
    (void)ctx;
    assert_true(F.n_published < 16);
    F.published[F.n_published++] = *info;
}

/* Answers the oldest outstanding command, which must be `cmd`. */
static void answer(const char *cmd, const char *line)
{
    const char *lines[] = { line, NULL };
    const struct at_response rsp = {
        .final = AT_FINAL_OK, .code = -1, .lines = lines, .n_lines = line ? 1 : 0,
    };

    assert_true(F.n_done < F.n_cmds);
    assert_string_equal(F.cmds[F.n_done].cmd, cmd);
    F.n_done++;
    F.cmds[F.n_done - 1].cb(F.cmds[F.n_done - 1].ctx, &rsp);
}

static void urc(const char *line)
{
    const char *lines[] = { line, NULL };

    for (size_t i = 0; i < F.n_urcs; i++)
        if (strncmp(line, F.urcs[i].prefix, strlen(F.urcs[i].prefix)) == 0) {
            F.urcs[i].fn(F.urc_ctx, lines, 1);
            return;
        }
    fail_msg("no URC handler for %s", line);
}

static void answer_round(int reg, const char *cops)
{
    char creg[32], cereg[32];

    snprintf(creg, sizeof(creg), "+CREG: 2,%d", reg);
    snprintf(cereg, sizeof(cereg), "+CEREG: 2,%d", reg);
    answer("AT+CSQ", "+CSQ: 20,99");
    answer("AT+CREG?", creg);
    answer("AT+CEREG?", cereg);
    answer("AT+COPS?", cops);
    answer("AT+CPSI?", reg == 1 || reg == 5 ? "+CPSI: LTE,Online" : "+CPSI: NO SERVICE,Online");
}

/* A registration URC while a round runs: the round that began before the
 * change must not be published with the URC's registration (that gave
 * "home" next to the operator of the "denied" period); one more round
 * follows and publishes the new state, whole. URCs during a round are
 * coalesced into that one round. */
static void test_urc_during_round(void **state)
{
    const struct status_cbs cbs = { .changed = on_changed };
    struct status *st;

    (void)state;
    memset(&F, 0, sizeof(F));
    st = status_new(NULL, NULL, 60, &cbs, NULL);
    assert_non_null(st);
    status_modem_ready(st, true);
    assert_int_equal(F.n_cmds, 5);               /* one round queued */

    urc("+CREG: 1,\"1A2B\",\"01C2D3E4\"");     /* the network came back */
    urc("+CEREG: 1,\"1A2B\",\"01C2D3E4\",7");
    assert_int_equal(F.n_cmds, 5);               /* no second round yet */
    assert_int_equal(F.n_published, 0);          /* nothing from the URC itself */

    answer_round(3, "+COPS: 0");                 /* the round saw "denied" */
    assert_int_equal(F.n_published, 1);
    assert_int_equal(F.published[0].reg_stat, 3);
    assert_string_equal(F.published[0].operator_name, "");
    assert_int_equal(F.n_cmds, 10);              /* exactly one more round */

    answer_round(1, "+COPS: 0,0,\"Sim Telecom\",7");
    assert_int_equal(F.n_published, 2);
    assert_int_equal(F.published[1].reg_stat, 1);
    assert_string_equal(F.published[1].operator_name, "Sim Telecom");
    assert_string_equal(F.published[1].access, "LTE");
    assert_int_equal(F.n_cmds, 10);              /* and no further one */

    /* Idle: a URC starts a round at once. */
    urc("+CEREG: 5");
    assert_int_equal(F.n_cmds, 15);
    answer_round(5, "+COPS: 0,0,\"Roam Net\",7");
    assert_int_equal(F.published[2].reg_stat, 5);
    assert_string_equal(F.published[2].operator_name, "Roam Net");
    status_free(st);
}

/* While a USSD request runs the module's TE character set is UCS2 and it
 * prints the operator as UCS-2 hex: B/status still says "Sim Telecom". A
 * name that is not hex is kept as given. */
static void test_operator_ucs2(void **state)
{
    const struct status_cbs cbs = { .changed = on_changed };
    struct status *st;

    (void)state;
    memset(&F, 0, sizeof(F));
    st = status_new(NULL, NULL, 60, &cbs, NULL);
    assert_non_null(st);
    F.ucs2 = true;
    status_modem_ready(st, true);
    answer_round(1, "+COPS: 0,0,\"00530069006D002000540065006C00650063006F006D\",7");
    assert_int_equal(F.n_published, 1);
    assert_string_equal(F.published[0].operator_name, "Sim Telecom");
    urc("+CEREG: 1");
    answer_round(1, "+COPS: 0,0,\"Sim Telecom\",7");
    assert_string_equal(F.published[F.n_published - 1].operator_name, "Sim Telecom");
    /* Not in UCS2: hex-looking names are names. */
    F.ucs2 = false;
    urc("+CEREG: 1");
    answer_round(1, "+COPS: 0,0,\"00410042\",7");
    assert_string_equal(F.published[F.n_published - 1].operator_name, "00410042");
    status_free(st);
}

static void test_csq(void **state)
{
    static const struct {
        const char *line;
        int ret, csq;
    } cases[] = {
        { "+CSQ: 14,99", 0, 14 },
        { "+CSQ: 0,0", 0, 0 },
        { "+CSQ: 31,99", 0, 31 },
        { "+CSQ: 99,99", 0, 99 },
        { "+CSQ:20,99", 0, 20 },          /* no space */
        { "+CSQ: 32,99", -EINVAL, -1 },   /* 32-98 are not rssi values */
        { "+CSQ: 14", -EINVAL, -1 },
        { "+CSQ: ,99", -EINVAL, -1 },
        { "+CSQ: x,99", -EINVAL, -1 },
        { "+CREG: 1,1", -EINVAL, -1 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int csq = -1;
        assert_int_equal(status_parse_csq(cases[i].line, &csq), cases[i].ret);
        assert_int_equal(csq, cases[i].csq);
    }
}

static void test_reg(void **state)
{
    static const struct {
        const char *line;
        bool urc;
        int ret, stat;
    } cases[] = {
        /* responses to AT+CREG? / AT+CEREG?: <n>,<stat>[,...] */
        { "+CREG: 2,1,\"1A2B\",\"01C2D3E4\",7", false, 0, 1 },
        { "+CREG: 0,5", false, 0, 5 },
        { "+CEREG: 2,1,\"1A2B\",\"01C2D3E4\",7", false, 0, 1 },
        { "+CEREG: 2, 2", false, 0, 2 },  /* the manual's spaces */
        { "+CEREG: 0,3", false, 0, 3 },
        /* URCs with n=2: <stat>[,<lac>,<ci>[,<AcT>]] */
        { "+CREG: 1,\"1A2B\",\"01C2D3E4\"", true, 0, 1 },
        { "+CEREG: 5,\"1A2B\",\"01C2D3E4\",7", true, 0, 5 },
        { "+CEREG: 0", true, 0, 0 },
        { "+CREG: 2", false, -EINVAL, -1 },  /* response without stat */
        { "+CREG: x,1", true, -EINVAL, -1 },
        { "+CSQ: 1,1", false, -EINVAL, -1 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int stat = -1;
        assert_int_equal(status_parse_reg(cases[i].line, cases[i].urc, &stat), cases[i].ret);
        assert_int_equal(stat, cases[i].stat);
    }
}

static void test_cops_cpsi(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(status_parse_cops("+COPS: 0,0,\"Sim Telecom\",7", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "Sim Telecom");
    assert_int_equal(status_parse_cops("+COPS: 0,0,\"Vodafone, DE\",7", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "Vodafone, DE");     /* comma inside quotes */
    assert_int_equal(status_parse_cops("+COPS: 0", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");                 /* not registered */
    assert_int_equal(status_parse_cops("+CSQ: 1,2", buf, sizeof(buf)), -EINVAL);

    assert_int_equal(status_parse_cpsi("+CPSI: LTE,Online,262-01,0x1A2B,12345678,300,"
                                       "EUTRAN-BAND3,1300,5,5,-94,-1050,-720,15",
                                       buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "LTE");
    assert_int_equal(status_parse_cpsi("+CPSI: GSM,Online,262-01,0x1a2b,1234,10", buf,
                                       sizeof(buf)),
                     0);
    assert_string_equal(buf, "GSM");
    assert_int_equal(status_parse_cpsi("+CPSI: NO SERVICE,Online", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
}

static void test_signal_scale(void **state)
{
    (void)state;
    assert_int_equal(status_csq_dbm(0), -113);
    assert_int_equal(status_csq_dbm(14), -85);     /* the contract's example */
    assert_int_equal(status_csq_dbm(31), -51);
    assert_int_equal(status_csq_dbm(99), INT_MIN);
    assert_int_equal(status_csq_percent(0), 0);
    assert_int_equal(status_csq_percent(14), 45);  /* the contract's example */
    assert_int_equal(status_csq_percent(31), 100);
    assert_int_equal(status_csq_percent(99), -1);
    assert_string_equal(status_reg_name(0), "unregistered");
    assert_string_equal(status_reg_name(1), "home");
    assert_string_equal(status_reg_name(2), "searching");
    assert_string_equal(status_reg_name(3), "denied");
    assert_string_equal(status_reg_name(4), "unknown");
    assert_string_equal(status_reg_name(5), "roaming");
    assert_string_equal(status_reg_name(-1), "unknown");
    assert_string_equal(status_reg_name(8), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csq),
        cmocka_unit_test(test_reg),
        cmocka_unit_test(test_cops_cpsi),
        cmocka_unit_test(test_signal_scale),
        cmocka_unit_test(test_urc_during_round),
        cmocka_unit_test(test_operator_ucs2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
