#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ from A7670
transcripts and payloads used by the unit tests (tests/unit/*.c) and the
A76XX protocol notes. Rerun after changing the input format of a target;
the fuzzers only read the files, so they are committed."""
import hashlib
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")

SUBMIT_PDU = b"0011000C919419513254760000AA0AE8329BFD4697D9EC37"
DELIVER_PDU = b"07919471080000F0040C919419513254760000621112615060800BC8309BFD065DCB6C7A08"
PDUS = [
    DELIVER_PDU,
    SUBMIT_PDU,
    b"07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
    b"07919730071111F1000B919746121611F10000211110312270400AE8329BFD4697D9EC37",
    b"0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
    b"00440B911316325476F80000621112600000290B0608041234030261F118",
    b"00440B911316325476F8000062111260000040100B05040B8423F00003AA0201A0D3",
    b"00040B911316325476F80008621112600000400A004800690020D83DDE00",
    b"00040B911316325476F800086211126000004006D83D0041DE00",
    b"00040ED0C7F7FBCC2E6FCA0000621112600000400161",
    b"0011000291940000A7121BCA06B5496D5E1BDEA6B7F16D809B32",
    b"00240B911316325476F80010621112600000290361F118",
    # SMS-STATUS-REPORTs: with SMSC and times; failed with TP-PI 00.
    b"0791947122723033064D0D91947110325476F8623041906235406230419062854000",
    b"0006FF0D91947110325476F862114160000040621112600000404600",
]

TRANSCRIPTS = [
    b"ATE0\r\r\nOK\r\n\r\n+CSQ: 14,99\r\n\r\nOK\r\n",
    b"\r\nRDY\r\r\n\r\n*ATREADY: 1\r\n\r\n+CPIN: READY\r\r\n\r\nSMS DONE\r\r\n\r\nPB DONE\r\n",
    b"AT+CSQ\r\r\n+CMTI: \"SM\",3\r\n+CSQ: 14,99\r\n\r\nOK\r\n",
    b"AT+CMGS=23\r\r\n> " + SUBMIT_PDU + b"\x1a\r\n+CMGS: 5\r\n\r\nOK\r\n",
    b"\r\n+CMGR: 0,,29\r\n" + DELIVER_PDU + b"\r\n\r\nOK\r\n",
    b"\r\n+CMT: ,29\r\n" + DELIVER_PDU + b"\r\n",
    b"\r\n+CMQTTRXSTART: 0,5,9\r\n+CMQTTRXTOPIC: 0,5\r\na/b\r\n\r\n"
    b"+CMQTTRXPAYLOAD: 0,9\r\n\r\nOK\0\r\n>\n\r\n+CMQTTRXEND: 0\r\n",
    b"AT+CMQTTSTART\r\r\nOK\r\n\r\n+CMQTTSTART: 0\r\n",
    b"\r\n+CME ERROR: SIM busy\r\n\r\n+CMS ERROR:340\r\n\r\n+CME ERROR: 13\r\n",
    b"\r\nRING\r\n\r\n+CLIP: \"+491591234567\",145,,,,0\r\n\r\nVOICE CALL: BEGIN\r\n",
    b"\r\n+CUSD: 1,\"1 Balance\r\n2 Bundles\",15\r\n",
    b"\r\n>\r\nOK\r\n\r\n> \r\n",
]


def write(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def lexer():
    # 3 control bytes: max_line 63, max_block 46, chunks of 5; none asks
    # for a block by itself (their low 3 bits are not 7).
    for t in TRANSCRIPTS:
        write("lexer", bytes([3, 0x3E, 0x2E, 0x05]) + t)
    # A tiny max_line, so lines overflow.
    write("lexer", bytes([2, 0x08, 0x10]) + TRANSCRIPTS[4])


def pdu():
    for p in PDUS:
        write("pdu", b"\x00" + p)                     # hex as the modem gives it
        write("pdu", b"\x01" + bytes.fromhex(p.decode()))  # octets, hexed by the target
    texts = [b"hellohello", "Grüße aus Köln €".encode(), "Привет 😀".encode(),
             b"^{}\\[~]|", b"x" * 170, "ü".encode() * 80]
    for i, t in enumerate(texts):
        # round trip: flags, digits count, concat ref, then the text
        write("pdu", bytes([2, 0x21 + i, 12 + i, 7]) + t)


def chat():
    def send(i, then=None):
        return bytes([0x80 | (then << 3) if then is not None else 0x00, i])

    def canned(i):
        return bytes([2, i])

    def raw(b, bytewise=False):
        out = b""
        for k in range(0, len(b), 47):
            part = b[k:k + 47]
            out += bytes([0x81 if bytewise else 0x01, len(part)]) + part
        return out

    tick = lambda i: bytes([4, i])  # noqa: E731
    deadline, cancel, fail = b"\x05", b"\x06", b"\x07"
    scripts = [
        send(1) + send(2) + raw(b"ATE0\r\r\nOK\r\n") + raw(b"\r\n+CSQ: 14,99\r\n\r\nOK\r\n"),
        send(3) + raw(b"AT+CMGS=23\r\r\n> ") + raw(SUBMIT_PDU + b"\x1a\r\n+CMGS: 6\r\n\r\nOK\r\n"),
        send(3) + send(2) + canned(2) + deadline + canned(0) + canned(7) + canned(0),
        send(4) + canned(0) + canned(25) + canned(13) + send(5) + canned(2) + canned(0),
        send(9) + canned(2) + canned(0) + canned(23) + canned(15),
        send(8) + canned(0) + canned(24) + send(0) + canned(0),
        send(10) + canned(16) + canned(0),
        raw(b"\r\n+CMQTTRXSTART: 0,5,9\r\n+CMQTTRXTOPIC: 0,5\r\na/b\r\n\r\n"
            b"+CMQTTRXPAYLOAD: 0,9\r\n\r\nOK\0\r\n>\n\r\n+CMQTTRXEND: 0\r\n", True),
        send(2) + canned(8) + canned(7) + canned(0) + canned(11) + canned(10) + canned(0),
        send(12) + canned(0) + canned(26) + canned(27),
        send(13) + canned(4) + send(13) + canned(5) + canned(34) + send(16) + canned(6),
        fail + send(0) + send(1) + deadline + canned(0) + send(3) + fail + canned(2) + tick(1),
        send(2, 11) + tick(4) + tick(5) + cancel + send(6) + canned(30) + canned(21),
        send(15) + canned(0) + canned(33) + canned(32) + send(17) + canned(3) + canned(0),
        send(18) + send(19) + send(20) + send(7) + canned(3) + canned(0) + send(14) + canned(0),
        # Status reports: +CDS and its PDU line, +CDSI, inside a command.
        send(2) + canned(37) + canned(38) + canned(39) + canned(0),
    ]
    for s in scripts:
        write("chat", s)


def json_():
    payloads = [
        b"", b"{}", b"{\"id\":\"a\"}", b"{\"id\":7}",
        b"{\"to\":\"+4917012345678\",\"text\":\"Hallo\",\"flash\":false,\"report\":true}",
        b"{\"id\":\"x1\",\"to\":\"+4917012345678\",\"text\":\"Gr\xc3\xbc\xc3\x9fe \xf0\x9f\x98\x80\"}",
        b"{\"to\":\"+491591234567\"}", b"{\"digits\":\"12*#AbCd\"}", b"{\"code\":\"*100#\"}",
        b"{\"to\":\"8888\",\"text\":\"x\"}",
        b"{\"to\":[\"+4917012345678\",\"01701234567\",\"8888\"],\"text\":\"x\"}",
        b"{\"to\":[\"8888\",\"8888\"],\"text\":\"x\"}", b"{\"to\":[],\"text\":\"x\"}",
        b"{\"topic\":\"home/a\",\"payload\":\"on\",\"qos\":1,\"retain\":true}",
        b"{\"topic\":\"bin\",\"payload\":\"AAEC/w==\",\"encoding\":\"base64\"}",
        b"{\"topic\":\"sensors/+/temp/#\",\"qos\":2}", b"{\"topic\":\"a/#\"}",
        b"{\"mode\":\"reset\"}", b"{\"command\":\"AT+CSQ\"}",
        b"{\"x\":\"a\\u0000b\"}", b"{\"id\":1,\"id\":2}", b"{\"id\":1e999}", b"\xff{}",
        b"{\"a\":\"\xed\xa0\x80\"}", b"[]", b"{\"id\":[1]}",
        b"AAEC/w==", b"aGVsbG8=",
        b"{\"to\":\"+4917012345678\",\"play\":\"c:/alarm.amr\",\"repeat\":3,\"hangup\":false}",
        b"{\"file\":\"c:/x.mp3\",\"repeat\":2,\"to_call\":true}",
        b"{\"file\":\"c:/rec.wav\",\"seconds\":600}",
        b"{\"file\":\"c:/a.amr\",\"data\":\"DQoAPhob\"}",
    ]
    for p in payloads:
        write("json", p)


def ussd():
    lines = [
        b"+CUSD: 0,\"Your balance is 12.34 EUR\",15", b"+CUSD: 1,\"1 Balance\n2 Bundles\",15",
        b"+CUSD:0,\"ok\",15", b"+CUSD: 2 , \"bye\" , 15 ", b"+CUSD: 0,\"say \"hi\", then\",15",
        b"+CUSD: 0,\"00480069\",72", b"+CUSD: 0,\"00C400D620AC\",72",
        b"+CUSD: 0,\"D83DDE00\",72", b"+CUSD: 0,\"D83D0041\",72", b"+CUSD: 0,\"0041\",17",
        b"+CUSD: 0,\"48656C6C6F\",68", b"+CUSD: 0,\"caf\xe9\",15", b"+CUSD: 2", b"+CUSD: 5",
        b"+CUSD: 0,\"abc,15",
    ]
    # The first byte is the mode: 0 IRA (text as the module prints it), 1
    # UCS2 (strings as UCS-2 hex, what the bridge asks for).
    ucs2 = [
        b"+CUSD: 0,\"0059006F00750072002000620061006C0061006E00630065\",15",
        b"+CUSD: 1,\"0031002000420061006C0061006E00630065000A0032\",72",
        b"+CUSD: 0,\"00780022002C00310035000A002B0043004D0054003A\",15",
        b"+CUSD: 0,\"D83DDE00\",15", b"+CUSD: 4", b"+CUSD: 0,\"00\",15",
    ]
    for line in lines:
        write("ussd", b"\x00" + line)
    for line in ucs2:
        write("ussd", b"\x01" + line)


def network():
    # AT+COPS=? answers (first byte: bit 0 names in UCS-2 hex, bits 1-3
    # the operators kept), and what the decoder must refuse.
    lines = [
        b"+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7),(1,\"Vodafone.de\",\"Vodafone\","
        b"\"26202\",7),(3,\"o2 - de\",\"o2 - de\",\"26203\",7),,(0-4),(0-2)",
        b"+COPS: (2,\"CHINA MOBILE\",\"CMCC\",\"46000\",7),,(0,1,2,3,4),(0,1,2)",
        b"+COPS: (1,\"Orange F, (test)\",\"OF),(\",\"20801\",7),,(0-4),(0-2)",
        b"+COPS: (2,\"T-Mobile D\",\"TMO D\",\"26201\"),(3, \"E-Plus\", \"E-Plus\", \"26203\"),,",
        b"+COPS: (1,,,\"90128\",7),,(0-4),(0-2)", b"+COPS: ,,(0-4),(0-2)",
        b"+COPS: 0,0,\"Telekom.de\",7", b"+COPS: (2,\"Telekom.de\",\"TDG\",\"2620A\",7)",
        b"+COPS: (2,\"Telekom.de\",\"TDG\",\"26201\",7", b"+COPS: (0-4),(0-2)",
    ]
    for line in lines:
        write("network", b"\x06" + line)
        write("network", b"\x02" + line)
    write("network", b"\x07+COPS: (2,\"00540065006C0065006B006F006D002E00640065\",\"005400440047\","
                     b"\"26201\",7),,(0-4),(0-2)")


def call():
    # +RXDTMF as the module prints it, and what the reader must refuse.
    lines = [
        b"+RXDTMF: 1", b"+RXDTMF: #", b"+RXDTMF: *", b"+RXDTMF: D", b"+RXDTMF:5",
        b"+RXDTMF: 0 ", b"+RXDTMF: 12", b"+RXDTMF: E", b"+RXDTMF: a", b"+RXDTMF: ",
        b"+RXDTMF: \"1\"", b"+RXDTMF: 1,2", b"+RXDTMF: (1)", b"+RXDTM: 1",
    ]
    for line in lines:
        write("call", line)


def audio():
    # Audio state URCs, +FSATTRI and AT+FSLS answers as A76XX modules print
    # them, file names (B/audio/*), and what the readers must refuse.
    urcs = [
        b"+AUDIOSTATE: audio play", b"+AUDIOSTATE: audio play stop", b"+WAVSTATE: wav play",
        b"+WAVSTATE: wav play stop", b"+RECSTATE: crec stop", b"+AUDIOSTATE:audio play stop",
        b"+AUDIOSTATE: audio play stopped", b"+RECSTATE: crecamr stop", b"+CREC: crec stop",
    ]
    attrs = [b"+FSATTRI: 8604, 2008/04/28 10:24:46", b"+FSATTRI: 3800", b"+FSATTRI: -1",
             b"+FSATTRI: 99999999999", b"+FSATTRI:"]
    names = [b"c:/alarm.amr", b"C:/Tone.WAV", b"c:/..", b"c:/.x", b"c:/x.", b"d:/x.amr",
             b"c:/a\",1,0\r\nATH", b"c:/" + b"a" * 60 + b".amr", b"c:/" + b"a" * 61 + b".amr",
             b"c:/RING"]
    listings = [b"+FSLS: FILES:\nalarm.amr\nTone.WAV\n", b"+FSLS: SUBDIRECTORIES:\n\n+FSLS: FILES:\nx",
                b"a name.mp3\n" + b"b" * 200]
    for line in urcs:
        write("audio", b"\x00" + line)
    for line in attrs:
        write("audio", b"\x01" + line)
    for line in names:
        write("audio", b"\x02" + line)
    for text in listings:
        write("audio", b"\x03" + text)


def status():
    # Answers and URCs as A7670 and SIM7600 modules print them, and the
    # forms the parsers must refuse.
    lines = [
        b"+CSQ: 14,99", b"+CSQ:20,99", b"+CSQ: 99,99", b"+CSQ: 32,99",
        b"+CREG: 2,1,\"1A2B\",\"01C2D3E4\",7", b"+CEREG: 2, 2", b"+CEREG: 5,\"1A2B\",\"01C2D3E4\",7",
        b"+CREG: 2", b"+COPS: 0,0,\"Sim Telecom\",7", b"+COPS: 0,0,\"Vodafone, DE\",7", b"+COPS: 0",
        b"+CPSI: LTE,Online,262-01,0x1A2B,12345678,300,EUTRAN-BAND3,1300,5,5,-94,-1050,-720,15",
        b"+CPSI: NO SERVICE,Online",
        b"+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30", b"+CPMS: \"SM_P\",5,40,\"SM_P\",5,40,\"SM_P\",5,40",
        b"+CPMS: \"SM\", 2, 10, \"SM\", 2, 10, \"SM\", 2, 10", b"+CPMS:\"SM\",10,10",
        b"+CPMS: 0,30,0,30,0,30", b"+CPMS: (\"SM\",\"ME\"),(\"SM\",\"ME\"),(\"SM\",\"ME\")",
        b"+CPMS: \"SM\",31,30", b"+CPMS: \"SM\",4294967326,30", b"+CPMS: \"SM\",0,",
        b"+CREG: 2,1,\"00a1\",\"5e1f\"", b"+CEREG: 2,1,\"1A2B\",\"101C2D3E4\",7",
        b"+CBC: 3.978V", b"+CBC: 3.95V", b"+CBC: 0,88,4090", b"+CBC: 3.9785V", b"+CBC: 25.0V",
    ]
    for line in lines:
        write("status", line)


def result():
    # A length byte, op bytes (low 3 bits: number, number with default,
    # string, greedy string, unquoted, skip, open/close list, rest; the
    # high bits: range and buffer size), then a line.
    walks = [
        (b"\xf8\xf8", b"+CSQ: 14,99"),
        (b"\x05\xfa\x05\xfa\x00", b"+CMGL: 7,0,\"Alice, Bob\",24"),
        (b"\xfa\xf8\x01\x05\x05\x01", b"+CLIP: \"+4917000000000\",145,,,,0"),
        (b"\x00\xfb\x01", b"+CUSD: 0,\"say \"hi\", then\",15"),
        (b"\xfc\xfc\x05\x05\x05\x05\x05\x05\x05\x05\x05\x18", b"+CPSI: LTE,Online,262-01,"
         b"0x1A2B,12345678,300,EUTRAN-BAND3,1300,5,5,-94,-1050,-720,15"),
        (b"\x06\x00\xfa\x0e\x06\x0e", b"+COPS: (2,\"Vodafone.de\",\"Vodafone\",\"26202\",7),,(0-4),(0,1)"),
        (b"\x06\xfa\xfa\x0e\x05\x05", b"+CPMS: (\"SM\",\"ME\"),(\"SM\",\"ME\"),(\"SM\",\"ME\")"),
        (b"\x10\x10\x00", b"+CPMS: \"SM\",4294967326,-2147483649"),
        (b"\xfc\x07", b"+CPIN: SIM PIN"),
        (b"\x05\xfa\x00", b"+CNUM: ,\"+4917000000000\",145"),
        (b"\x02\x05\x03", b"+CPMS: \"SM,0,30"),
        (b"\xfc", b"861234567890123"),
    ]
    for ops, line in walks:
        write("result", bytes([len(ops)]) + ops + line)


def config():
    root = os.path.dirname(os.path.dirname(HERE))
    for name in ("config.example.json", "dfrobot.example.json"):
        with open(os.path.join(root, "config", name), "rb") as f:
            write("config", f.read())
    docs = [
        b"{}", b"\xef\xbb\xbf{}",
        b"{\"mqtt\":{\"broker\":\"mqtts://broker.example.com:8883\",\"base_topic\":\"home/gsm\","
        b"\"keepalive\":60,\"homeassistant\":{\"discovery\":false,\"prefix\":\"ha\"}}}",
        b"{\"modem\":{\"port\":\"/dev/ttyUSB2\",\"baud\":921600,\"pin\":\"1234\","
        b"\"init\":[\"AT+CSCLK=0\"],\"status_interval\":300,\"command_timeout_ms\":10000}}",
        b"{\"sms\":{\"allow_to\":[\"*\",\"8888\",\"0*\"]},\"calls\":{\"allow_to\":[\"110\",\"11*\"]}}",
        b"{\"sms\":{\"allow_to\":[\"+4917012345678\",\"+4930*\"],\"max_parts\":16,"
        b"\"rate_per_hour\":1,\"delivery_reports\":true},\"calls\":{\"allow_to\":[]}}",
        b"{\"remote\":{\"server\":\"tcp://10.0.0.1\",\"tls\":true,\"subscribe\":[{\"topic\":"
        b"\"a/#\"},{\"topic\":\"b\",\"qos\":2,\"local\":null}],\"forward\":[{\"local\":\"x/+\","
        b"\"remote\":\"y\"}]}}",
        b"{\"remote\":{\"will\":{\"topic\":\"dev/1/state\",\"payload\":\"off\\r\\n\",\"qos\":2,"
        b"\"retain\":false}}}",
        b"{\"state_dir\":\"/srv/m2m\",\"allow_raw_at\":true,\"log_level\":\"debug\"}",
        # The text, then "\0\0", then NUL-separated environment entries.
        b"{}\0\0MODEM2MQTT_PORT=tcp://10.0.0.2:4001\0MODEM2MQTT_BAUD=9600\0"
        b"MODEM2MQTT_BROKER=unix:///run/mosquitto.sock\0MODEM2MQTT_LOG_LEVEL=warn",
    ]
    for d in docs:
        write("config", d)


def refmap():
    # Lines of state_dir/sms-references as refmap.c writes them ("<time>
    # <reference> <part> <parts> <to> <id as JSON>"), and what a power cut,
    # a zero-filled block or an editor leaves (see tests/unit/test_refmap.c).
    t = b"1795237200"
    good = [
        t + b" 5 1 1 +491701234567 42\n",
        t + b" 10 1 3 +491701234567 \"abc\"\n" + t + b" 12 3 3 +491701234567 \"abc\"\n",
        t + b" 7 1 1 01701234567 null\n",
        t + b" 1 1 1 8888 42.5\n",
        t + b" 2 1 1 +491701234567 \"a \\\"b\\\" \\\\ \xc3\xbc\"\n",
        b"1794632400 255 2 2 +48601234567 \"old\"\n",      # expired
    ]
    bad = [
        b"garbage\n",
        t + b" 300 1 1 +491701234567 1\n",
        t + b" 4 3 2 +491701234567 1\n",
        t + b" 5 1 1 +491701234567 {\"x\":1}\n",
        t + b" 7 1 1 +491701234567 \"id\" x\n",
        t + b" 8 1 1 +491701234567 42x\n",
        b"1 2\0 x\n",
        t + b" 11 1 1 +491701234567 \"" + b"0" * 400 + b"\"\n",
        t + b" 6 1 1 +491701234567 \"to",
    ]
    for data in good + bad:
        write("refmap", data)
    write("refmap", b"".join(good))
    write("refmap", b"".join(good[:2] + bad + good[2:]))


def metrics():
    # What a Prometheus scraper sends, what a browser or a stray client
    # sends, and metrics.listen values.
    for data in [
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /x HTTP/1.0\n\n",
        b"[::1]:9713",
        b"127.0.0.1:9713",
    ]:
        write("metrics", data)


def cmqtt():
    # Module bytes after the connect, whole (0), byte by byte (1) and in
    # 7-byte chunks: a message in two topic and two payload chunks with
    # CR, LF and NUL in its bytes, one inside a command's answer, chunks
    # longer than announced, a missing RXEND, the session URCs.
    rx = (b"\r\n+CMQTTRXSTART: 0,9,20\r\n+CMQTTRXTOPIC: 0,6\r\ncloud/\r\n"
          b"+CMQTTRXTOPIC: 0,3\r\nabc\r\n+CMQTTRXPAYLOAD: 0,12\r\nhi\r\n\x00OK\r\n> \x1a"
          b"\r\n+CMQTTRXPAYLOAD: 0,8\r\n\xff\xfe\r\nERROR\r\n+CMQTTRXEND: 0\r\n")
    for data in [
        rx,
        b"\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\na/b\r\n"
        b"+CMQTTRXPAYLOAD: 0,6\r\n123456\r\n+CMQTTRXEND: 0\r\n",
        b"\r\n+CMQTTRXSTART: 0,3,5\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
        b"+CMQTTRXPAYLOAD: 0,9999\r\nhello\r\n+CMQTTRXEND: 0\r\n" + rx,
        b"\r\n+CMQTTRXSTART: 0,3,4\r\n+CMQTTRXTOPIC: 0,3\r\nabc\r\n"
        b"+CMQTTRXPAYLOAD: 0,4\r\n1234\r\n",
        b"\r\n+CMQTTRXPAYLOAD: 0,10241\r\nhello\r\n\r\n+CMQTTRXSTART: 0,1025,5\r\n",
        b"\r\n+CMQTTCONNLOST: 0,1\r\n" + rx,
        b"\r\n+CMQTTNONET\r\n\r\n+CMQTTRXEND: 0\r\n",
    ]:
        for chunk in (0, 1, 7):
            write("cmqtt", bytes([chunk]) + data)


def strip():
    # A MAC registry packet and a "www.usr.cn" heartbeat, put into the
    # transcripts at the start, inside a line and at the end.
    mac = bytes.fromhex("D8B04CFC0001")
    hb = b"www.usr.cn"
    head = bytes([len(mac), len(hb)]) + mac + hb
    for i, t in enumerate(TRANSCRIPTS):
        mid = len(t) // 2
        write("strip", head + bytes([i]) + mac + t[:mid] + hb + t[mid:] + hb[:4])


if __name__ == "__main__":
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    lexer()
    pdu()
    chat()
    json_()
    ussd()
    network()
    call()
    audio()
    status()
    result()
    config()
    refmap()
    metrics()
    cmqtt()
    strip()
