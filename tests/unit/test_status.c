/* Status parsers, fed with lines as A7670/SIM7600 modules print them. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    struct { char cmd[32]; at_done_cb cb; void *ctx; void (*written)(void *); } cmds[MAX_CMDS];
    size_t n_cmds, n_done;
    const struct at_urc *urcs;
    size_t n_urcs;
    void *urc_ctx;
    struct status_info published[16];
    size_t n_published;
    bool ucs2;                   /* the modem's TE character set flag */
    bool no_sms;                 /* a module without SMS (AT+CMGF=0 refused) */
    char full_why[8][64];        /* storage_full callbacks */
    size_t n_full;
} F;

static int fake_chat_obj;

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    (void)m;
    assert_true(F.n_cmds < MAX_CMDS);
    snprintf(F.cmds[F.n_cmds].cmd, sizeof(F.cmds[0].cmd), "%s", cmd);
    F.cmds[F.n_cmds].cb = cb;
    F.cmds[F.n_cmds].ctx = ctx;
    F.cmds[F.n_cmds].written = opts ? opts->written : NULL;
    F.n_cmds++;
    return 0;
}

bool modem_sms_supported(const struct modem *m)
{
    (void)m;
    return !F.no_sms;
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

static void on_storage_full(void *ctx, const char *why)
{
    (void)ctx;
    assert_true(F.n_full < 8);
    snprintf(F.full_why[F.n_full++], sizeof(F.full_why[0]), "%s", why);
}

/* The chat writes the oldest outstanding command (its `written` hook runs),
 * which must be `cmd`. Returns its index. */
static size_t write_next(const char *cmd)
{
    size_t i = F.n_done;

    assert_true(i < F.n_cmds);
    assert_string_equal(F.cmds[i].cmd, cmd);
    if (F.cmds[i].written)
        F.cmds[i].written(F.cmds[i].ctx);
    return i;
}

/* Writes the oldest outstanding command, which must be `cmd`, and answers
 * it with line (NULL: none) and final. */
static void answer_final(const char *cmd, const char *line, enum at_final final)
{
    const char *lines[] = { line, NULL };
    const struct at_response rsp = {
        .final = final, .code = -1, .lines = lines, .n_lines = line ? 1 : 0,
    };
    size_t i = write_next(cmd);

    F.n_done++;
    F.cmds[i].cb(F.cmds[i].ctx, &rsp);
}

static void answer(const char *cmd, const char *line)
{
    answer_final(cmd, line, AT_FINAL_OK);
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

/* One poll round: the registration answers creg and cereg, the SMS store
 * cpms (NULL: a module without SMS, where the round has no AT+CPMS?),
 * AT+CBC cbc with cbc_final; an LTE cell when served. */
static void answer_round_lines(const char *creg, const char *cereg, const char *cops,
                               const char *cpms, const char *cbc, enum at_final cbc_final,
                               bool served)
{
    answer("AT+CSQ", "+CSQ: 20,99");
    answer("AT+CREG?", creg);
    answer("AT+CEREG?", cereg);
    answer("AT+COPS?", cops);
    if (cpms)
        answer("AT+CPMS?", cpms);
    answer_final("AT+CBC", cbc, cbc_final);
    answer("AT+CPSI?", served ? "+CPSI: LTE,Online" : "+CPSI: NO SERVICE,Online");
}

/* The same, with both registrations at stat reg (no location). */
static void answer_round_cbc(int reg, const char *cops, const char *cpms, const char *cbc,
                             enum at_final cbc_final)
{
    char creg[32], cereg[32];

    snprintf(creg, sizeof(creg), "+CREG: 2,%d", reg);
    snprintf(cereg, sizeof(cereg), "+CEREG: 2,%d", reg);
    answer_round_lines(creg, cereg, cops, cpms, cbc, cbc_final, reg == 1 || reg == 5);
}

static void answer_round_cpms(int reg, const char *cops, const char *cpms)
{
    answer_round_cbc(reg, cops, cpms, "+CBC: 3.978V", AT_FINAL_OK);
}

static void answer_round(int reg, const char *cops)
{
    answer_round_cpms(reg, cops, "+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30");
}

#define CPMS(used, total) \
    "+CPMS: \"SM\"," #used "," #total ",\"SM\"," #used "," #total ",\"SM\"," #used "," #total

static const struct status_info *last_published(void)
{
    assert_true(F.n_published > 0);
    return &F.published[F.n_published - 1];
}

/* A service whose modem just became ready: its first round queued. */
static struct status *start_ready(void)
{
    const struct status_cbs cbs = { .changed = on_changed };
    struct status *st;

    memset(&F, 0, sizeof(F));
    st = status_new(NULL, NULL, 60, &cbs, NULL);
    assert_non_null(st);
    status_modem_ready(st, true);
    return st;
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
    assert_int_equal(F.n_cmds, 7);               /* one round queued */

    urc("+CREG: 1,\"1A2B\",\"01C2D3E4\"");     /* the network came back */
    urc("+CEREG: 1,\"1A2B\",\"01C2D3E4\",7");
    assert_int_equal(F.n_cmds, 7);               /* no second round yet */
    assert_int_equal(F.n_published, 0);          /* nothing from the URC itself */

    answer_round(3, "+COPS: 0");                 /* the round saw "denied" */
    assert_int_equal(F.n_published, 1);
    assert_int_equal(F.published[0].reg_stat, 3);
    assert_string_equal(F.published[0].operator_name, "");
    assert_int_equal(F.n_cmds, 14);              /* exactly one more round */

    answer_round(1, "+COPS: 0,0,\"Sim Telecom\",7");
    assert_int_equal(F.n_published, 2);
    assert_int_equal(F.published[1].reg_stat, 1);
    assert_string_equal(F.published[1].operator_name, "Sim Telecom");
    assert_string_equal(F.published[1].access, "LTE");
    assert_int_equal(F.n_cmds, 14);              /* and no further one */

    /* Idle: a URC starts a round at once. */
    urc("+CEREG: 5");
    assert_int_equal(F.n_cmds, 21);
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
        { "+CSQ: 14,x", -EINVAL, -1 },    /* <ber> is a number too */
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
        { "+CREG: 2,1x", false, -EINVAL, -1 },
        { "+CEREG: 1,\"1A2B", true, 0, 1 },  /* fields after <stat> are not read */
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
    /* The name is a quoted string, after a mode and a format. */
    assert_int_equal(status_parse_cops("+COPS: 0,0,Sim Telecom,7", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(status_parse_cops("+COPS: 0,0,\"Sim Telecom", buf, sizeof(buf)), -EINVAL);
    assert_int_equal(status_parse_cops("+COPS: x", buf, sizeof(buf)), -EINVAL);
    assert_string_equal(buf, "");                 /* untouched on failure */

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
    assert_int_equal(status_parse_cpsi("+CPSI: \"LTE\",Online", buf, sizeof(buf)), -EINVAL);
}

/* AT+CPMS? answers: the first store's used and total. From A7670 and
 * SIM7600 logs (SIM7600 names the preferred stores "SM_P"/"ME_P") and the
 * manual's examples with spaces; then what must not be believed. */
static void test_cpms(void **state)
{
    static const struct {
        const char *line;
        int ret, used, total;
    } cases[] = {
        { "+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30", 0, 0, 30 },
        { "+CPMS: \"SM\",3,50,\"SM\",3,50,\"SM\",3,50", 0, 3, 50 },
        { "+CPMS: \"ME\",0,23,\"ME\",0,23,\"ME\",0,23", 0, 0, 23 },
        { "+CPMS: \"SM_P\",5,40,\"SM_P\",5,40,\"SM_P\",5,40", 0, 5, 40 },
        { "+CPMS: \"SM\", 2, 10, \"SM\", 2, 10, \"SM\", 2, 10", 0, 2, 10 },
        { "+CPMS: \"SM\",30,30,\"SM\",30,30,\"SM\",30,30", 0, 30, 30 },   /* full */
        { "+CPMS:\"SM\",10,10", 0, 10, 10 },                               /* one store */
        { "+CPMS: \"SM\",0,65535", 0, 0, 65535 },
        /* AT+CPMS= answers counts without names; AT+CPMS=? the choices */
        { "+CPMS: 0,30,0,30,0,30", -EINVAL, -1, -1 },
        { "+CPMS: (\"SM\",\"ME\"),(\"SM\",\"ME\"),(\"SM\",\"ME\")", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",31,30", -EINVAL, -1, -1 },                        /* used > total */
        { "+CPMS: \"SM\",0,0", -EINVAL, -1, -1 },                          /* no store */
        { "+CPMS: \"SM\",0,65536", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",4294967326,30", -EINVAL, -1, -1 },                /* wraps to 30 */
        /* longer than any real answer: a copy cut inside a count would be
         * believed */
        { "+CPMS: \"SM\",000000000000000000000000000000000000000000000000000000000000000000000"
          "000000000000000000000000000000000000000000000000000000000000000000000000000001,30",
          -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",-1,30", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",+1,30", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",0,30x", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",0,3 0", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",,30", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",0", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\",0,", -EINVAL, -1, -1 },
        { "+CPMS: \"SM\"", -EINVAL, -1, -1 },
        { "+CPMS: SM,0,30", -EINVAL, -1, -1 },                             /* unquoted */
        { "+CPMS: \"\",0,30", -EINVAL, -1, -1 },
        { "+CPMS: \"SM,0,30", -EINVAL, -1, -1 },
        { "+CPMS: \"SMSMSMSMS\",0,30", -EINVAL, -1, -1 },                  /* not a store name */
        { "+CPMS: \"S\xc3\xa9\",0,30", -EINVAL, -1, -1 },
        { "+CPMS:", -EINVAL, -1, -1 },
        { "+CSQ: 0,30", -EINVAL, -1, -1 },
        { "", -EINVAL, -1, -1 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int used = -1, total = -1;
        /* An exactly sized copy: ASan sees a read past the end. */
        char *line = strdup(cases[i].line);

        assert_non_null(line);
        if (status_parse_cpms(line, &used, &total) != cases[i].ret)
            fail_msg("%s: expected %d", cases[i].line, cases[i].ret);
        assert_int_equal(used, cases[i].used);
        assert_int_equal(total, cases[i].total);
        free(line);
    }
}

/* AT+CBC answers: the A7670's volts (captures of A7670E/SIM7670G boards:
 * "+CBC: 3.978V", "+CBC: 3.563V"; some print two decimals), 27.007's
 * <bcs>,<bcl>,<mV> (SIM800), then what must not be believed. */
static void test_cbc(void **state)
{
    static const struct {
        const char *line;
        int ret, mv;
    } cases[] = {
        { "+CBC: 3.978V", 0, 3978 },
        { "+CBC: 3.563V", 0, 3563 },
        { "+CBC: 3.95V", 0, 3950 },
        { "+CBC: 4.2V", 0, 4200 },
        { "+CBC: 4V", 0, 4000 },
        { "+CBC:3.749V", 0, 3749 },
        { "+CBC: 12.000V", 0, 12000 },
        { "+CBC: 0,88,4090", 0, 4090 },            /* 27.007: bcs, bcl, mV */
        { "+CBC: 1, 100, 4200", 0, 4200 },
        { "+CBC: 3.978", -EINVAL, -1 },             /* no unit */
        { "+CBC: 3.978v", -EINVAL, -1 },
        { "+CBC: 3.9785V", -EINVAL, -1 },           /* more than mV */
        { "+CBC: 3.V", -EINVAL, -1 },
        { "+CBC: .978V", -EINVAL, -1 },
        { "+CBC: V", -EINVAL, -1 },
        { "+CBC: -3.978V", -EINVAL, -1 },
        { "+CBC: 123.4V", -EINVAL, -1 },
        { "+CBC: 25.0V", -EINVAL, -1 },             /* over STATUS_CBC_MV_MAX */
        { "+CBC: 3.978V,1", -EINVAL, -1 },
        { "+CBC: \"3.978V\"", -EINVAL, -1 },
        { "+CBC: 3.978 V", -EINVAL, -1 },
        { "+CBC: 0,88", -EINVAL, -1 },              /* 27.007 without a voltage */
        { "+CBC: 0,88,4090,1", -EINVAL, -1 },
        { "+CBC: 0,88,20001", -EINVAL, -1 },
        { "+CBC: 4,88,4090", -EINVAL, -1 },         /* bcs 0-3 */
        { "+CBC: 0,101,4090", -EINVAL, -1 },
        { "+CBC: 0,88,-1", -EINVAL, -1 },
        { "+CBC: 3,978V", -EINVAL, -1 },
        { "+CBC:", -EINVAL, -1 },
        { "+CSQ: 3.978V", -EINVAL, -1 },
        { "", -EINVAL, -1 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int mv = -1;
        /* An exactly sized copy: ASan sees a read past the end. */
        char *line = strdup(cases[i].line);

        assert_non_null(line);
        if (status_parse_cbc(line, &mv) != cases[i].ret || mv != cases[i].mv)
            fail_msg("%s: expected %d, %d; got %d", cases[i].line, cases[i].ret, cases[i].mv, mv);
        free(line);
    }
}

/* The location in AT+CREG?/AT+CEREG? answers (mode 2) and URCs: A7670
 * and SIM7600 lines, the manual's spaces; then what must not be
 * believed. */
static void test_cell(void **state)
{
    static const struct {
        const char *line;
        bool urc;
        int ret;
        const char *lac, *ci;
    } cases[] = {
        { "+CREG: 2,1,\"1A2B\",\"01C2D3E4\",7", false, 0, "1A2B", "01C2D3E4" },
        { "+CEREG: 2,5,\"5DD2\",\"08C3C00F\",7", false, 0, "5DD2", "08C3C00F" },
        { "+CREG: 2,1,\"00a1\",\"5e1f\"", false, 0, "00a1", "5e1f" },   /* GSM, no AcT */
        { "+CEREG: 2, 1, \"1A2B\", \"01C2D3E4\", 7", false, 0, "1A2B", "01C2D3E4" },
        { "+CEREG: 1,\"1A2B\",\"01C2D3E4\",7", true, 0, "1A2B", "01C2D3E4" },
        { "+CREG: 2,1", false, -ENOENT, "", "" },                /* no location */
        { "+CEREG: 0,1", false, -ENOENT, "", "" },
        { "+CEREG: 2", true, -ENOENT, "", "" },
        { "+CREG: 2,1,\"1A2B\"", false, -EINVAL, "", "" },       /* no ci */
        { "+CREG: 2,1,\"1A2B\",", false, -EINVAL, "", "" },
        { "+CREG: 2,1,1A2B,01C2D3E4", false, -EINVAL, "", "" },   /* unquoted */
        { "+CREG: 2,1,\"\",\"01C2D3E4\"", false, -EINVAL, "", "" },
        { "+CREG: 2,1,\"1A2G\",\"01C2D3E4\"", false, -EINVAL, "", "" },
        { "+CREG: 2,1,\"1A2B\",\"101C2D3E4\"", false, -EINVAL, "", "" }, /* 9 digits */
        { "+CREG: 2,1,\"1A\\\"2B\",\"01C2D3E4\"", false, -EINVAL, "", "" },
        { "+CREG: 2,1,\"1A2B,\"01C2D3E4\"", false, -EINVAL, "", "" },
        { "+CREG: x,1,\"1A2B\",\"01C2D3E4\"", false, -EINVAL, "", "" },
        { "+CSQ: 2,1,\"1A2B\",\"01C2D3E4\"", false, -EINVAL, "", "" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct status_cell cell = { "", "" };
        char *line = strdup(cases[i].line);

        assert_non_null(line);
        if (status_parse_cell(line, cases[i].urc, &cell) != cases[i].ret ||
            strcmp(cell.lac, cases[i].lac) != 0 || strcmp(cell.ci, cases[i].ci) != 0)
            fail_msg("%s: expected %d %s/%s, got %s/%s", cases[i].line, cases[i].ret,
                     cases[i].lac, cases[i].ci, cell.lac, cell.ci);
        free(line);
    }
}

/* status_refresh (a new operator chosen): a round at once while ready,
 * nothing while not. */
static void test_refresh(void **state)
{
    struct status *st = start_ready();
    size_t n;

    (void)state;
    answer_round_cbc(1, "+COPS: 0,0,\"Sim Telecom\",7", CPMS(0, 30), "+CBC: 3.978V", AT_FINAL_OK);
    n = F.n_cmds;
    assert_int_equal(F.n_done, n);
    status_refresh(st);
    assert_true(F.n_cmds > n);
    assert_string_equal(F.cmds[n].cmd, "AT+CSQ");
    answer_round_cbc(1, "+COPS: 1,0,\"Vodafone.de\",7", CPMS(0, 30), "+CBC: 3.978V",
                     AT_FINAL_OK);
    assert_string_equal(last_published()->operator_name, "Vodafone.de");
    status_modem_ready(st, false);
    n = F.n_cmds;
    status_refresh(st);
    assert_int_equal(F.n_cmds, n);
    status_free(st);
}

/* The published cell is the one of the registration shown: CEREG's on LTE,
 * else CREG's; unknown when that answer names none. */
static void test_cell_rounds(void **state)
{
    static const struct {
        const char *creg, *cereg;
        int reg;
        const char *lac, *ci;
    } rounds[] = {
        { "+CREG: 2,0", "+CEREG: 2,1,\"1A2B\",\"01C2D3E4\",7", 1, "1A2B", "01C2D3E4" },
        { "+CREG: 2,5,\"00A1\",\"5E1F\"", "+CEREG: 2,2", 5, "00A1", "5E1F" },
        { "+CREG: 2,2", "+CEREG: 2,2", 2, "", "" },
        { "+CREG: 2,1,\"00A1\",\"5E1F\"", "+CEREG: 2,5,\"1A2B\",\"01C2D3E4\",7", 5, "1A2B",
          "01C2D3E4" },
        { "+CREG: 2,1", "+CEREG: 2,1", 1, "", "" },
        { "+CREG: 2,0", "+CEREG: 2,1,\"1A2B\",\"0x1C2D3E4\",7", 1, "", "" },
    };
    struct status *st = start_ready();

    (void)state;
    for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
        if (i > 0)
            urc("+CEREG: 1");
        answer_round_lines(rounds[i].creg, rounds[i].cereg, "+COPS: 0,0,\"Sim Telecom\",7",
                           CPMS(0, 30), "+CBC: 3.978V", AT_FINAL_OK, true);
        assert_int_equal(last_published()->reg_stat, rounds[i].reg);
        assert_string_equal(last_published()->cell.lac, rounds[i].lac);
        assert_string_equal(last_published()->cell.ci, rounds[i].ci);
    }
    status_free(st);
}

/* The voltage in the published status: read in every round; unknown
 * before the first, and after an answer that says nothing (ERROR: a
 * module without AT+CBC, a CME error, OK without the line, garbage). The
 * round goes on and publishes the rest. */
static void test_voltage_rounds(void **state)
{
    static const struct {
        const char *line;
        enum at_final final;
        int mv;
    } rounds[] = {
        { "+CBC: 3.978V", AT_FINAL_OK, 3978 },
        { NULL, AT_FINAL_ERROR, -1 },
        { "+CBC: 3.605V", AT_FINAL_OK, 3605 },
        { NULL, AT_FINAL_CME, -1 },
        { "+CBC: 0,88,4090", AT_FINAL_OK, 4090 },
        { NULL, AT_FINAL_OK, -1 },
        { "+CBC: 3.978V", AT_FINAL_OK, 3978 },
        { "+CBC: lots", AT_FINAL_OK, -1 },
    };
    struct status *st = start_ready();

    (void)state;
    assert_int_equal(status_get(st)->voltage_mv, -1);     /* until answered */
    for (size_t i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
        if (i > 0)
            urc("+CEREG: 1");
        answer_round_cbc(1, "+COPS: 0,0,\"Sim Telecom\",7", CPMS(0, 30), rounds[i].line,
                         rounds[i].final);
        assert_int_equal(F.n_published, i + 1);
        assert_int_equal(last_published()->voltage_mv, rounds[i].mv);
        assert_string_equal(last_published()->access, "LTE");
    }
    assert_int_equal(F.n_done, F.n_cmds);
    status_free(st);
}

/* The episode flag: reported when it starts, ended by a store with room. */
static void test_full_episode(void **state)
{
    static const struct {
        bool episode, full, starts, after;
    } cases[] = {
        { false, false, false, false },
        { false, true, true, true },      /* starts */
        { true, true, false, true },      /* the same episode */
        { true, false, false, false },     /* room again: over */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ep = cases[i].episode;

        assert_int_equal(status_full_episode(&ep, cases[i].full), cases[i].starts);
        assert_int_equal(ep, cases[i].after);
    }
}

static struct status *storage_start(void)
{
    const struct status_cbs cbs = { .changed = on_changed, .storage_full = on_storage_full };
    struct status *st;

    memset(&F, 0, sizeof(F));
    st = status_new(NULL, NULL, 60, &cbs, NULL);
    assert_non_null(st);
    return st;
}

/* The store in B/status, and storage_full once per episode: from the
 * counts (poll or a lone refresh), from SMS FULL, from +CMS ERROR: 322. */
static void test_storage_episodes(void **state)
{
    struct status *st = storage_start();

    (void)state;
    assert_int_equal(status_get(st)->storage_used, -1);       /* unknown until read */
    assert_int_equal(status_get(st)->storage_total, -1);
    status_modem_ready(st, true);
    answer_round_cpms(1, "+COPS: 0,0,\"Sim Telecom\",7", CPMS(29, 30));
    assert_int_equal(last_published()->storage_used, 29);
    assert_int_equal(last_published()->storage_total, 30);
    assert_int_equal(F.n_full, 0);

    /* A message stored: full. */
    status_storage_refresh(st);
    answer("AT+CPMS?", CPMS(30, 30));
    assert_int_equal(F.n_full, 1);
    assert_string_equal(F.full_why[0], "30 of 30 used");
    assert_int_equal(last_published()->storage_used, 30);
    /* The module says so too, and the poll: the same episode. */
    urc("SMS FULL");
    answer("AT+CPMS?", CPMS(30, 30));
    urc("+CEREG: 1");
    answer_round_cpms(1, "+COPS: 0,0,\"Sim Telecom\",7", CPMS(30, 30));
    assert_int_equal(F.n_full, 1);

    /* One deleted: over. The next full is a new episode, here SMS FULL
     * before any count. */
    status_storage_refresh(st);
    answer("AT+CPMS?", CPMS(29, 30));
    assert_int_equal(last_published()->storage_used, 29);
    urc("SMS FULL");
    assert_int_equal(F.n_full, 2);
    assert_string_equal(F.full_why[1], "the module reported SMS FULL");
    answer("AT+CPMS?", CPMS(30, 30));
    assert_int_equal(F.n_full, 2);

    status_storage_refresh(st);
    answer("AT+CPMS?", CPMS(0, 30));
    status_storage_full(st, "the module answered +CMS ERROR: 322");
    assert_int_equal(F.n_full, 3);
    assert_string_equal(F.full_why[2], "the module answered +CMS ERROR: 322");
    answer("AT+CPMS?", CPMS(0, 30));      /* a store this full is not: over */
    assert_int_equal(F.n_done, F.n_cmds);
    status_free(st);
}

/* One AT+CPMS? however many changes before it is written; a change after
 * it was written asks again. A lone answer during a poll round waits for
 * the round's end to be published (one snapshot per status). */
static void test_storage_refresh_coalesced(void **state)
{
    struct status *st = storage_start();
    size_t published, mark;

    (void)state;
    status_storage_refresh(st);
    assert_int_equal(F.n_cmds, 0);                 /* not ready: nothing */
    status_modem_ready(st, true);
    answer_round(1, "+COPS: 0,0,\"Sim Telecom\",7");
    mark = F.n_cmds;

    status_storage_refresh(st);                    /* three deletes together */
    status_storage_refresh(st);
    status_storage_refresh(st);
    assert_int_equal(F.n_cmds, mark + 1);
    write_next("AT+CPMS?");
    status_storage_refresh(st);                    /* after it was written */
    assert_int_equal(F.n_cmds, mark + 2);
    answer("AT+CPMS?", CPMS(2, 30));
    answer("AT+CPMS?", CPMS(2, 30));
    assert_int_equal(F.n_cmds, mark + 2);
    published = F.n_published;

    status_storage_refresh(st);
    urc("+CEREG: 1");                              /* a round behind the lone query */
    answer("AT+CPMS?", CPMS(3, 30));
    assert_int_equal(F.n_published, published);    /* the round publishes it */
    answer_round_cpms(1, "+COPS: 0,0,\"Sim Telecom\",7", CPMS(3, 30));
    assert_int_equal(F.n_published, published + 1);
    assert_int_equal(last_published()->storage_used, 3);
    assert_int_equal(F.n_done, F.n_cmds);
    status_free(st);
}

/* A module without SMS: no AT+CPMS? in the rounds, none on a refresh. */
static void test_storage_no_sms(void **state)
{
    struct status *st = storage_start();

    (void)state;
    F.no_sms = true;
    status_modem_ready(st, true);
    assert_int_equal(F.n_cmds, 6);
    answer_round_cpms(1, "+COPS: 0", NULL);
    status_storage_refresh(st);
    assert_int_equal(F.n_cmds, 6);
    assert_int_equal(last_published()->storage_total, -1);
    status_free(st);
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
        cmocka_unit_test(test_cpms),
        cmocka_unit_test(test_full_episode),
        cmocka_unit_test(test_storage_episodes),
        cmocka_unit_test(test_storage_refresh_coalesced),
        cmocka_unit_test(test_storage_no_sms),
        cmocka_unit_test(test_cbc),
        cmocka_unit_test(test_voltage_rounds),
        cmocka_unit_test(test_cell),
        cmocka_unit_test(test_cell_rounds),
        cmocka_unit_test(test_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
