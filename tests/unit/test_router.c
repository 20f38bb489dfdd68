/* The router's table: which topics are commands (the base topic, the
 * pool's shared topic), the flags of each row, and that each row's parser
 * is the strict one of mqtt/json. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "router.h"

static struct config cfg_with(bool pool)
{
    struct config cfg = { 0 };

    cfg.mqtt.base_topic = "m2m";
    cfg.mqtt.pool.enabled = pool;
    cfg.mqtt.pool.topic = "fleet";
    cfg.mqtt.pool.group = "g";
    return cfg;
}

static void test_find(void **state)
{
    static const struct {
        const char *topic;
        const char *suffix;       /* NULL: not a command topic */
    } cases[] = {
        { "m2m/sms/send", "sms/send" },
        { "m2m/call/dial", "call/dial" },
        { "m2m/stats/get", "stats/get" },
        { "m2m/sms/send/result", NULL },
        { "m2m/sms", NULL },
        { "m2m2/sms/send", NULL },
        { "m2msms/send", NULL },
        { "m2m/", NULL },
        { "sms/send", NULL },
        { "fleet/sms/send", "sms/send" },
        { "fleet/call/dial", NULL },
        { "fleetx/sms/send", NULL },
    };
    struct config cfg = cfg_with(true);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct route *r = router_find(&cfg, cases[i].topic);

        if (!cases[i].suffix) {
            assert_null(r);
            continue;
        }
        assert_non_null(r);
        assert_string_equal(r->suffix, cases[i].suffix);
    }
    assert_true(router_is_pool_topic(&cfg, "fleet/sms/send"));
    assert_false(router_is_pool_topic(&cfg, "m2m/sms/send"));
}

static void test_pool_off(void **state)
{
    struct config cfg = cfg_with(false);

    (void)state;
    assert_null(router_find(&cfg, "fleet/sms/send"));
    assert_false(router_is_pool_topic(&cfg, "fleet/sms/send"));
    assert_non_null(router_find(&cfg, "m2m/sms/send"));
}

static void test_flags(void **state)
{
    struct config cfg = cfg_with(false);
    size_t n = 0;

    (void)state;
    assert_int_equal(router_find(&cfg, "m2m/stats/get")->flags, ROUTE_ANY_STATE | ROUTE_NO_MODEM);
    assert_int_equal(router_find(&cfg, "m2m/modem/power")->flags, ROUTE_ANY_STATE);
    assert_int_equal(router_find(&cfg, "m2m/at/send")->flags, ROUTE_RAW_AT);
    /* What costs money abroad is refused while roaming (modem.roaming). */
    assert_int_equal(router_find(&cfg, "m2m/sms/send")->flags, ROUTE_HOME_ONLY);
    assert_int_equal(router_find(&cfg, "m2m/call/dial")->flags, ROUTE_HOME_ONLY);
    assert_int_equal(router_find(&cfg, "m2m/ussd/send")->flags, ROUTE_HOME_ONLY);
    assert_int_equal(router_find(&cfg, "m2m/call/answer")->flags, 0);
    assert_int_equal(router_find(&cfg, "m2m/network/scan")->flags, 0);
    assert_int_equal(router_find(&cfg, "m2m/network/select")->flags, 0);
    /* Only an upload may be larger than 64 KiB. */
    assert_int_equal(router_find(&cfg, "m2m/audio/upload")->flags, ROUTE_LARGE);
    assert_int_equal(router_find(&cfg, "m2m/audio/play")->flags, 0);
    /* Home Assistant's buttons need the modem, like what they stand for. */
    assert_int_equal(router_find(&cfg, "m2m/ha/sms/send")->flags, ROUTE_HOME_ONLY);
    assert_int_equal(router_find(&cfg, "m2m/ha/call/dial")->flags, ROUTE_HOME_ONLY);
    /* Their text fields are data, not commands. */
    assert_null(router_find(&cfg, "m2m/ha/sms/to"));
    assert_null(router_route("ha/sms/to"));
    /* The row a press runs through is the command's own. */
    assert_ptr_equal(router_route("sms/send"), router_find(&cfg, "m2m/sms/send"));
    assert_ptr_equal(router_route("call/dial"), router_find(&cfg, "m2m/call/dial"));
    /* Only sms/send resumes after a restart; every row has a parser. */
    while (router_suffix(n)) {
        char t[64];
        const struct route *r;

        snprintf(t, sizeof(t), "m2m/%s", router_suffix(n++));
        r = router_find(&cfg, t);
        assert_non_null(r);
        assert_non_null(r->parse);
        assert_non_null(r->handle);
        assert_int_equal(r->resume != NULL, strcmp(r->suffix, "sms/send") == 0);
    }
    assert_int_equal(n, 21);
}

/* Each row parses with its json_parse_* function: the error codes are the
 * strict parser's, and nothing of a rejected request is kept. */
static void test_parse(void **state)
{
    static const struct {
        const char *topic;
        const char *payload;
        const char *code;         /* NULL: accepted */
    } cases[] = {
        { "m2m/call/dial", "{\"to\":\"+4917012345678\"}", NULL },
        { "m2m/call/dial", "{\"to\":\"123;ATH\"}", "invalid_number" },
        { "m2m/call/dial", "{\"to\":\"+49\",\"x\":1}", "invalid_request" },
        { "m2m/call/answer", "{}", NULL },
        { "m2m/ha/sms/send", "{}", NULL },
        { "m2m/ha/sms/send", "{\"to\":\"+4917012345678\"}", "invalid_request" },
        { "m2m/ha/call/dial", "{\"to\":\"+4917012345678\"}", "invalid_request" },
        { "m2m/call/answer", "{\"to\":\"1\"}", "invalid_request" },
        { "m2m/call/hangup", "{\"now\":true}", "invalid_request" },
        { "m2m/call/dtmf", "{\"digits\":\"12#\"}", NULL },
        { "m2m/call/dtmf", "{\"digits\":\"1\\\"\"}", "invalid_request" },
        { "m2m/at/send", "{\"command\":\"AT+CSQ\"}", NULL },
        { "m2m/at/send", "{\"command\":\"AT+CSQ;+CMGS=1\"}", "invalid_request" },
        { "m2m/at/send", "{\"command\":\"AT\\r\\nATD1;\"}", "invalid_request" },
        { "m2m/ussd/send", "{\"code\":\"*100#\"}", NULL },
        { "m2m/ussd/send", "{\"code\":\"*100#\\u001a\"}", "invalid_request" },
        { "m2m/modem/power", "{\"mode\":\"min\"}", NULL },
        { "m2m/modem/power", "{\"mode\":\"off\"}", "invalid_request" },
        { "m2m/remote/subscribe", "{\"topic\":\"a/#\",\"qos\":1}", NULL },
        { "m2m/remote/subscribe", "{\"topic\":\"a/#\",\"qos\":3}", "invalid_request" },
        { "m2m/remote/unsubscribe", "{\"topic\":\"a/+\"}", NULL },
        { "m2m/sms/send", "{\"to\":\"+4917012345678\",\"text\":\"hi\"}", NULL },
        { "m2m/sms/send", "{\"to\":\"+49abc\",\"text\":\"hi\"}", "invalid_number" },
        { "m2m/stats/get", "{\"id\":1}", NULL },
        { "m2m/network/scan", "{}", NULL },
        { "m2m/network/scan", "{\"mode\":\"auto\"}", "invalid_request" },
        { "m2m/network/select", "{\"mode\":\"auto\"}", NULL },
        { "m2m/network/select", "{\"mccmnc\":\"26201\"}", NULL },
        { "m2m/network/select", "{\"mccmnc\":\"26201\\\",0\"}", "invalid_request" },
        { "m2m/stats/get", "{\"all\":true}", "invalid_request" },
        { "m2m/call/dial", "{\"to\":\"+49\",\"play\":\"c:/a.amr\",\"repeat\":2}", NULL },
        { "m2m/call/dial", "{\"to\":\"+49\",\"play\":\"c:/a\\\";b\"}", "invalid_request" },
        { "m2m/call/dial", "{\"to\":\"+49;\",\"play\":\"c:/a.amr\"}", "invalid_number" },
        { "m2m/audio/play", "{\"file\":\"c:/a.amr\",\"to_call\":true}", NULL },
        { "m2m/audio/play", "{\"file\":\"c:/a.amr\",\"repeat\":0}", "invalid_request" },
        { "m2m/audio/stop", "{}", NULL },
        { "m2m/audio/stop", "{\"file\":\"c:/a.amr\"}", "invalid_request" },
        { "m2m/audio/record", "{\"file\":\"c:/r.wav\",\"seconds\":3}", NULL },
        { "m2m/audio/record", "{\"file\":\"c:/r.wav\"}", "invalid_request" },
        { "m2m/audio/upload", "{\"file\":\"c:/a.amr\",\"data\":\"AAEC\"}", NULL },
        { "m2m/audio/upload", "{\"file\":\"c:/a.amr\",\"data\":\"AAE\"}", "invalid_request" },
        { "m2m/audio/list", "{}", NULL },
    };
    struct config cfg = cfg_with(false);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct route *r = router_find(&cfg, cases[i].topic);
        struct m2m_error err = { .cme = -1, .cms = -1 };
        struct route_req req = { 0 };
        const cJSON *id;
        int ret;

        assert_non_null(r);
        req.root = json_parse_command((const uint8_t *)cases[i].payload,
                                      strlen(cases[i].payload), &id, &err);
        assert_non_null(req.root);
        ret = r->parse(req.root, &req, &err);
        if (cases[i].code) {
            assert_int_equal(ret, -EINVAL);
            assert_string_equal(err.code, cases[i].code);
        } else {
            assert_int_equal(ret, 0);
        }
        if (ret == 0 && strcmp(r->suffix, "audio/upload") == 0)
            free(req.upload.data);   /* what the handler would take */
        cJSON_Delete(req.root);
    }
}

/* A replayed sms/send: only a list with recipients not yet begun has work
 * left (the journal's mark: recipient * 256 + part). */
static void test_sms_resume(void **state)
{
    static const struct {
        const char *payload;
        unsigned started;
        bool left;
    } cases[] = {
        { "{\"to\":\"+4917012345678\",\"text\":\"hi\"}", 1, false },
        { "{\"to\":[\"+4917012345678\",\"+4917012345679\"],\"text\":\"hi\"}", 1, true },
        { "{\"to\":[\"+4917012345678\",\"+4917012345679\"],\"text\":\"hi\"}", 2, true },
        { "{\"to\":[\"+4917012345678\",\"+4917012345679\"],\"text\":\"hi\"}", 257, false },
        { "{\"to\":[\"+4917012345678\"],\"text\":\"hi\"}", 1, false },
    };
    struct config cfg = cfg_with(false);
    const struct route *r = router_find(&cfg, "m2m/sms/send");

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct m2m_error err;
        struct route_req req = { 0 };
        const cJSON *id;

        req.root = json_parse_command((const uint8_t *)cases[i].payload,
                                      strlen(cases[i].payload), &id, &err);
        assert_int_equal(r->parse(req.root, &req, &err), 0);
        assert_int_equal(r->resume(&req, cases[i].started), cases[i].left);
        cJSON_Delete(req.root);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_pool_off),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_sms_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
