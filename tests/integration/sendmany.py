#!/usr/bin/env python3
"""Sends one JSON body N times over keep-alive HTTP connections from T
threads; prints {"statuses": {code: count}, "seconds": s}. Connection
errors count under status "error" (the sender would retry those).
Usage: sendmany.py BASE_URL PATH BODY_FILE N THREADS"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

base, path, body_file, n, threads = sys.argv[1], sys.argv[2], sys.argv[3], \
    int(sys.argv[4]), int(sys.argv[5])
u = urllib.parse.urlparse(base)
body = open(body_file, "rb").read()
counts = {}
lock = threading.Lock()


def worker(k):
    c = None
    for _ in range(k):
        status = "error"
        try:
            if c is None:
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            c.request("POST", path, body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            status = str(r.status)
        except (OSError, http.client.HTTPException):
            c = None
        with lock:
            counts[status] = counts.get(status, 0) + 1


t0 = time.time()
ts = [threading.Thread(target=worker, args=(n // threads + (1 if i < n % threads else 0),))
      for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps({"statuses": counts, "seconds": round(time.time() - t0, 2)}))
