#!/usr/bin/env python3
"""The Home Assistant Supervisor's MQTT service, for tests/container/addon.sh.

Answers GET /services/mqtt as the Supervisor does when the Mosquitto add-on
provides the service, and only with "Authorization: Bearer $SUPERVISOR_TOKEN"
(anything else: 401). The broker's host, port, user and password come from
the environment (FAKE_MQTT_HOST, FAKE_MQTT_PORT, FAKE_MQTT_USER,
FAKE_MQTT_PASSWORD), not from the command line.

Listens on 127.0.0.1 on a port the kernel picks; prints "listening PORT",
then one line per request: "GET /services/mqtt 200" or "... 401".
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Supervisor(BaseHTTPRequestHandler):
    def do_GET(self):
        expected = "Bearer " + os.environ["SUPERVISOR_TOKEN"]
        if self.headers.get("Authorization") != expected:
            self.answer(401, {"result": "error", "message": "Unauthorized"})
        elif self.path != "/services/mqtt":
            self.answer(404, {"result": "error", "message": "Not found"})
        else:
            self.answer(200, {"result": "ok", "data": {
                "addon": "core_mosquitto",
                "host": os.environ["FAKE_MQTT_HOST"],
                "port": int(os.environ["FAKE_MQTT_PORT"]),
                "ssl": False,
                "protocol": "3.1.1",
                "username": os.environ["FAKE_MQTT_USER"],
                "password": os.environ["FAKE_MQTT_PASSWORD"],
            }})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        print(f"{self.command} {self.path} {code}", flush=True)

    def log_message(self, *args):
        pass  # one line per request above, nothing on stderr


def main():
    server = HTTPServer(("127.0.0.1", 0), Supervisor)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
