#!/usr/bin/python3
"""oauthd.py - a fake OAuth2 authorization server for postern's tests.

    /usr/bin/python3 oauthd.py --dir DIR --cert CERT --key KEY
                               [--port N] [--lifetime SECONDS]

HTTPS (the certificate from the tests' throwaway CA) on 127.0.0.1, port 0
unless --port is given; prints the port as one line once listening and
serves until killed or until the lifetime (default 120 s) is over.

  GET  /authorize   checks client_id, redirect_uri (http://127.0.0.1:PORT/),
                    response_type=code, state, code_challenge and
                    code_challenge_method=S256, then redirects (302) to
                    redirect_uri?code=...&state=... (what a browser does
                    after the user approves)
  POST /token       grant_type=authorization_code: the code (once), the
                    client_id, the redirect_uri and the PKCE verifier
                    (S256) must match; grant_type=refresh_token: a refresh
                    token it issued and has not rotated away.  Answers
                    access_token, expires_in, refresh_token (a new one
                    every time: rotation) as JSON.

State (codes, live refresh tokens, what was issued) is kept in
DIR/state.json, so a restarted server on the same port goes on.  The test
steers it through DIR/control.json, read at every request:
  access_tokens   the access tokens to issue, in order (then random ones)
  expires_in      seconds (default 3600)
  fail            null | "invalid_grant" | "500" | "hang": how /token fails
Every /token request is recorded as one JSON line in DIR/requests.log
({"grant_type", "result"}); never the tokens' values in the clear.
"""

import argparse
import base64
import hashlib
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Store:
    def __init__(self, d):
        self.dir = d
        self.lock = threading.Lock()

    def _read(self, name, default):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return default

    def state(self):
        return self._read("state.json", {"codes": {}, "refresh": {}, "issued": []})

    def save(self, st):
        tmp = os.path.join(self.dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, os.path.join(self.dir, "state.json"))

    def control(self):
        return self._read("control.json", {})

    def record(self, entry):
        with open(os.path.join(self.dir, "requests.log"), "a") as f:
            f.write(json.dumps(entry) + "\n")


def make_handler(store):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("oauthd: " + (fmt % args) + "\n")

        def reply(self, code, obj=None, headers=None):
            body = json.dumps(obj).encode() if obj is not None else b""
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if obj is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            if u.path != "/authorize":
                return self.reply(404, {"error": "not_found"})
            q = dict(urllib.parse.parse_qsl(u.query))
            ru = q.get("redirect_uri", "")
            ok = (q.get("response_type") == "code" and q.get("client_id")
                  and ru.startswith("http://127.0.0.1:") and q.get("state")
                  and q.get("code_challenge_method") == "S256"
                  and len(q.get("code_challenge", "")) == 43)
            if not ok:
                store.record({"endpoint": "authorize", "result": "bad request"})
                return self.reply(400, {"error": "invalid_request", "query": q})
            with store.lock:
                st = store.state()
                code = "code-" + secrets.token_urlsafe(12)
                st["codes"][code] = {"client_id": q["client_id"], "redirect_uri": ru,
                                     "challenge": q["code_challenge"],
                                     "scope": q.get("scope", "")}
                store.save(st)
            store.record({"endpoint": "authorize", "result": "redirect",
                          "scope": q.get("scope", "")})
            loc = ru + "?" + urllib.parse.urlencode({"code": code, "state": q["state"]})
            return self.reply(302, headers={"Location": loc})

        def do_POST(self):
            if urllib.parse.urlsplit(self.path).path != "/token":
                return self.reply(404, {"error": "not_found"})
            n = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
            gt = form.get("grant_type")
            ctl = store.control()
            fail = ctl.get("fail")
            if fail == "hang":
                store.record({"grant_type": gt, "result": "hang"})
                time.sleep(60)
                return None
            if fail == "500":
                store.record({"grant_type": gt, "result": "500"})
                return self.reply(500, {"error": "server_error"})
            with store.lock:
                st = store.state()
                err = self.check(st, form, fail)
                if err:
                    store.record({"grant_type": gt, "result": err})
                    store.save(st)
                    return self.reply(400, {"error": err,
                                            "error_description": "fake server: " + err})
                toks = ctl.get("access_tokens") or []
                i = len(st["issued"])
                access = toks[i] if i < len(toks) else "at-" + secrets.token_urlsafe(16)
                refresh = "rt-" + secrets.token_urlsafe(16)
                st["issued"].append(access)
                st["refresh"][refresh] = form.get("client_id")
                store.save(st)
            store.record({"grant_type": gt, "result": "ok", "n": i + 1,
                          "refresh_sha": hashlib.sha256(refresh.encode()).hexdigest()})
            return self.reply(200, {"access_token": access, "token_type": "Bearer",
                                    "expires_in": int(ctl.get("expires_in", 3600)),
                                    "refresh_token": refresh})

        def check(self, st, form, fail):
            gt = form.get("grant_type")
            if gt == "authorization_code":
                c = st["codes"].pop(form.get("code", ""), None)
                if c is None:
                    return "invalid_grant"
                if form.get("client_id") != c["client_id"] or \
                        form.get("redirect_uri") != c["redirect_uri"]:
                    return "invalid_grant"
                v = form.get("code_verifier", "")
                if b64url(hashlib.sha256(v.encode()).digest()) != c["challenge"]:
                    return "invalid_grant"
                return None
            if gt == "refresh_token":
                rt = form.get("refresh_token", "")
                if fail == "invalid_grant" or rt not in st["refresh"]:
                    return "invalid_grant"
                if st["refresh"].pop(rt) != form.get("client_id"):
                    return "invalid_client"
                return None  # rotated: the old one is gone
            return "unsupported_grant_type"
    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(Store(a.dir)))
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    threading.Timer(a.lifetime, lambda: os._exit(0)).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
