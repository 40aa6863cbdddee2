#!/usr/bin/env python3
"""A webhook receiver for the notification tests: one JSON line per POST
(time, path, Idempotency-Key, body) appended to LOG; the answer's status
depends on the path:
  /ok             200
  /flaky/N        500 for the first N requests to this path, then 200
  /down           500 always
  /reject         400 always
  /gate/NAME      503 while the file LOG.closed exists, then 200
Usage: receiver.py PORTFILE LOG [ADDRESS]
  (binds a free port on ADDRESS, default 127.0.0.1, and writes it)"""
import http.server
import json
import os
import sys
import threading
import time

port_file, log_path = sys.argv[1], sys.argv[2]
seen = {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace")
        with lock:
            seen[self.path] = seen.get(self.path, 0) + 1
            count = seen[self.path]
        status = 200
        if self.path.startswith("/flaky/"):
            status = 500 if count <= int(self.path.split("/")[2]) else 200
        elif self.path == "/down":
            status = 500
        elif self.path == "/reject":
            status = 400
        elif self.path.startswith("/gate/"):
            status = 503 if os.path.exists(log_path + ".closed") else 200
        with lock:
            with open(log_path, "a") as f:
                f.write(json.dumps({"t": time.time(), "path": self.path,
                                    "key": self.headers.get("Idempotency-Key"),
                                    "type": self.headers.get("Content-Type"),
                                    "status": status, "body": body}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


address = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
srv = http.server.ThreadingHTTPServer((address, 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
