/* Status parsers, fed with lines as A7670/SIM7600 modules print them. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "modem/status.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
