/* mqtt/json codecs per second, on the bridge's own call sequences.
 *
 *  - sms/send parse: json_parse_command + json_check_fields +
 *    json_parse_sms_send + cJSON_Delete (the router's sms/send path) of a
 *    typical command with an id and a 100-character text. The payload is
 *    not NUL-terminated (as paho hands it over).
 *  - result ok: the {"parts","references"} object built as cmd_sms.c's
 *    sms_sent does, then json_result + free.
 *  - result error: m2m_error_set (modem_error, cms 331) then json_result.
 *  - sms/received: json_sms_received of a 160-character GSM text with
 *    from, smsc and time, then free.
 * op = one payload parsed or produced; MB/s counts its JSON bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "modem/sms.h"
#include "mqtt/json.h"

static const char send_payload[] =
    "{\"id\":\"42\",\"to\":\"+4917012345678\",\"text\":\"Alarm: the front door was opened at "
    "06:00 while the system was armed. Reply DISARM to stop the siren.\"}";

struct jbench {
    uint8_t *payload; /* malloc'd copy without a NUL after it */
    size_t len;
    cJSON *id;
    struct sms_received rx;
    size_t out_len;   /* size of the last produced JSON */
};

static uint64_t run_parse(void *ctx, uint64_t iters)
{
    static const char *const fields[] = {"to", "text", "flash", "report", NULL};
    struct jbench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        struct m2m_error err = {.cme = -1, .cms = -1};
        struct sms_send_req req;
        const cJSON *id;
        cJSON *root = json_parse_command(b->payload, b->len, &id, &err);

        if (!root || !id || json_check_fields(root, fields, &err) < 0 ||
            json_parse_sms_send(root, &req, &err) < 0)
            bench_fail("parse: %s", err.message);
        sum += req.text_len + (unsigned char)req.to[3];
        cJSON_Delete(root);
    }
    bench_consume(sum);
    return iters;
}

static uint64_t run_result_ok(void *ctx, uint64_t iters)
{
    struct jbench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        cJSON *data = cJSON_CreateObject(), *refs;
        char *s;

        if (!data)
            bench_fail("out of memory");
        cJSON_AddNumberToObject(data, "parts", 1);
        refs = cJSON_AddArrayToObject(data, "references");
        cJSON_AddItemToArray(refs, cJSON_CreateNumber((double)(i & 0xFF)));
        s = json_result(b->id, data, NULL);
        if (!s)
            bench_fail("json_result");
        b->out_len = strlen(s);
        sum += b->out_len + (unsigned char)s[b->out_len - 3];
        free(s);
    }
    bench_consume(sum);
    return iters;
}

static uint64_t run_result_err(void *ctx, uint64_t iters)
{
    struct jbench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        struct m2m_error err;
        char *s;

        m2m_error_set(&err, "modem_error", "no network service");
        err.cms = 331;
        s = json_result(b->id, NULL, &err);
        if (!s)
            bench_fail("json_result");
        b->out_len = strlen(s);
        sum += b->out_len + (unsigned char)s[b->out_len - 3];
        free(s);
    }
    bench_consume(sum);
    return iters;
}

static uint64_t run_received(void *ctx, uint64_t iters)
{
    struct jbench *b = ctx;
    uint64_t sum = 0;

    for (uint64_t i = 0; i < iters; i++) {
        char *s = json_sms_received(&b->rx);

        if (!s)
            bench_fail("json_sms_received");
        b->out_len = strlen(s);
        sum += b->out_len + (unsigned char)s[b->out_len / 2];
        free(s);
    }
    bench_consume(sum);
    return iters;
}

int main(int argc, char **argv)
{
    static const char text160[] =
        "Your parcel 4711-0815 will be delivered tomorrow between 10:00 and 12:00. "
        "Reply STOP to opt out. Questions? Call +49 30 1234567 (Mon-Fri 8-18h). Thanks!";
    struct jbench b = {0};
    struct bench_case c;

    bench_init(argc, argv);
    b.len = sizeof(send_payload) - 1;
    b.payload = malloc(b.len);
    if (!b.payload)
        bench_fail("out of memory");
    memcpy(b.payload, send_payload, b.len);
    b.id = cJSON_CreateString("42");
    b.rx = (struct sms_received){
        .from = "+4917012345678",
        .smsc = "+491770610000",
        .time = "2026-11-21T06:00:00+01:00",
        .alphabet = PDU_GSM7,
        .text = (const uint8_t *)text160,
        .text_len = sizeof(text160) - 1,
        .parts = 1,
    };

    c = (struct bench_case){"json: sms/send parse+check+validate", run_parse, &b, (double)b.len};
    if (bench_run(&c, NULL) < 0)
        return 1;
    run_result_ok(&b, 1);
    c = (struct bench_case){"json: json_result ok (parts, references)", run_result_ok, &b,
                            (double)b.out_len};
    if (bench_run(&c, NULL) < 0)
        return 1;
    run_result_err(&b, 1);
    c = (struct bench_case){"json: json_result error (cms)", run_result_err, &b,
                            (double)b.out_len};
    if (bench_run(&c, NULL) < 0)
        return 1;
    run_received(&b, 1);
    c = (struct bench_case){"json: json_sms_received 160 chars", run_received, &b,
                            (double)b.out_len};
    if (bench_run(&c, NULL) < 0)
        return 1;
    cJSON_Delete(b.id);
    free(b.payload);
    return 0;
}
