/* modem/error: the one mapping from an AT answer to a command's error, and
 * the setter every service and parser uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "at/chat.h"
#include "modem/error.h"

/* Every final result, with and without a command named, and the +CME/+CMS
 * forms the A7670 gives: a number (+CMS always; +CME under AT+CMEE=1) or
 * text (+CME under AT+CMEE=2). */
static void test_from_at(void **state)
{
    static const struct {
        enum at_final final;
        int code;                /* rsp.code */
        const char *text;        /* rsp.text */
        const char *what;
        const char *want_code, *want_message;
        int cme, cms;
    } rows[] = {
        { AT_FINAL_TIMEOUT, -1, NULL, "AT+CUSD", "timeout", "the modem did not answer AT+CUSD",
          -1, -1 },
        { AT_FINAL_TIMEOUT, -1, NULL, NULL, "timeout", "the modem did not answer", -1, -1 },
        { AT_FINAL_CANCELLED, -1, NULL, "AT+CMGS", "unavailable",
          "the modem went away before answering AT+CMGS", -1, -1 },
        { AT_FINAL_CANCELLED, -1, NULL, NULL, "unavailable",
          "the modem went away before answering", -1, -1 },
        { AT_FINAL_ERROR, -1, NULL, "AT+CFUN=0", "modem_error",
          "the modem answered ERROR to AT+CFUN=0", -1, -1 },
        { AT_FINAL_ERROR, -1, NULL, NULL, "modem_error", "the modem answered ERROR", -1, -1 },
        { AT_FINAL_NO_CARRIER, -1, NULL, "ATA", "modem_error",
          "the modem answered NO CARRIER to ATA", -1, -1 },
        { AT_FINAL_BUSY, -1, NULL, NULL, "modem_error", "the modem answered BUSY", -1, -1 },
        { AT_FINAL_NO_ANSWER, -1, NULL, NULL, "modem_error", "the modem answered NO ANSWER", -1,
          -1 },
        { AT_FINAL_NO_DIALTONE, -1, NULL, NULL, "modem_error",
          "the modem answered NO DIALTONE", -1, -1 },
        { AT_FINAL_OUT_OF_STEP, -1, NULL, "AT+CSQ", "modem_error",
          "the modem answered OUT OF STEP to AT+CSQ", -1, -1 },
        /* The module's text is the message, and gives the number when
         * it is one of 27.007's (AT+CMEE=2, which the bridge sets). */
        { AT_FINAL_CME, -1, "operation not allowed", "AT+CUSD", "modem_error",
          "operation not allowed", 3, -1 },
        { AT_FINAL_CME, -1, "Sim Busy", NULL, "modem_error", "Sim Busy", 14, -1 },
        { AT_FINAL_CME, -1, "network not allowed - emergency calls only", "AT+COPS=1,2,\"26203\"",
          "modem_error", "network not allowed - emergency calls only", 32, -1 },
        { AT_FINAL_CME, -1, "incorrect parameters", NULL, "modem_error", "incorrect parameters",
          50, -1 },
        /* A text of the module's own: only the message. */
        { AT_FINAL_CME, -1, "no such file", NULL, "modem_error", "no such file", -1, -1 },
        { AT_FINAL_CME, -1, "SIM busy now", NULL, "modem_error", "SIM busy now", -1, -1 },
        /* A number (AT+CMEE=1) gives its text. */
        { AT_FINAL_CME, 30, NULL, NULL, "modem_error", "no network service", 30, -1 },
        { AT_FINAL_CME, 999, NULL, NULL, "modem_error", "modem error", 999, -1 },
        { AT_FINAL_CME, 10, "SIM not inserted", NULL, "modem_error", "SIM not inserted", 10, -1 },
        { AT_FINAL_CMS, 331, NULL, "AT+CMGS", "modem_error", "no network service", -1, 331 },
        { AT_FINAL_CMS, 500, NULL, NULL, "modem_error", "unknown error", -1, 500 },
        { AT_FINAL_CMS, 322, NULL, NULL, "modem_error", "memory full", -1, 322 },
        { AT_FINAL_CMS, 999, NULL, NULL, "modem_error", "SMS error", -1, 999 },
        { AT_FINAL_CMS, -1, "SMSC address unknown", NULL, "modem_error", "SMSC address unknown",
          -1, 330 },
        { AT_FINAL_CMS, -1, "an SMS error of its own", NULL, "modem_error",
          "an SMS error of its own", -1, -1 },
        /* A value beyond the enum (a newer chat): still an error. */
        { (enum at_final)99, -1, NULL, NULL, "modem_error", "the modem answered ?", -1, -1 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct at_response rsp = { .final = rows[i].final, .code = rows[i].code,
                                         .text = rows[i].text };
        struct m2m_error err;

        memset(&err, 0x55, sizeof(err));
        if (!m2m_error_from_at(&err, &rsp, rows[i].what))
            fail_msg("row %zu: no error", i);
        if (strcmp(m2m_error_code_from_at(&rsp), rows[i].want_code) != 0)
            fail_msg("row %zu: code_from_at %s", i, m2m_error_code_from_at(&rsp));
        if (strcmp(err.code, rows[i].want_code) != 0 ||
            strcmp(err.message, rows[i].want_message) != 0 || err.cme != rows[i].cme ||
            err.cms != rows[i].cms)
            fail_msg("row %zu: %s \"%s\" cme %d cms %d", i, err.code, err.message, err.cme,
                     err.cms);
    }
}

/* OK is no error: false, and err is left as it was. */
static void test_from_at_ok(void **state)
{
    const struct at_response rsp = { .final = AT_FINAL_OK, .code = -1 };
    struct m2m_error err;

    (void)state;
    m2m_error_set(&err, "busy", "before");
    assert_false(m2m_error_from_at(&err, &rsp, "AT"));
    assert_null(m2m_error_code_from_at(&rsp));
    assert_string_equal(err.code, "busy");
    assert_string_equal(err.message, "before");
}

/* The module's text may be anything: the message stays valid UTF-8, also
 * when the buffer cuts a character. */
static void test_set_repairs(void **state)
{
    static const struct {
        const char *text;
        const char *want;
    } rows[] = {
        { "caf\xc3\xa9", "caf\xc3\xa9" },
        { "bad \xff byte", "bad ? byte" },
        { "half \xe2\x82", "half ??" },
    };
    struct m2m_error err;
    char longer[300];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct at_response rsp = { .final = AT_FINAL_CME, .code = -1,
                                         .text = rows[i].text };
        m2m_error_from_at(&err, &rsp, NULL);
        assert_string_equal(err.message, rows[i].want);
    }
    /* 198 bytes, then a euro sign the buffer cuts after its first byte. */
    memset(longer, 'a', 198);
    snprintf(longer + 198, sizeof(longer) - 198, "\xe2\x82\xac tail");
    m2m_error_set(&err, "modem_error", "%s", longer);
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
    assert_int_equal(err.message[198], '?');
    assert_int_equal(err.cme, -1);
    assert_int_equal(err.cms, -1);
}

/* The SMS service adds the part that failed; a full buffer stays full and
 * valid. */
static void test_append(void **state)
{
    const struct at_response rsp = { .final = AT_FINAL_CMS, .code = 331 };
    struct m2m_error err;

    (void)state;
    m2m_error_from_at(&err, &rsp, "AT+CMGS");
    m2m_error_append(&err, " (part %d of %d)", 2, 3);
    assert_string_equal(err.message, "no network service (part 2 of 3)");
    assert_int_equal(err.cms, 331);
    m2m_error_set(&err, "modem_error", "%198s", "x");
    m2m_error_append(&err, "\xc3\xa9\xc3\xa9");
    assert_int_equal(strlen(err.message), 199);
    assert_int_equal(err.message[198], '?');
}

/* modem_send's refusals: nothing was written, and the code says why. */
static void test_from_send(void **state)
{
    static const struct {
        int rc;
        const char *code, *message;
    } cases[] = {
        { -EAGAIN, "unavailable", "the modem is not ready" },
        { -EINVAL, "invalid_request", "not a valid command" },
        { -ENOBUFS, "busy", "the modem's command queue is full" },
        { -EMSGSIZE, "invalid_request", "the command is too long for the modem" },
        { -ENOMEM, "unavailable", "out of memory" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct m2m_error err = { .cme = 5, .cms = 5 };
        m2m_error_from_send(&err, cases[i].rc);
        assert_string_equal(err.code, cases[i].code);
        assert_string_equal(err.message, cases[i].message);
        assert_int_equal(err.cme, -1);
        assert_int_equal(err.cms, -1);
    }
}

/* With the modem's state: a "not ready" says which state it is in; the
 * other refusals do not depend on it. */
static void test_from_send_state(void **state)
{
    struct m2m_error err;

    (void)state;
    m2m_error_from_send_state(&err, -EAGAIN, "low_power");
    assert_string_equal(err.code, "unavailable");
    assert_string_equal(err.message, "the modem is not ready (low_power)");
    m2m_error_from_send_state(&err, -ENOBUFS, "ready");
    assert_string_equal(err.code, "busy");
    assert_string_equal(err.message, "the modem's command queue is full");
    m2m_error_from_send_state(&err, -EAGAIN, NULL);
    assert_string_equal(err.message, "the modem is not ready");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_at),
        cmocka_unit_test(test_from_at_ok),
        cmocka_unit_test(test_set_repairs),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_from_send),
        cmocka_unit_test(test_from_send_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
