/* devsrv: the --set values of modem2mqtt --device-server, checked before
 * anything reaches the device server's console, the meanings of its +ERR
 * codes, the options it does not combine with and its error for a port
 * that is not there. (The console itself runs against the simulated one
 * in tests/integration/test_devsrv.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
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

/* --health checks a running bridge, --device-server runs instead of one:
 * asking for both is a mistake, whichever comes first. */
static void test_refuses_health(void **state)
{
    static const char *const lines[][4] = {
        { "modem2mqtt", "--device-server", "/dev/ttyUSB0", "--health" },
        { "modem2mqtt", "--health", "--device-server", "/dev/ttyUSB0" },
    };
    struct config_cli cli;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        int rc = config_parse_cli(4, (char **)lines[i], &cli, err, sizeof err);

        assert_int_equal(rc, -EINVAL);
        assert_string_equal(err, "--device-server and --health: one at a time (--health "
                                 "checks a running bridge, --device-server runs instead "
                                 "of it)");
    }
}

/* A serial port that is not there: the device server's cable, not the
 * modem, and nothing run. */
static void test_missing_port(void **state)
{
    char *out_text = NULL, *err_text = NULL;
    size_t out_len = 0, err_len = 0;
    FILE *out = open_memstream(&out_text, &out_len), *err = open_memstream(&err_text, &err_len);

    (void)state;
    assert_non_null(out);
    assert_non_null(err);
    assert_int_equal(devsrv_run("/dev/m2m-no-such-port", 115200, NULL, 0, out, err), 1);
    fclose(out);
    fclose(err);
    assert_string_equal(out_text, "");
    assert_string_equal(err_text,
                        "modem2mqtt: cannot open /dev/m2m-no-such-port: No such file or "
                        "directory: is the device server's serial side (its USB-serial "
                        "adapter) plugged in? `modem2mqtt --list-ports` shows the serial "
                        "ports\n");
    free(out_text);
    free(err_text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_set),
        cmocka_unit_test(test_err_meanings),
        cmocka_unit_test(test_refuses_health),
        cmocka_unit_test(test_missing_port),
    };
    return cmocka_run_group_tests_name("unit_devsrv", tests, NULL, NULL);
}
