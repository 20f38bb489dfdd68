/* modem/network: the +COPS=? decoder (table-driven, from A7670, SIM7600
 * and SIM800 transcripts) and the two commands through link seams.
 *
 * This file defines what network.o calls on the modem, so the linker never
 * pulls modem.o or chat.o out of libm2m.a (see test_sms.c): modem_send,
 * modem_state, modem_state_name, modem_charset_ucs2. The fake modem
 * records the commands; the tests answer them by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "at/chat.h"
#include "modem/modem.h"
#include "modem/network.h"

/* --- fakes -------------------------------------------------------------------- */

static char fake_modem_obj;
#define FAKE_MODEM ((struct modem *)(void *)&fake_modem_obj)

static struct {
    enum modem_state state;
    bool ucs2;
    int n_cmds;
    char cmd[64];
    struct at_cmd_opts opts;
    at_done_cb cb;
    void *ctx;
    /* what the service answered */
    int n_answers;
    struct network_scan scan;
    struct m2m_error err;
    bool failed;
} f;

enum modem_state modem_state(const struct modem *m)
{
    (void)m;
    return f.state;
}

const char *modem_state_name(enum modem_state st)
{
    return st == MODEM_READY ? "ready" : "probing";
}

bool modem_charset_ucs2(const struct modem *m)
{
    assert_ptr_equal(m, FAKE_MODEM);
    return f.ucs2;
}

int modem_send(struct modem *m, const char *cmd, const struct at_cmd_opts *opts, at_done_cb cb,
               void *ctx)
{
    assert_ptr_equal(m, FAKE_MODEM);
    if (f.state != MODEM_READY)
        return -EAGAIN;
    f.n_cmds++;
    snprintf(f.cmd, sizeof(f.cmd), "%s", cmd);
    f.opts = *opts;
    f.cb = cb;
    f.ctx = ctx;
    return 0;
}

static void on_select(void *ctx, const struct m2m_error *err)
{
    (void)ctx;
    f.n_answers++;
    f.failed = err != NULL;
    if (err)
        f.err = *err;
}

static void on_scan(void *ctx, const struct network_scan *scan, const struct m2m_error *err)
{
    on_select(ctx, err);
    if (!err)
        f.scan = *scan;
}

static void reset(void)
{
    memset(&f, 0, sizeof(f));
    f.state = MODEM_READY;
}

/* The module's answer to the recorded command. */
static void answer(enum at_final final, int code, const char *line)
{
    const char *lines[] = { line, NULL };
    struct at_response rsp = { .final = final, .code = code, .lines = lines,
                               .n_lines = line ? 1 : 0 };

    assert_non_null(f.cb);
    f.cb(f.ctx, &rsp);
}

/* --- the decoder -------------------------------------------------------------------- */

struct op {
    int stat;
    const char *name, *short_name, *mccmnc;
    int act;
};

static const struct {
    const char *line;
    bool ucs2;
    int ret;
    size_t n;
    struct op ops[4];
} scans[] = {
    /* SIM7600E in Germany, the A76xx manual's list of modes and formats */
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7),(1,\"Vodafone.de\",\"Vodafone\",\"26202\",7),"
      "(3,\"o2 - de\",\"o2 - de\",\"26203\",7),,(0-4),(0-2)",
      false, 0, 3,
      { { 2, "Telekom.de", "TDG", "26201", 7 }, { 1, "Vodafone.de", "Vodafone", "26202", 7 },
        { 3, "o2 - de", "o2 - de", "26203", 7 } } },
    /* A7670C: the lists of modes and formats spelt out */
    { "+COPS: (2,\"CHINA MOBILE\",\"CMCC\",\"46000\",7),(1,\"CHN-UNICOM\",\"UNICOM\",\"46001\",7),"
      "(3,\"CHN-CT\",\"CT\",\"46011\",7),,(0,1,2,3,4),(0,1,2)",
      false, 0, 3,
      { { 2, "CHINA MOBILE", "CMCC", "46000", 7 }, { 1, "CHN-UNICOM", "UNICOM", "46001", 7 },
        { 3, "CHN-CT", "CT", "46011", 7 } } },
    /* one network on two technologies; a 3-digit MNC */
    { "+COPS: (2,\"T-Mobile\",\"T-Mobile\",\"310260\",7),(1,\"T-Mobile\",\"T-Mobile\",\"310260\","
      "2),(0,\"\",\"\",\"310410\",0),,(0-4),(0-2)",
      false, 0, 3,
      { { 2, "T-Mobile", "T-Mobile", "310260", 7 }, { 1, "T-Mobile", "T-Mobile", "310260", 2 },
        { 0, "", "", "310410", 0 } } },
    /* commas and parentheses inside the names are the names' */
    { "+COPS: (1,\"Orange F, (test)\",\"OF),(\",\"20801\",7),,(0-4),(0-2)", false, 0, 1,
      { { 1, "Orange F, (test)", "OF),(", "20801", 7 } } },
    /* SIM800 (GSM only): no <AcT>; the manual's spaces */
    { "+COPS: (2,\"T-Mobile D\",\"TMO D\",\"26201\"),(3, \"E-Plus\", \"E-Plus\", \"26203\"),,"
      "(0-4),(0-2)",
      false, 0, 2,
      { { 2, "T-Mobile D", "TMO D", "26201", -1 }, { 3, "E-Plus", "E-Plus", "26203", -1 } } },
    /* names the module does not know: empty fields */
    { "+COPS: (1,,,\"90128\",7),,(0-4),(0-2)", false, 0, 1, { { 1, "", "", "90128", 7 } } },
    /* nothing in reach; and a module that leaves out the trailing lists */
    { "+COPS: ,,(0-4),(0-2)", false, 0, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7)", false, 0, 1,
      { { 2, "Telekom.de", "TDG", "26201", 7 } } },
    /* AT+CSCS="UCS2" (a USSD request runs): names in hex */
    { "+COPS: (2,\"00540065006C0065006B006F006D002E00640065\",\"005400440047\",\"26201\",7),,"
      "(0-4),(0-2)",
      true, 0, 1, { { 2, "Telekom.de", "TDG", "26201", 7 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7),,(0-4),(0-2)", true, 0, 1,
      { { 2, "Telekom.de", "TDG", "26201", 7 } } },   /* the flag ran ahead of the module */
    /* what is no answer to AT+COPS=? */
    { "+COPS: 0,0,\"Telekom.de\",7", false, -EINVAL, 0, { { 0 } } },   /* AT+COPS? */
    { "+COPS: 0", false, -EINVAL, 0, { { 0 } } },
    { "+CREG: (2,\"Telekom.de\",\"TDG\",\"26201\",7)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (4,\"Telekom.de\",\"TDG\",\"26201\",7),,(0-4),(0-2)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"2620\",7),,(0-4),(0-2)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"2620111\",7)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"2620A\",7)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",26201,7)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7,1)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de,\"TDG\",\"26201\",7)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7)x", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",256)", false, -EINVAL, 0, { { 0 } } },
    { "+COPS: (0-4),(0-2)", false, -EINVAL, 0, { { 0 } } },  /* no ",," before the modes */
    { "+COPS: (2,\"A name longer than any network gives it, and then some more of it.\",\"A\","
      "\"26201\",7)",
      false, -EINVAL, 0, { { 0 } } },
};

static void test_parse_scan(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(scans) / sizeof(scans[0]); i++) {
        struct network_operator ops[4];
        size_t n = 99;
        int r = network_parse_scan(scans[i].line, scans[i].ucs2, ops, 4, &n);

        if (r != scans[i].ret || n != scans[i].n)
            fail_msg("%s: expected %d with %zu, got %d with %zu", scans[i].line, scans[i].ret,
                     scans[i].n, r, n);
        for (size_t k = 0; k < n; k++) {
            const struct op *want = &scans[i].ops[k];
            if ((int)ops[k].stat != want->stat || strcmp(ops[k].name, want->name) != 0 ||
                strcmp(ops[k].short_name, want->short_name) != 0 ||
                strcmp(ops[k].mccmnc, want->mccmnc) != 0 || ops[k].act != want->act)
                fail_msg("%s: operator %zu is %d %s/%s %s %d", scans[i].line, k,
                         (int)ops[k].stat, ops[k].name, ops[k].short_name, ops[k].mccmnc,
                         ops[k].act);
        }
    }
}

/* More operators than kept: the first ones, and no overflow. */
static void test_parse_scan_max(void **state)
{
    struct network_operator ops[2];
    size_t n;

    (void)state;
    assert_int_equal(network_parse_scan(scans[0].line, false, ops, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ops[1].mccmnc, "26202");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(network_stat_name(NETWORK_UNKNOWN), "unknown");
    assert_string_equal(network_stat_name(NETWORK_AVAILABLE), "available");
    assert_string_equal(network_stat_name(NETWORK_CURRENT), "current");
    assert_string_equal(network_stat_name(NETWORK_FORBIDDEN), "forbidden");
    assert_string_equal(network_act_name(0), "GSM");
    assert_string_equal(network_act_name(2), "WCDMA");
    assert_string_equal(network_act_name(7), "LTE");
    assert_string_equal(network_act_name(9), "NB-IoT");
    assert_string_equal(network_act_name(13), "NR");
    assert_null(network_act_name(14));
    assert_null(network_act_name(-1));
    assert_true(network_mccmnc_valid("26201"));
    assert_true(network_mccmnc_valid("310260"));
    assert_false(network_mccmnc_valid("2620"));
    assert_false(network_mccmnc_valid("2620111"));
    assert_false(network_mccmnc_valid("2620\""));
    assert_false(network_mccmnc_valid(""));
    assert_false(network_mccmnc_valid(NULL));
}

/* --- the commands ------------------------------------------------------------------- */

/* AT+COPS=? waits up to 180 s for its +COPS: line, and the list comes back
 * decoded. */
static void test_scan(void **state)
{
    (void)state;
    reset();
    network_scan(FAKE_MODEM, on_scan, NULL);
    assert_int_equal(f.n_cmds, 1);
    assert_string_equal(f.cmd, "AT+COPS=?");
    assert_int_equal(f.opts.timeout_ms, 180000);
    assert_string_equal(f.opts.info_prefix, "+COPS:");
    assert_true(f.opts.expect_info);
    assert_int_equal(f.n_answers, 0);
    answer(AT_FINAL_OK, -1, scans[0].line);
    assert_int_equal(f.n_answers, 1);
    assert_false(f.failed);
    assert_int_equal(f.scan.n, 3);
    assert_int_equal(f.scan.ops[0].stat, NETWORK_CURRENT);
    assert_string_equal(f.scan.ops[2].name, "o2 - de");
}

/* The module's refusals, an answer that cannot be read, a timeout, and a
 * modem that is not there. */
static void test_scan_errors(void **state)
{
    (void)state;
    reset();
    network_scan(FAKE_MODEM, on_scan, NULL);
    answer(AT_FINAL_CME, 30, NULL);
    assert_true(f.failed);
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.err.cme, 30);

    reset();
    network_scan(FAKE_MODEM, on_scan, NULL);
    answer(AT_FINAL_OK, -1, "+COPS: 0,0,\"Telekom.de\",7");
    assert_true(f.failed);
    assert_string_equal(f.err.code, "modem_error");

    reset();
    network_scan(FAKE_MODEM, on_scan, NULL);
    answer(AT_FINAL_TIMEOUT, -1, NULL);
    assert_string_equal(f.err.code, "timeout");

    reset();
    f.state = MODEM_PROBING;
    network_scan(FAKE_MODEM, on_scan, NULL);
    assert_int_equal(f.n_cmds, 0);
    assert_int_equal(f.n_answers, 1);
    assert_string_equal(f.err.code, "unavailable");
}

static void test_select(void **state)
{
    (void)state;
    reset();
    network_select(FAKE_MODEM, NULL, on_select, NULL);
    assert_string_equal(f.cmd, "AT+COPS=0");
    assert_int_equal(f.opts.timeout_ms, 180000);
    answer(AT_FINAL_OK, -1, NULL);
    assert_int_equal(f.n_answers, 1);
    assert_false(f.failed);

    reset();
    network_select(FAKE_MODEM, "26202", on_select, NULL);
    assert_string_equal(f.cmd, "AT+COPS=1,2,\"26202\"");
    assert_int_equal(f.opts.timeout_ms, 180000);
    answer(AT_FINAL_CME, 32, NULL);       /* network not allowed: emergency calls only */
    assert_true(f.failed);
    assert_string_equal(f.err.code, "modem_error");
    assert_int_equal(f.err.cme, 32);
}

/* The last stop before the line: nothing written for a bad mccmnc. */
static void test_select_invalid(void **state)
{
    static const char *const bad[] = { "2620", "2620111", "26201\"", "262\r1", "", "2620x" };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reset();
        network_select(FAKE_MODEM, bad[i], on_select, NULL);
        assert_int_equal(f.n_cmds, 0);
        assert_int_equal(f.n_answers, 1);
        assert_string_equal(f.err.code, "invalid_request");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_scan),
        cmocka_unit_test(test_parse_scan_max),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_scan_errors),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_select_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
