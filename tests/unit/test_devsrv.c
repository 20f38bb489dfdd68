/* devsrv: the --set values of modem2mqtt --device-server, checked before
 * anything reaches the device server's console, and the meanings of its
 * +ERR codes. (The console itself runs against the simulated one in
 * tests/integration/test_devsrv.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "devsrv.h"

static const struct {
    const char *arg;
    const char *cmd;        /* NULL: refused */
    const char *value;      /* accepted: the value sent; refused: the reason */
} cases[] = {
    { "uart=115200,8,1,NONE,NFC", "UART", "115200,8,1,NONE,NFC" },
    { "UART=9600,7,2,even,fc", "UART", "9600,7,2,EVEN,FC" },
    { "uart=921600,8,1,none,nfc", "UART", "921600,8,1,NONE,NFC" },
    { "sock=tcps,0.0.0.0,8899", "SOCK", "TCPS,0.0.0.0,8899" },
    { "sock=TCPC,ds.example.net,4001", "SOCK", "TCPC,DS.EXAMPLE.NET,4001" },
    { "Sock=UDPS,192.168.0.7,65535", "SOCK", "UDPS,192.168.0.7,65535" },
    { "regen=off", "REGEN", "OFF" },
    { "regen=MAC", "REGEN", "MAC" },
    /* what could end the command or add one never passes */
    { "uart=115200,8,1,NONE,NFC\r", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=115200,8,1,NONE,NFC\rAT+Z", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "sock=TCPS,\"x\",8899", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "sock=TCPS,a b,8899", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "regen=off\n", NULL, "regen: expected off, mac or user" },
    { "regen=off;AT+Z", NULL, "regen: expected off, mac or user" },
    /* malformed */
    { "uart=115201,8,1,NONE,NFC", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=115200,9,1,NONE,NFC", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=115200,8,3,NONE,NFC", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=115200,8,1,NONE", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=115200,8,1,NONE,NFC,X", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=+115200,8,1,NONE,NFC", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart=", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "uart", NULL, "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "sock=TCPS,0.0.0.0,0", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "sock=TCPS,0.0.0.0,65536", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "sock=TCPS,,8899", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "sock=HTTP,0.0.0.0,8899", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "sock=TCPS,0.0.0.0,88999999999", NULL, "sock: expected PROTOCOL,ADDRESS,PORT (TCPS,0.0.0.0,8899)" },
    { "regen=on", NULL, "regen: expected off, mac or user" },
    { "uart=115200,8,1,NONE,NFC,000000000000000000000000000000000000000000000000000000", NULL,
      "uart: expected BAUD,DATA,STOP,PARITY,FLOW (115200,8,1,NONE,NFC)" },
    { "mac=D8B04CFC0002", NULL, "unknown key (uart, sock or regen)" },
    { "=off", NULL, "unknown key (uart, sock or regen)" },
    { "", NULL, "unknown key (uart, sock or regen)" },
};

static void test_parse_set(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct devsrv_set s = { 0 };
        char why[160] = "";
        int rc = devsrv_parse_set(cases[i].arg, &s, why, sizeof(why));

        if (cases[i].cmd) {
            if (rc != 0 || strcmp(s.cmd, cases[i].cmd) != 0 || strcmp(s.value, cases[i].value) != 0)
                fail_msg("'%s': rc %d, %s=%s (%s)", cases[i].arg, rc, s.cmd ? s.cmd : "-",
                         s.value, why);
            assert_int_equal(strspn(s.value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,-"),
                             strlen(s.value));
        } else if (rc != -1 || strcmp(why, cases[i].value) != 0) {
            fail_msg("'%s': rc %d, why '%s'", cases[i].arg, rc, why);
        }
    }
}

static void test_err_meanings(void **state)
{
    (void)state;
    assert_string_equal(devsrv_err_meaning(1), "invalid format");
    assert_string_equal(devsrv_err_meaning(2), "invalid command");
    assert_string_equal(devsrv_err_meaning(3), "invalid operator");
    assert_string_equal(devsrv_err_meaning(4), "invalid parameter");
    assert_string_equal(devsrv_err_meaning(5), "invalid operation");
    assert_string_equal(devsrv_err_meaning(0), "unknown error");
    assert_string_equal(devsrv_err_meaning(6), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_set),
        cmocka_unit_test(test_err_meanings),
    };
    return cmocka_run_group_tests_name("unit_devsrv", tests, NULL, NULL);
}
