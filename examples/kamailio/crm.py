#!/usr/bin/env python3
"""A stand-in CRM for the Kamailio example: answers like Ringostat's help article.

    python3 crm.py PORT

The callee decides the answer: 380441234567 -> {"number_01": "3 80123456789"} (a phone),
"support" -> {"number_01": "manager_7"} (a SIP login), anything else -> 204 (no destination).

With CRM_UAS_A and CRM_UAS_B set ("127.0.0.1:PORT", two SIP phones; tests/kamailio.sh starts
them with SIPp), three callees answer a ring group of both, for the forking proxy
(kamailio-proxy.cfg): "serial-busy" (A busy, then B), "serial-noanswer" (A rings 2 s, then B)
and "parallel" (both at once, through a scheme with ring_strategy = "parallel"). Four more ring
one phone each, for the outcome reports: "outcome-answered" (the login manager_7, dialled at the
proxy's CALLROUTE_SIP_DOMAIN), "outcome-busy" (A), "outcome-noanswer" (A, 2 s) and
"outcome-cancelled" (A).

Outcome reports (callroute's delivery to the scheme's outcome_url) are POSTs to /outcome: the
CRM answers 200. With CRM_RECORD=FILE every request (routing and outcome) is appended to FILE as
one JSON line: {"path": ..., "idempotency_key": ..., "body": ...}.
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWERS = {"380441234567": "3 80123456789", "support": "manager_7"}

A, B = os.environ.get("CRM_UAS_A"), os.environ.get("CRM_UAS_B")
if A and B:
    ANSWERS.update({
        "serial-busy": [{"target": f"sip:busy@{A}", "ring_timeout_secs": 5},
                        {"target": f"sip:answer@{B}", "ring_timeout_secs": 10}],
        "serial-noanswer": [{"target": f"sip:ring@{A}", "ring_timeout_secs": 2},
                            {"target": f"sip:answer@{B}", "ring_timeout_secs": 10}],
        "parallel": [{"target": f"sip:ring@{A}"}, {"target": f"sip:answer@{B}"}],
        "outcome-answered": [{"target": "manager_7", "ring_timeout_secs": 10}],
        "outcome-busy": [{"target": f"sip:busy@{A}", "ring_timeout_secs": 10}],
        "outcome-noanswer": [{"target": f"sip:ring@{A}", "ring_timeout_secs": 2}],
        "outcome-cancelled": [{"target": f"sip:ring@{A}", "ring_timeout_secs": 10}],
    })
RECORD = os.environ.get("CRM_RECORD")


class Crm(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        call = json.loads(self.rfile.read(length) or b"{}")
        sys.stderr.write("crm: received %s %s\n" % (self.path, json.dumps(call)))
        if RECORD:
            with open(RECORD, "a") as f:
                f.write(json.dumps({"path": self.path, "body": call,
                                    "idempotency_key": self.headers.get("Idempotency-Key")}) + "\n")
        if self.path.startswith("/outcome"):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        number = ANSWERS.get(call.get("callee", ""))
        if number is None:
            self.send_response(204)
            self.end_headers()
            return
        body = json.dumps({"number_01": number}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("crm: " + (fmt % args) + "\n")


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Crm).serve_forever()
