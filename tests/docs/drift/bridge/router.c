static const struct route routes[] = {
    { "sms/send", parse_sms, cmd_sms_send, 0, NULL },
    { "call/dial", parse_dial, cmd_call_dial, 0, NULL },
};
