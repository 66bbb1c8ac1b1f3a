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
  device_script   replies to the first device-code polls, in order, before
                  the person's answer counts (e.g. ["authorization_pending",
                  "slow_down"])
  device_expires_in, device_interval   for /device (default 60, 1)
  client_secret   the secret client_credentials with a secret must carry
  client_cert     PEM certificate whose key must sign a client assertion
                  (RS256, x5t = its SHA-1 thumbprint, aud = the token URL)
  sa_public_key   PEM certificate or public key of the service account
                  (the JWT bearer grant's RS256 signature is checked)
  sa_email        its client_email (the JWT's iss)
  POST /device    the device authorization request (RFC 8628 3.1):
                  device_code, user_code, verification_uri (/verify)
  POST /verify    the person's browser: user_code and action=approve|deny
  POST /token     also grant_type=urn:ietf:params:oauth:grant-type:
                  device_code (authorization_pending until approved,
                  slow_down from the script, expired_token after
                  device_expires_in, access_denied), client_credentials
                  (secret or client assertion) and
                  urn:ietf:params:oauth:grant-type:jwt-bearer
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
            path = urllib.parse.urlsplit(self.path).path
            n = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
            ctl = store.control()
            if path == "/device":
                return self.device(form, ctl)
            if path == "/verify":
                return self.verify(form)
            if path != "/token":
                return self.reply(404, {"error": "not_found"})
            gt = form.get("grant_type")
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
                err = self.check(st, form, fail, ctl)
                if err:
                    store.record({"grant_type": gt, "result": err, "t": time.time()})
                    store.save(st)
                    return self.reply(400, {"error": err,
                                            "error_description": "fake server: " + err})
                toks = ctl.get("access_tokens") or []
                i = len(st["issued"])
                access = toks[i] if i < len(toks) else "at-" + secrets.token_urlsafe(16)
                refresh = None
                if gt in ("authorization_code", "refresh_token", DEVICE_GRANT):
                    refresh = "rt-" + secrets.token_urlsafe(16)
                    st["refresh"][refresh] = form.get("client_id")
                st["issued"].append(access)
                store.save(st)
            store.record({"grant_type": gt, "result": "ok", "n": i + 1, "t": time.time(),
                          "refresh_sha": refresh and hashlib.sha256(refresh.encode()).hexdigest()})
            answer = {"access_token": access, "token_type": "Bearer",
                      "expires_in": int(ctl.get("expires_in", 3600))}
            if refresh:
                answer["refresh_token"] = refresh
            return self.reply(200, answer)

        def device(self, form, ctl):
            if not form.get("client_id"):
                return self.reply(400, {"error": "invalid_client"})
            with store.lock:
                st = store.state()
                dc = "dc-" + secrets.token_urlsafe(16)
                uc = "%04d-%04d" % (secrets.randbelow(10000), secrets.randbelow(10000))
                st.setdefault("devices", {})[dc] = {
                    "client_id": form["client_id"], "user_code": uc, "answer": None,
                    "polls": 0, "until": time.time() + int(ctl.get("device_expires_in", 60))}
                store.save(st)
            store.record({"endpoint": "device", "scope": form.get("scope", ""),
                          "t": time.time()})
            port = self.server.server_address[1]
            return self.reply(200, {"device_code": dc, "user_code": uc,
                                    "verification_uri": "https://localhost:%d/verify" % port,
                                    "expires_in": int(ctl.get("device_expires_in", 60)),
                                    "interval": int(ctl.get("device_interval", 1))})

        def verify(self, form):
            with store.lock:
                st = store.state()
                for d in st.get("devices", {}).values():
                    if d["user_code"] == form.get("user_code"):
                        d["answer"] = form.get("action", "approve")
                        store.save(st)
                        store.record({"endpoint": "verify", "result": d["answer"]})
                        return self.reply(200, {"ok": True})
            return self.reply(400, {"error": "unknown user_code"})

        def check(self, st, form, fail, ctl):
            gt = form.get("grant_type")
            if gt == DEVICE_GRANT:
                d = st.get("devices", {}).get(form.get("device_code", ""))
                if d is None or d["client_id"] != form.get("client_id"):
                    return "invalid_grant"
                d["polls"] += 1
                script = ctl.get("device_script") or []
                if d["polls"] <= len(script):
                    return script[d["polls"] - 1]
                if time.time() > d["until"]:
                    return "expired_token"
                if d["answer"] == "deny":
                    return "access_denied"
                if d["answer"] != "approve":
                    return "authorization_pending"
                del st["devices"][form["device_code"]]
                return None
            if gt == "client_credentials":
                return self.check_client(form, ctl)
            if gt == JWT_GRANT:
                return check_jwt(form.get("assertion", ""), ctl.get("sa_public_key"),
                                 {"iss": ctl.get("sa_email"), "aud": self.token_url(),
                                  "sub": ctl.get("sa_sub")}, None, store)
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

        def token_url(self):
            return "https://localhost:%d/token" % self.server.server_address[1]

        def check_client(self, form, ctl):
            if form.get("client_id") != ctl.get("client_id", form.get("client_id")):
                return "invalid_client"
            if form.get("client_assertion_type") == ASSERTION_TYPE:
                return check_jwt(form.get("client_assertion", ""), ctl.get("client_cert"),
                                 {"iss": form.get("client_id"), "sub": form.get("client_id"),
                                  "aud": self.token_url()}, ctl.get("client_cert"), store)
            if ctl.get("client_secret") is None or \
                    form.get("client_secret") != ctl.get("client_secret"):
                return "invalid_client"
            return None
    return H


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_jwt(jwt, key_file, claims, x5t_cert, store):
    """None when jwt is an RS256 JWT signed by the key of key_file (a PEM
    certificate or public key) whose claims match, within its lifetime;
    else an OAuth2 error code.  What was checked goes to requests.log."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    try:
        h64, c64, s64 = jwt.split(".")
        header, body = json.loads(b64url_decode(h64)), json.loads(b64url_decode(c64))
        pem = open(key_file, "rb").read()
        if b"CERTIFICATE" in pem:
            cert = x509.load_pem_x509_certificate(pem)
            pub = cert.public_key()
        else:
            cert, pub = None, serialization.load_pem_public_key(pem)
        pub.verify(b64url_decode(s64), (h64 + "." + c64).encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except (ValueError, InvalidSignature, TypeError, OSError) as e:
        store.record({"jwt": "bad", "why": type(e).__name__})
        return "invalid_client" if x5t_cert else "invalid_grant"
    seen = {"jwt": "signature ok", "header": header,
            "claims": {k: v for k, v in body.items() if k != "jti"}}
    now = time.time()
    bad = header.get("alg") != "RS256" or not (body.get("iat", 0) - 60 <= now < body.get("exp", 0))
    for k, v in claims.items():
        if v is not None and body.get(k) != v:
            bad = True
    if x5t_cert:
        want = b64url_decode(header.get("x5t", "")) if header.get("x5t") else b""
        bad = bad or want != cert.fingerprint(hashes.SHA1()) or not body.get("jti")
    seen["result"] = "bad claims" if bad else "ok"
    store.record(seen)
    if bad:
        return "invalid_client" if x5t_cert else "invalid_grant"
    return None


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
