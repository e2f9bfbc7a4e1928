"""Shared core of the scripted model server: HTTP on loopback, per-session scripts, holds, records.

A request's path starts with the session name (`/A/v1/messages`): the agent under test gets a base
URL ending in its session's name. Each session replays its script, one turn per model request
that offers tools (side requests — titles, classifiers — get a plain answer and do not advance the
script). A turn is `{"calls": [{"name": ..., "input": ...}, ...]}` (tool calls, in that order, in
one answer) or `{"text": ...}`; `"hold": NAME` on a turn keeps its request waiting until the test
releases it (`POST /_ctl/release/SESSION/NAME`). What the agent sent back for each turn is kept
and served at `GET /_ctl/log/SESSION`. `GET /_ctl/page/NAME` is a small HTML page titled NAME,
for a browser the agent drives (`{server}/_ctl/page/NAME` in a script).

The dialect modules turn a script turn into their API's answer and read tool results out of a
request; this module knows nothing of any one API.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WAIT_LIMIT = 300.0
MEANWHILE_LIMIT = 100


class State:
    def __init__(self, script):
        self.cond = threading.Condition()
        self.sessions = {}
        for name, turns in script.items():
            self.sessions[name] = {"turns": turns, "next": 0, "log": [], "side": 0,
                                   "meanwhile": 0}
        self.reached = set()
        self.released = set()

    def session(self, name):
        with self.cond:
            return self.sessions.setdefault(name, {"turns": [], "next": 0, "log": [], "side": 0,
                                                 "meanwhile": 0})

    def next_turn(self, name, record, context, offered):
        """Records what the agent sent and returns the turn to answer with (after its hold).
        The session's first turn also keeps `context()`, all the request's text (where the
        agent puts what its SessionStart hooks said). `offered`: the names of the tools the
        request offers (a namespace's name for its tools). A session's first turn may have
        `"meanwhile"` (a turn): it is answered only by a request that offers each of its calls'
        tools, and `meanwhile` answers the others, logged as side requests (an agent whose MCP
        servers are still starting when it first asks its model), at most MEANWHILE_LIMIT times
        (then the turn is answered anyway, and its calls fail in the agent)."""
        s = self.session(name)
        record["t"] = time.monotonic()
        with self.cond:
            turn = s["turns"][s["next"]] if s["next"] < len(s["turns"]) else {"text": "done"}
            missing = [c for c in turn.get("calls", [])
                       if c.get("namespace", c["name"]) not in offered]
            if "meanwhile" in turn and missing and s["meanwhile"] < MEANWHILE_LIMIT:
                s["meanwhile"] += 1
                record["side"] = True
                s["log"].append(record)
                return turn["meanwhile"]
            if s["next"] == 0:
                record["text"] = context()
            s["log"].append(record)
            if s["next"] < len(s["turns"]):
                s["next"] += 1
            self.cond.notify_all()
            hold = turn.get("hold")
            if hold:
                self.reached.add((name, hold))
                self.cond.notify_all()
                self.cond.wait_for(lambda: (name, hold) in self.released, WAIT_LIMIT)
        return turn

    def side_request(self, name, record):
        s = self.session(name)
        with self.cond:
            s["side"] += 1
            record["side"] = True
            s["log"].append(record)

    def wait_reached(self, name, hold, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: (name, hold) in self.reached, timeout)

    def release(self, name, hold):
        with self.cond:
            self.released.add((name, hold))
            self.cond.notify_all()

    def log(self, name):
        s = self.session(name)
        with self.cond:
            return json.loads(json.dumps(s["log"]))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    dialects = []

    def log_message(self, fmt, *args):
        if os.environ.get("MODEL_SERVER_VERBOSE"):
            sys.stderr.write("model: " + (fmt % args) + "\n")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def send_body(self, data, content_type, code=200):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, obj, code=200):
        self.send_body(json.dumps(obj).encode(), "application/json", code)

    def send_sse(self, events):
        """`events`: (event name or None, JSON object) pairs, sent as one complete SSE stream."""
        chunks = []
        for name, obj in events:
            if name:
                chunks.append("event: %s\n" % name)
            chunks.append("data: %s\n\n" % json.dumps(obj))
        self.send_body("".join(chunks).encode(), "text/event-stream")

    def send_page(self, name):
        page = "<!doctype html><title>%s</title><h1>page %s</h1>" % (name, name)
        self.send_body(page.encode(), "text/html; charset=utf-8")

    def control(self, parts):
        # /_ctl/wait/S/H, /_ctl/release/S/H, /_ctl/log/S, /_ctl/page/NAME
        verb = parts[1] if len(parts) > 1 else ""
        if verb == "wait" and len(parts) == 4:
            ok = self.state.wait_reached(parts[2], parts[3], WAIT_LIMIT)
            return self.send_json({"reached": ok}, 200 if ok else 504)
        if verb == "release" and len(parts) == 4:
            self.state.release(parts[2], parts[3])
            return self.send_json({"released": True})
        if verb == "log" and len(parts) == 3:
            return self.send_json(self.state.log(parts[2]))
        if verb == "page" and len(parts) == 3:
            return self.send_page(parts[2])
        return self.send_json({"error": "unknown control call"}, 404)

    def dispatch(self, method):
        path, _, query = self.path.partition("?")
        parts = [p for p in path.split("/") if p]
        body = self.read_body() if method == "POST" else {}
        if parts and parts[0] == "_ctl":
            return self.control(parts)
        if not parts:
            return self.send_json({"error": "no session in path"}, 404)
        session, rest = parts[0], "/" + "/".join(parts[1:])
        for d in self.dialects:
            if d.handles(method, rest):
                return d.answer(self, session, method, rest, query, body)
        self.state.side_request(session, {"path": rest, "method": method})
        return self.send_json({"error": "not scripted: %s %s" % (method, rest)}, 404)

    def do_POST(self):
        self.dispatch("POST")

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def serve(dialects, script, lifetime):
    """Serves until stdin closes (the test is gone) or `lifetime` seconds pass; prints the port.
    `{server}` in the script stands for this server's own base URL (`http://127.0.0.1:PORT`)."""
    Handler.dialects = dialects
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    base = "http://127.0.0.1:%d" % server.server_address[1]
    Handler.state = State(json.loads(json.dumps(script).replace("{server}", base)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Event().wait(lifetime)
    sys.stderr.write("model: lifetime of %ss over, stopping\n" % lifetime)
    os._exit(0)


def text_of(obj):
    """Every string inside a JSON value, joined: what a test greps a request for."""
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(obj)
    return "\n".join(out)
