#!/usr/bin/env python3
"""Self-check of modem2mqtt-sim: talks to it like a host on the pty and
through its control protocol, and checks the bytes against the A7670 facts;
then of modem2mqtt-devsrv-sim (in the same directory): its console and its
relay.

    tests/sim/selfcheck.py [path/to/modem2mqtt-sim]   (default: build/...)

Exits 0 when every check passes. Not the integration tests (those run the
bridge); this only pins the simulator's own behaviour."""
import os
import select
import subprocess
import sys
import tempfile
import termios
import time
import tty

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "build", "tests", "sim", "modem2mqtt-sim")

BOOT = b"\r\n*ATREADY: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n"
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


class Sim:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="m2m-simcheck-")
        self.link = os.path.join(self.dir, "modem")
        self.p = subprocess.Popen([SIM, "--link", self.link, "--quiet", *args],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        self.events = []
        line = self.line(5)
        assert line.startswith("pty "), line
        self.pty = line[4:]
        self.fd = None
        self.open()

    def open(self):
        self.rx = b""
        self.fd = os.open(self.link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def line(self, timeout=3):
        """Next stdout line (event or reply)."""
        end = time.time() + timeout
        while b"\n" not in self.buf:
            left = end - time.time()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise TimeoutError("no line from the simulator")
            chunk = os.read(self.p.stdout.fileno(), 4096)
            if not chunk:
                raise EOFError("simulator stdout closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ctl(self, cmd):
        """Sends a control command; returns its ok/error line, keeps events."""
        self.p.stdin.write((cmd + "\n").encode())
        self.p.stdin.flush()
        while True:
            line = self.line()
            if line == "ok" or line == "error" or line.startswith(("ok ", "error ")):
                return line
            self.events.append(line)

    def event(self, prefix, timeout=3):
        end = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.startswith(prefix):
                    return self.events.pop(i)
            self.events.append(self.line(max(0.01, end - time.time())))

    def send(self, data):
        os.write(self.fd, data)

    def read_until(self, tail, timeout=3):
        """Pty bytes up to and including the first tail."""
        end = time.time() + timeout
        while tail not in self.rx:
            left = end - time.time()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError("pty: waited for %r, got %r" % (tail, self.rx))
            self.rx += os.read(self.fd, 4096)
        i = self.rx.index(tail) + len(tail)
        got, self.rx = self.rx[:i], self.rx[i:]
        return got

    def quiet(self, ms):
        """Pty bytes within ms (expected: none)."""
        end = time.time() + ms / 1000
        while True:
            left = end - time.time()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                got, self.rx = self.rx, b""
                return got
            self.rx += os.read(self.fd, 4096)

    def at(self, cmd, tail=b"OK\r\n"):
        self.send(cmd.encode() + b"\r")
        return self.read_until(tail)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(5)
        return self.p.returncode


def pack7(text):
    bits = 0
    n = 0
    out = bytearray()
    for ch in text.encode():
        bits |= ch << n
        n += 7
        while n >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            n -= 8
    if n:
        out.append(bits & 0xFF)
    return bytes(out)


def submit(to, text, srr=False):
    """SMS-SUBMIT hex (SMSC "00") and its TPDU length."""
    digits = to.lstrip("+")
    bcd = digits + ("F" if len(digits) % 2 else "")
    addr = "%02X%s" % (len(digits), "91" if to.startswith("+") else "81")
    addr += "".join(bcd[i + 1] + bcd[i] for i in range(0, len(bcd), 2))
    ud = pack7(text)
    tpdu = "%02X00%s0000A7%02X%s" % (0x31 if srr else 0x11, addr, len(text), ud.hex().upper())
    return "00" + tpdu, len(tpdu) // 2


def main():
    s = Sim()
    # Boot and echo
    check(s.read_until(b"PB DONE\r\n") == BOOT, "boot URCs in order")
    check(s.at("AT") == b"AT\r\r\nOK\r\n", "echo on after boot: AT -> AT\\r\\r\\nOK")
    check(s.event("rx ") == "rx AT", "rx event")
    check(s.at("ATE0") == b"ATE0\r\r\nOK\r\n", "ATE0 echoed, OK")
    check(s.at("AT") == b"\r\nOK\r\n", "echo off")
    s.send(b"AT\r\n")
    check(s.read_until(b"OK\r\n") == b"\r\nOK\r\n" and s.quiet(100) == b"", "CRLF accepted")
    check(s.at("AT+FOO", b"ERROR\r\n") == b"\r\nERROR\r\n", "unknown -> ERROR")
    # Identity, status
    check(s.at("AT+CGMR") == b"\r\n+CGMR: A011B07A7670M7\r\n\r\nOK\r\n", "CGMR")
    check(s.at("AT+CGMI") == b"\r\nSIMCOM INCORPORATED\r\n\r\nOK\r\n", "CGMI")
    check(s.at("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n", "CSQ default")
    check(s.ctl("csq 7") == "ok", "csq control")
    check(s.at("AT+CSQ") == b"\r\n+CSQ: 7,99\r\n\r\nOK\r\n", "CSQ changed")
    check(s.at("AT+CBC") == b"\r\n+CBC: 3.978V\r\n\r\nOK\r\n", "CBC default")
    check(s.ctl("cbc 3605") == "ok", "cbc control")
    check(s.at("AT+CBC") == b"\r\n+CBC: 3.605V\r\n\r\nOK\r\n", "CBC changed")
    check(s.ctl("cbc 0") == "ok", "cbc 0: no AT+CBC")
    check(s.at("AT+CBC", b"ERROR\r\n") == b"\r\nERROR\r\n", "CBC refused")
    check(s.at("AT+CREG=2") == b"\r\nOK\r\n", "CREG=2")
    check(s.at("AT+CREG?") == b'\r\n+CREG: 2,1,"1A2B","01C2D3E4",7\r\n\r\nOK\r\n', "CREG?")
    s.ctl("creg 2")
    check(s.read_until(b"+CREG: 2\r\n") == b"\r\n+CREG: 2\r\n",
          "+CREG URC on creg")
    s.ctl("creg 1")
    check(s.read_until(b"7\r\n") == b'\r\n+CREG: 1,"1A2B","01C2D3E4",7\r\n', "+CREG URC n=2")
    check(s.at("AT+COPS?") == b'\r\n+COPS: 0,0,"Sim Telecom",7\r\n\r\nOK\r\n', "COPS?")
    check(b"+CPSI: LTE,Online,262-01" in s.at("AT+CPSI?"), "CPSI?")
    # Networks: a search that holds the line, then the choice
    scan = (b'\r\n+COPS: (2,"Sim Telecom","SimTel","26201",7),(1,"Vodafone.de","Vodafone",'
            b'"26202",7),(3,"Telefonica (O2), DE","o2 - de","26203",2),,(0-4),(0-2)\r\n\r\nOK\r\n')
    check(s.ctl("scan-ms 400") == "ok", "scan-ms control")
    t0 = time.time()
    s.send(b"AT+COPS=?\rAT+CSQ\r")
    got = s.read_until(b"OK\r\n")
    check(got == scan and time.time() - t0 >= 0.35, "COPS=? after scan-ms, the list")
    check(s.event("scan done") == "scan done", "scan done event")
    check(s.read_until(b"OK\r\n") == b"\r\n+CSQ: 7,99\r\n\r\nOK\r\n", "CSQ waited for the scan")
    s.at("AT+CMEE=1")
    check(s.at('AT+COPS=1,2,"26202"') == b"\r\nOK\r\n", "COPS manual")
    check(s.event("cops manual") == "cops manual 26202", "cops manual event")
    check(s.at("AT+COPS?") == b'\r\n+COPS: 1,0,"Vodafone.de",7\r\n\r\nOK\r\n', "COPS? manual")
    check(b'(1,"Sim Telecom","SimTel","26201",7),(2,"Vodafone.de"' in s.at("AT+COPS=?"),
          "COPS=? current follows the choice")
    check(s.at('AT+COPS=1,2,"26203"', b": 32\r\n") == b"\r\n+CME ERROR: 32\r\n",
          "COPS forbidden -> 32")
    check(s.at('AT+COPS=1,2,"99999"', b": 30\r\n") == b"\r\n+CME ERROR: 30\r\n",
          "COPS not in reach -> 30")
    check(s.at("AT+COPS=0") == b"\r\nOK\r\n" and s.event("cops auto") == "cops auto", "COPS auto")
    check(s.at("AT+COPS?") == b'\r\n+COPS: 0,0,"Sim Telecom",7\r\n\r\nOK\r\n', "COPS? auto")
    s.at("AT+CMEE=0")
    # CMEE
    check(s.at('AT+CPIN="1234"', b"ERROR\r\n") == b"\r\nERROR\r\n", "CMEE=0: ERROR")
    s.at("AT+CMEE=1")
    check(s.at('AT+CPIN="1234"', b": 3\r\n") == b"\r\n+CME ERROR: 3\r\n", "CMEE=1: numeric")
    s.at("AT+CMEE=2")
    check(s.at('AT+CPIN="1234"', b"allowed\r\n") == b"\r\n+CME ERROR: operation not allowed\r\n",
          "CMEE=2: verbose")
    check(s.at("AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n", "CPIN?")
    # Incoming SMS
    check(s.ctl("sms +4917012345678 hello") == "ok 1", "sms -> ok 1")
    check(s.read_until(b"1\r\n") == b'\r\n+CMTI: "SM",1\r\n', "+CMTI")
    r = s.at("AT+CMGR=1")
    lines = r.split(b"\r\n")
    check(lines[1].startswith(b"+CMGR: 0,,") and r.endswith(b"\r\n\r\nOK\r\n"), "CMGR unread")
    pdu = lines[2].decode()
    check(int(lines[1].split(b",")[-1]) == len(pdu) // 2 - 1 - int(pdu[:2], 16), "CMGR length")
    check(s.at("AT+CMGR=1").split(b"\r\n")[1].startswith(b"+CMGR: 1,,"), "CMGR now read")
    check(s.at("AT+CMGR=5", b"321\r\n") == b"\r\n+CMS ERROR: 321\r\n",
          "CMGR empty -> 321")
    check(s.ctl("store " + pdu) == "ok 2" and s.quiet(100) == b"", "store: no URC")
    r = s.at("AT+CMGL=4")
    check(r.count(b"+CMGL: ") == 2 and b"+CMGL: 2,0,," in r, "CMGL=4 lists both")
    check(s.at("AT+CMGL=0") == b"\r\nOK\r\n", "CMGL=0 after CMGL: none unread")
    check(s.ctl("list").startswith("ok 1:1:") and " 2:1:" in s.ctl("list"), "list")
    check(s.at("AT+CMGD=1") == b"\r\nOK\r\n" and s.event("deleted ") == "deleted 1", "CMGD")
    check(s.ctl("count") == "ok 1", "count")
    s.at("AT+CMGD=1,4")
    check(s.event("deleted ") == "deleted 2" and s.ctl("count") == "ok 0", "CMGD flag 4")
    r = s.ctl("sms +4917012345678 " + "x" * 200)
    check(r == "ok 1,2", "multipart sms -> ok 1,2 (%s)" % r)
    check(s.read_until(b'"SM",2\r\n') == b'\r\n+CMTI: "SM",1\r\n\r\n+CMTI: "SM",2\r\n',
          "one +CMTI per part")
    s.at("AT+CMGD=1,4")
    # Sending
    hexpdu, n = submit("+4917012345678", "hello")
    s.send(b"AT+CMGS=%d\r" % n)
    check(s.read_until(b"> ") == b"\r\n> ", "CMGS prompt without LF")
    s.send(hexpdu.encode() + b"\x1a")
    check(s.read_until(b"OK\r\n") == b"\r\n+CMGS: 0\r\n\r\nOK\r\n", "+CMGS: 0")
    check(s.event("rx-data ") == "rx-data " + hexpdu.encode().hex().upper(), "rx-data")
    check(s.event("sent ") == "sent 0 " + hexpdu, "sent event")
    s.send(b"AT+CMGS=%d\r" % (n + 1))
    s.read_until(b"> ")
    s.send(hexpdu.encode() + b"\x1a")
    check(s.read_until(b"304\r\n") == b"\r\n+CMS ERROR: 304\r\n", "wrong length -> 304")
    s.send(b"AT+CMGS=%d\r" % n)
    s.read_until(b"> ")
    s.send(b"0011\x1b")
    check(s.read_until(b"OK\r\n") == b"\r\nOK\r\n", "ESC cancels with OK")
    s.ctl("cms 500")
    s.send(b"AT+CMGS=%d\r" % n)
    s.read_until(b"> ")
    s.send(hexpdu.encode() + b"\x1a")
    check(s.read_until(b"500\r\n") == b"\r\n+CMS ERROR: 500\r\n", "cms 500")
    s.send(b"AT+CMGS=%d\r" % n)
    s.read_until(b"> ")
    s.send(hexpdu.encode() + b"\x1a")
    check(s.read_until(b"OK\r\n") == b"\r\n+CMGS: 1\r\n\r\nOK\r\n", "next mr 1")
    # Status report
    s.at("AT+CNMI=2,1,0,1,0")
    hexpdu, n = submit("+4917012345678", "report", srr=True)
    s.send(b"AT+CMGS=%d\r" % n)
    s.read_until(b"> ")
    s.send(hexpdu.encode() + b"\x1a")
    s.read_until(b"OK\r\n")
    r = s.read_until(b"+CDS: ", 2)
    r += s.read_until(b"\r\n")
    r += s.read_until(b"\r\n")
    check(r.startswith(b"\r\n+CDS: ") and b"\r\n000602" in r, "+CDS status report (%r)" % r)
    # Stored status report (ds=2), failed
    s.at("AT+CNMI=2,1,0,2,0")
    check(s.ctl("cds failed") == "ok", "cds failed")
    s.send(b"AT+CMGS=%d\r" % n)
    s.read_until(b"> ")
    s.send(hexpdu.encode() + b"\x1a")
    s.read_until(b"OK\r\n")
    r = s.read_until(b"+CDSI: ", 2)
    r += s.read_until(b"\r\n")
    check(r.endswith(b'+CDSI: "SM",1\r\n'), "+CDSI (%r)" % r)
    r = s.at("AT+CMGR=1")
    check(r.startswith(b"\r\n+CMGR: 0,,") and b"40\r\n\r\nOK" in r and b"\r\n000603" in r,
          "stored status report (%r)" % r)
    s.at("AT+CMGD=1")
    check(s.ctl("cds delivered") == "ok", "cds delivered")
    # Full SIM
    for i in range(10):
        s.ctl("store " + pdu)
    check(s.at("AT+CPMS?") == b'\r\n+CPMS: "SM",10,10,"SM",10,10,"SM",10,10\r\n\r\nOK\r\n',
          "AT+CPMS? counts a full SIM")
    check(s.ctl("sms +49170 full") == "error sim full", "sim full")
    check(s.read_until(b"SMS FULL\r\n") == b"\r\nSMS FULL\r\n", "SMS FULL when nothing fits")
    s.at("AT+CMGD=1,4")
    s.ctl("urc-in at+cpms SMS FULL")
    check(s.at("AT+CPMS?") == b'\r\nSMS FULL\r\n\r\n+CPMS: "SM",0,10,"SM",0,10,"SM",0,10'
          b'\r\n\r\nOK\r\n', "urc-in: the URC inside the answer")
    # Audio and the C:/ file system
    check(s.ctl("play-ms 100") == "ok", "play-ms")
    blob = b"\r\n\x00>\x1a\x1bOK\r\n"
    s.send(b'AT+CFTRANRX="c:/a.amr",%d\r' % len(blob))
    check(s.read_until(b"> ") == b"\r\n> ", "CFTRANRX prompt without LF")
    s.send(blob)
    check(s.read_until(b"OK\r\n") == b"\r\nOK\r\n", "CFTRANRX takes exactly len raw bytes")
    check(s.event("fs-write ") == "fs-write c:/a.amr 0 %d" % len(blob), "fs-write event")
    check(s.at('AT+CFTRANRX="c:/a.amr",1', b"ERROR\r\n") == b"\r\nERROR\r\n",
          "CFTRANRX does not overwrite")
    s.send(b'AT+CFTRANRX="c:/a.amr",2,0,%d\r' % len(blob))
    s.read_until(b"> ")
    s.send(b"\x00\x01")
    check(s.read_until(b"OK\r\n") == b"\r\nOK\r\n", "CFTRANRX at a location")
    blob += b"\x00\x01"
    check(s.ctl("file c:/a.amr") == "ok %d %s" % (len(blob), blob.hex().upper()),
          "file: byte-exact")
    check(s.at('AT+FSATTRI="c:/a.amr"') ==
          b"\r\n+FSATTRI: %d,2026/12/05 12:00:00\r\n\r\nOK\r\n" % len(blob), "FSATTRI")
    check(s.at("AT+FSLS=2") == b"\r\n+FSLS: FILES:\r\na.amr\r\n\r\nOK\r\n", "FSLS")
    check(s.at('AT+CCMXPLAY="c:/nope.amr",0,0', b"ERROR\r\n") == b"\r\nERROR\r\n",
          "play an unknown file: ERROR")
    check(s.at('AT+CCMXPLAY="c:/a.amr",1,0', b"ERROR\r\n") == b"\r\nERROR\r\n",
          "play into no call: ERROR")
    check(s.at('AT+CCMXPLAY="c:/a.amr",0,1') == b"\r\nOK\r\n", "CCMXPLAY OK")
    check(s.event("play ") == "play c:/a.amr path 0 times 2", "play event")
    check(s.read_until(b"play\r\n") == b"\r\n+AUDIOSTATE: audio play\r\n", "audio play URC")
    check(s.ctl("audio") == "ok playing c:/a.amr", "audio: playing")
    check(s.read_until(b"stop\r\n", 2) == b"\r\n+AUDIOSTATE: audio play stop\r\n",
          "audio play stop after two repetitions")
    check(s.at('AT+CREC=1,"c:/r.wav"') == b"\r\n+CREC: 1\r\n\r\nOK\r\n", "CREC start")
    check(s.at("AT+CREC=0") == b"\r\n+CREC: 0\r\n\r\nOK\r\n", "CREC stop")
    check(s.read_until(b"stop\r\n") == b"\r\n+RECSTATE: crec stop\r\n", "RECSTATE URC")
    check(s.at('AT+FSDEL="c:/r.wav"') == b"\r\nOK\r\n", "FSDEL")
    check(s.at('AT+FSDEL="c:/r.wav"', b"ERROR\r\n") == b"\r\nERROR\r\n", "FSDEL twice")
    # Hang
    s.ctl("hang 0")
    s.send(b"AT\r")
    check(s.quiet(300) == b"", "hang: no answer")
    s.ctl("unhang")
    check(s.at("AT") == b"\r\nOK\r\n", "unhang: answers again")
    s.ctl("hang 200")
    s.send(b"AT\r")
    check(s.quiet(300) == b"", "hang 200: no answer")
    check(s.at("AT") == b"\r\nOK\r\n", "hang over by itself")
    # Sleep: AT+CSCLK=2, asleep after 5 s without input, the waking byte lost
    check(s.at("AT+CSCLK=?") == b"\r\n+CSCLK: (0-2)\r\n\r\nOK\r\n", "AT+CSCLK=?")
    check(s.at("AT+CSCLK=2") == b"\r\nOK\r\n", "AT+CSCLK=2")
    check(s.event("csclk ") == "csclk 2", "csclk event")
    check(s.at("AT+CSCLK?") == b"\r\n+CSCLK: 2\r\n\r\nOK\r\n", "AT+CSCLK?")
    check(s.event("sleep", 7) == "sleep", "asleep after 5 s without input")
    check(s.ctl("urc RING") == "ok" and s.read_until(b"RING\r\n") == b"\r\nRING\r\n",
          "asleep: URCs still go out")
    s.send(b"AT\r")
    check(s.quiet(300) == b"", "asleep: a lone AT loses its A, no answer")
    check(s.event("wake ") == "wake 41", "wake event with the lost byte")
    check(s.at("AT") == b"\r\nOK\r\n", "awake: answers")
    check(s.at("AT+CSCLK=0") == b"\r\nOK\r\n", "AT+CSCLK=0")
    # Reboot
    s.ctl("reboot")
    check(s.read_until(b"PB DONE\r\n") == BOOT, "reboot: boot URCs")
    check(s.at("AT") == b"AT\r\r\nOK\r\n", "reboot: echo on again")
    # Unplug / replug
    check(s.ctl("unplug") == "ok", "unplug")
    try:
        got = os.read(s.fd, 100)
        check(got == b"", "host sees EOF after unplug")
    except OSError as e:
        check(True, "host sees %s after unplug" % os.strerror(e.errno))
    check(not os.path.lexists(s.link), "link removed while unplugged")
    os.close(s.fd)
    check(s.ctl("replug") == "ok", "replug")
    pty = s.event("pty ")
    check(os.readlink(s.link) == pty[4:], "link points at the new pty")
    s.open()
    check(s.read_until(b"PB DONE\r\n").endswith(BOOT), "replug: boot URCs")
    check(s.close() == 0, "stdin EOF: exit 0")

    # Variants
    s = Sim("--pin", "1234", "--reject", "AT+CNMI=2,2", "--no-sms")
    check(s.read_until(b"SIM PIN\r\n") == b"\r\n*ATREADY: 1\r\n\r\n+CPIN: SIM PIN\r\n",
          "--pin: +CPIN: SIM PIN")
    s.at("ATE0")
    s.at("AT+CMEE=1")
    check(s.at("AT+CIMI", b"11\r\n") == b"\r\n+CME ERROR: 11\r\n", "locked: CME 11")
    check(s.at('AT+CPIN="0000"', b"16\r\n") == b"\r\n+CME ERROR: 16\r\n", "wrong PIN: 16")
    check(s.at('AT+CPIN="1234"', b"PB DONE\r\n") ==
          b"\r\nOK\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n\r\nPB DONE\r\n", "PIN accepted")
    check(s.at("AT+CNMI=2,2,0,1,0", b"ERROR\r\n") == b"\r\nERROR\r\n", "--reject")
    check(s.at("AT+CMGF=0", b"ERROR\r\n") == b"\r\nERROR\r\n", "--no-sms: CMGF ERROR")
    check(s.ctl("quit") == "ok" and s.close() == 0, "quit")

    devsrv_console()
    devsrv_relay()

    print("%d failure(s)" % failures)
    return 1 if failures else 0


DEVSRV = os.path.join(os.path.dirname(SIM), "modem2mqtt-devsrv-sim")


class Devsrv(Sim):
    """modem2mqtt-devsrv-sim (its first line: `pty PATH` or `listen PORT`)."""

    def __init__(self, *args):
        self.p = subprocess.Popen([DEVSRV, *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        self.buf = b""
        self.events = []
        self.first = self.line(5)
        self.fd = None
        self.rx = b""
        if self.first.startswith("pty "):
            self.fd = os.open(self.first[4:], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self.fd)


def devsrv_console():
    c = Devsrv("console", "--regen", "MAC", "--refuse", "SOCK=4")
    c.send(b"+++")
    check(c.read_until(b"a") == b"a", "console: +++ -> a")
    c.send(b"a")
    check(c.read_until(b"+ok") == b"+ok", "console: a -> +ok")
    for cmd, want in [("AT+UART", b"\r\n+OK=115200,8,1,NONE,NFC\r\n"),
                      ("AT+REGEN", b"\r\n+OK=MAC\r\n"),
                      ("AT+MAC", b"\r\n+OK=D8B04CFC0001\r\n"),
                      ("XY", b"\r\n+ERR=1\r\n"),
                      ("AT+FOO", b"\r\n+ERR=2\r\n"),
                      ("AT+UART?", b"\r\n+ERR=3\r\n"),
                      ("AT+UART=fast", b"\r\n+ERR=4\r\n"),
                      ("AT+MAC=D8B04CFC0002", b"\r\n+ERR=5\r\n"),
                      ("AT+SOCK=TCPS,0.0.0.0,8899", b"\r\n+ERR=4\r\n"),
                      ("AT+REGEN=OFF", b"\r\n+OK\r\n"),
                      ("AT+REGEN", b"\r\n+OK=OFF\r\n"),
                      ("AT+ENTM", b"\r\n+OK\r\n")]:
        c.send(cmd.encode() + b"\r")
        got = c.read_until(b"\r\n") + c.read_until(b"\r\n")
        check(got == want, "console: %s -> %r" % (cmd, want))
    check(c.event("entm") == "entm", "console: entm event")
    c.send(b"AT+UART\r")
    check(c.quiet(200) == b"", "console: data mode again after AT+ENTM")
    check(c.close() == 0, "console: stdin EOF: exit 0")
    c = Devsrv("console", "--mute")
    c.send(b"+++")
    check(c.quiet(300) == b"", "console --mute: no answer to +++")
    c.close()


def devsrv_relay():
    import socket
    s = Sim()
    s.read_until(b"PB DONE\r\n")
    r = Devsrv("relay", s.link, "--registry", "hex:D8B04CFC0001", "--heartbeat", "HB!",
               "--heartbeat-ms", "50")
    port = int(r.first.split()[1])
    c = socket.create_connection(("127.0.0.1", port), 3)
    c.settimeout(3)
    got = b""
    while len(got) < 6:
        got += c.recv(100)
    check(got[:6] == bytes.fromhex("D8B04CFC0001"), "relay: MAC registry packet at connect")
    got = got[6:]
    c.sendall(b"AT\r")
    while b"OK\r\n" not in got.replace(b"HB!", b""):
        got += c.recv(100)
    check(got.replace(b"HB!", b"").startswith(b"AT\r\r\nOK\r\n"), "relay: AT answered")
    end = time.time() + 1
    while got.count(b"HB!") < 3 and time.time() < end:
        got += c.recv(100)
    check(got.count(b"HB!") >= 3, "relay: heartbeats while the modem is quiet")
    c.close()
    check(r.ctl("stats").startswith("ok heartbeats "), "relay: stats")
    r.close()
    s.close()


if __name__ == "__main__":
    sys.exit(main())
