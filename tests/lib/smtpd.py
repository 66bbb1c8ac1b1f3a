#!/usr/bin/python3
"""smtpd.py - the SMTP server postern's integration tests talk to.

    /usr/bin/python3 smtpd.py --config CONFIG.json [--lifetime SECONDS]

Binds 127.0.0.1 (or config "listen") on port 0 (or config "port"), prints
the port on stdout as one line once it is listening, and serves until
killed or until the lifetime (default 120 s) is over.

Two modes.  "aiosmtpd" (default) is a real SMTP server built on aiosmtpd,
with fault injection.  "raw" plays a fixed script on every connection, for
faults aiosmtpd cannot produce (stalls before the greeting or inside a TLS
handshake, a greeting and then a close, ...).

Config keys (all optional):
  mode            "aiosmtpd" | "raw"
  outdir          where records go (default: a new temp dir, printed to stderr)
  listen, port    address and port to bind ("127.0.0.1", 0)
  tls             "plain" | "starttls" | "implicit"
  cert, key       PEM files for TLS
  tls_max         "1.2" to cap the server at TLS 1.2
  tls_ciphers     OpenSSL cipher list for TLS 1.2 (with tls_max "1.2": the
                  only suites the server accepts)
  require_starttls  refuse other commands before STARTTLS (default false)
  users           {"user": "password"}: AUTH PLAIN and LOGIN against these
  auth_mechanisms list of offered mechanisms, e.g. ["LOGIN"] (default
                  PLAIN and LOGIN); also SCRAM-SHA-256, XOAUTH2,
                  OAUTHBEARER, EXTERNAL (see below)
  scram_iterations  SCRAM-SHA-256 iteration count sent (default 4096); the
                  server side is real SCRAM against the "users" passwords
  scram_bad_signature  send a wrong server signature (v=)
  scram_final     "334" (default: v= in a 334 challenge, then 235) or
                  "235" (v= as the text of the 235 reply)
  oauth_token     the access token XOAUTH2 and OAUTHBEARER accept; any
                  other token gets the RFC 7628 334 error challenge (base64
                  JSON, "oauth_error" or a default), then 535 after the
                  client's answer (recorded as "* OAUTH error challenge
                  answered with b'...'")
  client_ca       PEM CA file: the TLS server requests a client
                  certificate issued by it (optional); AUTH EXTERNAL
                  accepts a client that presented one
  auth_require_tls  offer AUTH only inside TLS (default: true unless tls=plain)
  auth_required   MAIL needs AUTH first (default: true when users are given)
  auth_reply      reply to every AUTH command, e.g. "535 5.7.8 no"
  ehlo_extra      keywords added to EHLO, e.g. ["PIPELINING"]
  ehlo_remove     keywords taken out, e.g. ["8BITMIME"]
  ehlo_reply      refuse EHLO with this reply (HELO still works)
  dsn             offer DSN and accept RET/ENVID/NOTIFY/ORCPT (recorded in
                  mail_options / rcpt_options)
  chunking        offer CHUNKING and take BDAT (aiosmtpd has no BDAT)
  smtputf8        offer SMTPUTF8 (default false)
  size_limit      SIZE (default 64 MiB)
  greeting        replaces "220 ..."; a str or a list of lines; a non-2xx
                  greeting is followed by closing the connection
  mail_reply      reply to MAIL (instead of 250)
  rcpt_replies    {"addr@example.com": "550 5.1.1 no such user"}
  rcpt_default    reply to every other RCPT
  data_reply      reply after DATA's final dot (instead of 250); the
                  message is still recorded, with this reply
  data_drop       close the connection right after the final dot, no reply
  data_stall      seconds to wait after the final dot before replying
  script          (raw mode) list of steps played on each connection:
                    ["send", "220 hello"]   send a line (CRLF added)
                    ["recv"]                read one line (recorded)
                    ["sleep", 30]           say nothing for a while
                    ["close"]               close the connection
                    ["sendraw", "bytes"]    send the string as it is (each
                                            char U+0000..U+00FF is one
                                            byte; no CRLF added), one write
                    ["repeat", N, "250-x"]  send the line (CRLF added) N
                                            times, N = -1: until the client
                                            goes away or the lifetime ends
                    ["stream", N, "x"]      send N bytes repeating the
                                            pattern (no line end)
                    ["trickle", "text", s]  send text one byte every s
                                            seconds (no CRLF added)
                    ["recv_until", "."]     read lines until one equals the
                                            text (the lines read are
                                            counted, not recorded)
                    ["recvraw"]             read everything until EOF (at
                                            most 4 MiB) into raw-<conn>.bin
                    ["tls"]                 start TLS as the server (cert,
                                            key), e.g. after "220" to
                                            STARTTLS
                    ["abort"]               drop the connection at once,
                                            inside TLS without close_notify
                    ["recv_alone"]          read one line (recorded); close
                                            the connection when more bytes
                                            came with it
                  after the last step the connection is read until EOF.
                  With tls = "implicit" the raw server speaks TLS from the
                  first byte.

Records in outdir:
  commands.log    every command line received, one per line, CRLF removed;
                  AUTH lines as "AUTH <MECH>" or "AUTH <MECH> ..." (the
                  initial response is not written)
  transcript.log  "<conn> C: ..." / "<conn> S: ..." / "<conn> * ..." lines
  msg-N.json      {"mail_from", "rcpt_tos", "mail_options", "rcpt_options",
                   "reply", "conn", "tls", "auth"} - written after msg-N.eml
  msg-N.eml       the exact message bytes received (dot-unstuffed)
The null sender is recorded as mail_from "".
"""

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import sys
import tempfile

NULL_SENDER = "postern-null-sender@null.invalid"


class Recorder:
    """Writes the records; one per server process, single-threaded."""

    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.nconn = 0
        self.nmsg = 0
        self.cmd = open(os.path.join(outdir, "commands.log"), "a", buffering=1,
                        encoding="utf-8", errors="backslashreplace")
        self.tr = open(os.path.join(outdir, "transcript.log"), "a", buffering=1,
                       encoding="utf-8", errors="backslashreplace")

    def new_conn(self, peer):
        self.nconn += 1
        self.event(self.nconn, "*", "connection from %s" % (peer,))
        return self.nconn

    def event(self, conn, tag, text):
        self.tr.write("%d %s %s\n" % (conn, tag if tag == "*" else tag + ":", text))

    def command(self, conn, line, pending=0):
        text = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
        m = re.match(r"(?i)(AUTH)\s+(\S+)(\s+\S+)?", text)
        if m:
            text = "AUTH %s%s" % (m.group(2), " ..." if m.group(3) else "")
        self.cmd.write(text + "\n")
        self.event(conn, "C", text + ("   [+%d bytes already received]" % pending
                                      if pending else ""))

    def message(self, conn, envelope, content, reply, tls, auth):
        self.nmsg += 1
        base = os.path.join(self.outdir, "msg-%d" % self.nmsg)
        with open(base + ".eml", "wb") as f:
            f.write(content)
        mail_from = envelope.mail_from
        if mail_from == NULL_SENDER:
            mail_from = ""
        rec = {"mail_from": mail_from, "rcpt_tos": list(envelope.rcpt_tos),
               "mail_options": list(envelope.mail_options),
               "rcpt_options": list(envelope.rcpt_options),
               "reply": reply, "conn": conn, "tls": tls, "auth": auth,
               "size": len(content)}
        tmp = base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, base + ".json")
        self.event(conn, "*", "message %d recorded (%d bytes), reply %r" %
                   (self.nmsg, len(content), reply))


def tls_context(cfg):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.get("tls_max") == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if cfg.get("tls_ciphers"):
        ctx.set_ciphers(cfg["tls_ciphers"])
    if cfg.get("client_ca"):
        ctx.load_verify_locations(cfg["client_ca"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


# ---------------------------------------------------------------- AUTH
# Mechanisms aiosmtpd does not have, as auth_* methods of the handler
# (aiosmtpd maps auth_SCRAM__SHA__256 to "SCRAM-SHA-256").

EXTRA_MECHS = ("SCRAM-SHA-256", "XOAUTH2", "OAUTHBEARER", "EXTERNAL")
DEFAULT_OAUTH_ERROR = {"status": "401", "schemes": "bearer",
                       "scope": "https://mail.example.com/"}


def _scram_keys(password, salt, iters):
    import hashlib
    import hmac
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iters)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored, server_key


def _scram_unescape(name):
    if re.search(r"=(?!2C|3D)", name):
        return None
    return name.replace("=2C", ",").replace("=3D", "=")


def make_auth_mixin(cfg, rec):
    """A handler base class with the extra mechanisms, configured by cfg."""
    import base64
    import hashlib
    import hmac
    from aiosmtpd.smtp import AuthResult, MISSING

    users = cfg.get("users") or {}
    token = cfg.get("oauth_token")

    def ok(server, session, mech, login):
        rec.event(server.conn_id, "*", "AUTH %s as %r: accepted" % (mech, login))
        session.postern_auth = {"mechanism": mech, "login": login}
        return AuthResult(success=True, auth_data=None)

    def refused(server, mech, login, why):
        rec.event(server.conn_id, "*", "AUTH %s as %r: refused (%s)" % (mech, login, why))
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")

    async def initial(server, args):
        """The initial response (or the answer to an empty 334), decoded;
        None when the exchange already ended."""
        if len(args) < 2:
            data = await server.challenge_auth("")
            return None if data is MISSING else data
        if args[1] == "=":
            return b""
        try:
            return base64.b64decode(args[1], validate=True)
        except Exception:
            await server.push("501 5.5.2 Can't decode base64")
            return None

    async def oauth_refuse(server, mech, login, got):
        err = json.dumps(cfg.get("oauth_error", DEFAULT_OAUTH_ERROR))
        rec.event(server.conn_id, "*", "AUTH %s as %r: bad token %r, sending the error "
                  "challenge" % (mech, login, got[:12]))
        answer = await server.challenge_auth(err)
        rec.event(server.conn_id, "*", "OAUTH error challenge answered with %r" %
                  (answer if answer is not MISSING else "MISSING",))
        if answer is MISSING:  # "*" or bad base64: aiosmtpd replied already
            return AuthResult(success=False, handled=True)
        return refused(server, mech, login, "bad token")

    class AuthMixin:
        async def auth_SCRAM__SHA__256(self, server, args):
            session = server.session
            first = await initial(server, args)
            if first is None:
                return AuthResult(success=False, handled=True)
            m = re.fullmatch(rb"n,,(n=([^,]*),r=([!-+--~]+))", first)
            if not m:
                await server.push("501 5.5.2 malformed SCRAM client-first message")
                return AuthResult(success=False, handled=True)
            bare = m.group(1).decode()
            login = _scram_unescape(m.group(2).decode())
            if login not in users:
                return refused(server, "SCRAM-SHA-256", login, "unknown user")
            salt = os.urandom(16)
            iters = int(cfg.get("scram_iterations", 4096))
            stored, server_key = _scram_keys(users[login], salt, iters)
            snonce = m.group(3).decode() + base64.b64encode(os.urandom(18)).decode()
            sfirst = "r=%s,s=%s,i=%d" % (snonce, base64.b64encode(salt).decode(), iters)
            final = await server.challenge_auth(sfirst)
            if final is MISSING:
                return AuthResult(success=False, handled=True)
            m = re.fullmatch(rb"(c=biws,r=([^,]+)),p=([A-Za-z0-9+/=]+)", final)
            if not m or m.group(2).decode() != snonce:
                await server.push("501 5.5.2 malformed SCRAM client-final message")
                return AuthResult(success=False, handled=True)
            authmsg = ("%s,%s,%s" % (bare, sfirst, m.group(1).decode())).encode()
            proof = base64.b64decode(m.group(3))
            sig = hmac.new(stored, authmsg, "sha256").digest()
            client_key = bytes(a ^ b for a, b in zip(proof, sig))
            if len(proof) != 32 or hashlib.sha256(client_key).digest() != stored:
                return refused(server, "SCRAM-SHA-256", login, "invalid proof")
            ssig = bytearray(hmac.new(server_key, authmsg, "sha256").digest())
            if cfg.get("scram_bad_signature"):
                ssig[0] ^= 1
            v = "v=" + base64.b64encode(bytes(ssig)).decode()
            if cfg.get("scram_final", "334") == "235":
                ok(server, session, "SCRAM-SHA-256", login)
                return AuthResult(success=True, auth_data=None,
                                  message="235 " + base64.b64encode(v.encode()).decode())
            answer = await server.challenge_auth(v)
            if answer is MISSING:
                rec.event(server.conn_id, "*", "SCRAM-SHA-256: client cancelled after v=")
                return AuthResult(success=False, handled=True)
            return ok(server, session, "SCRAM-SHA-256", login)

        async def auth_XOAUTH2(self, server, args):
            data = await initial(server, args)
            if data is None:
                return AuthResult(success=False, handled=True)
            m = re.fullmatch(rb"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01", data)
            if not m:
                await server.push("501 5.5.2 malformed XOAUTH2 response")
                return AuthResult(success=False, handled=True)
            login, got = m.group(1).decode(), m.group(2).decode()
            if token is not None and got == token:
                return ok(server, server.session, "XOAUTH2", login)
            return await oauth_refuse(server, "XOAUTH2", login, got)

        async def auth_OAUTHBEARER(self, server, args):
            data = await initial(server, args)
            if data is None:
                return AuthResult(success=False, handled=True)
            m = re.fullmatch(rb"n,(?:a=([^,]*))?,\x01((?:[A-Za-z]+=[^\x01]*\x01)*)\x01", data)
            if not m:
                await server.push("501 5.5.2 malformed OAUTHBEARER response")
                return AuthResult(success=False, handled=True)
            login = (m.group(1) or b"").decode()
            kv = dict(p.split(b"=", 1) for p in m.group(2).split(b"\x01") if p)
            got = kv.get(b"auth", b"").decode()
            rec.event(server.conn_id, "*", "OAUTHBEARER host=%r port=%r" %
                      (kv.get(b"host", b"").decode(), kv.get(b"port", b"").decode()))
            if token is not None and got == "Bearer " + token:
                return ok(server, server.session, "OAUTHBEARER", login)
            return await oauth_refuse(server, "OAUTHBEARER", login, got)

        async def auth_EXTERNAL(self, server, args):
            data = await initial(server, args)
            if data is None:
                return AuthResult(success=False, handled=True)
            t = server.transport
            obj = t.get_extra_info("ssl_object") if t is not None else None
            cert = obj.getpeercert() if obj is not None else None
            if not cert:
                return refused(server, "EXTERNAL", data.decode(), "no client certificate")
            cn = dict(x[0] for x in cert.get("subject", ())).get("commonName", "")
            return ok(server, server.session, "EXTERNAL", cn)

    return AuthMixin


# ---------------------------------------------------------------- aiosmtpd

def run_aiosmtpd(cfg, rec, loop):
    from aiosmtpd.smtp import SMTP, AuthResult, MISSING

    tls = cfg.get("tls", "plain")
    users = cfg.get("users") or {}
    ctx = tls_context(cfg) if tls in ("starttls", "implicit") else None

    def conn_tls(server):
        t = server.transport
        obj = t.get_extra_info("ssl_object") if t is not None else None
        return obj.version() if obj is not None else None

    class Handler(make_auth_mixin(cfg, rec)):
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            if "ehlo_reply" in cfg:
                return [cfg["ehlo_reply"]]
            session.host_name = hostname
            remove = set(k.upper() for k in cfg.get("ehlo_remove", []))
            out = []
            for r in responses[:-1]:
                words = r[4:].split()
                if not words or words[0].upper() in remove:
                    continue
                if words[0].upper() == "AUTH" and len(words) == 1:
                    continue  # no mechanism left to offer
                out.append(r)
            extra = list(cfg.get("ehlo_extra", []))
            extra += ["DSN"] if cfg.get("dsn") else []
            extra += ["CHUNKING"] if cfg.get("chunking") else []
            for kw in extra:
                out.append("250-" + kw)
            out.append("250 HELP")
            return out

        async def handle_AUTH(self, server, session, envelope, args):
            if "auth_reply" in cfg:
                return cfg["auth_reply"]
            return MISSING

        async def handle_MAIL(self, server, session, envelope, address, options):
            if "mail_reply" in cfg:
                return cfg["mail_reply"]
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 2.1.0 OK"

        async def handle_RCPT(self, server, session, envelope, address, options):
            reply = cfg.get("rcpt_replies", {}).get(address, cfg.get("rcpt_default"))
            if reply:
                return reply
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 2.1.5 OK"

        async def handle_DATA(self, server, session, envelope):
            reply = cfg.get("data_reply", "250 2.0.0 OK queued")
            if cfg.get("data_drop"):
                reply = None
            rec.message(server.conn_id, envelope, envelope.original_content, reply,
                        conn_tls(server), getattr(session, "postern_auth", None))
            if cfg.get("data_stall"):
                rec.event(server.conn_id, "*", "stalling %s s" % cfg["data_stall"])
                await asyncio.sleep(float(cfg["data_stall"]))
            if cfg.get("data_drop"):
                rec.event(server.conn_id, "*", "dropping the connection")
                server.transport.abort()
                await asyncio.sleep(3600)
            return reply

    def authenticator(server, session, envelope, mechanism, data):
        login = data.login.decode("utf-8", "replace")
        password = data.password.decode("utf-8", "replace")
        ok = login in users and users[login] == password
        rec.event(server.conn_id, "*", "AUTH %s as %r: %s" %
                  (mechanism, login, "accepted" if ok else "refused"))
        if ok:
            session.postern_auth = {"mechanism": mechanism, "login": login}
        return AuthResult(success=ok, handled=False)

    class Server(SMTP):
        line_length_limit = 1 << 20  # long lines must reach the record

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.conn_id = 0
            self._greeted = False

        def connection_made(self, transport):
            if not self.conn_id:  # called again when STARTTLS completes
                self.conn_id = rec.new_conn(transport.get_extra_info("peername"))
            super().connection_made(transport)

        def connection_lost(self, exc):
            rec.event(self.conn_id, "*", "connection closed")
            super().connection_lost(exc)

        def _client_connected_cb(self, reader, writer):
            super()._client_connected_cb(reader, writer)
            orig = reader.readuntil

            async def readuntil(separator=b"\n"):
                line = await orig(separator)
                if separator == b"\n":  # a command line (DATA uses b"\r\n")
                    rec.command(self.conn_id, line, len(reader._buffer))
                return line
            reader.readuntil = readuntil

        async def push(self, status):
            if not self._greeted:
                self._greeted = True
                g = cfg.get("greeting")
                if g:
                    lines = [g] if isinstance(g, str) else g
                    for ln in lines:
                        rec.event(self.conn_id, "S", ln)
                        await super().push(ln)
                    if not lines[-1].startswith("2"):
                        self.transport.close()
                    return
            if isinstance(status, bytes):
                status = status.decode("utf-8", "replace")
            for ln in status.split("\r\n"):
                rec.event(self.conn_id, "S", ln)
            await super().push(status)

        async def smtp_STARTTLS(self, arg):
            await super().smtp_STARTTLS(arg)
            rec.event(self.conn_id, "*", "TLS established: %s" % conn_tls(self))

        def _take_params(self, arg, names):
            """Remove the DSN parameters aiosmtpd does not know from arg."""
            if not arg or not cfg.get("dsn"):
                return arg, []
            words = arg.split(" ")
            keep = [w for w in words if w.split("=", 1)[0].upper() not in names]
            taken = [w for w in words if w.split("=", 1)[0].upper() in names]
            return " ".join(keep), taken

        async def smtp_MAIL(self, arg):
            # aiosmtpd refuses the null sender "<>"; stand a placeholder in.
            if arg and re.match(r"(?i)FROM:\s*<>", arg):
                arg = re.sub(r"(?i)^FROM:\s*<>", "FROM:<%s>" % NULL_SENDER, arg)
            arg, dsn = self._take_params(arg, ("RET", "ENVID"))
            await super().smtp_MAIL(arg)
            if dsn and self.envelope.mail_from:
                self.envelope.mail_options.extend(dsn)

        async def smtp_BDAT(self, arg):
            """RFC 3030 CHUNKING, which aiosmtpd lacks: "BDAT n [LAST]"
            followed by exactly n bytes, taken as they are."""
            if not cfg.get("chunking"):
                return await self.push('500 Error: command "BDAT" not recognized')
            m = re.fullmatch(r"(\d{1,10})( +LAST)?", (arg or "").strip(), re.I)
            if not m:
                return await self.push("501 5.5.4 Syntax: BDAT size [LAST]")
            # RFC 3030: the chunk is read (and dropped) even when the
            # command is refused, or its bytes would be taken as commands.
            size = int(m.group(1))
            chunk = await self._reader.readexactly(size) if size else b""
            if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
                return
            if not self.envelope.rcpt_tos:
                return await self.push("503 5.5.1 Error: need RCPT command")
            buf = getattr(self.envelope, "postern_bdat", None)
            if buf is None:
                buf = self.envelope.postern_bdat = bytearray()
            buf += chunk
            rec.event(self.conn_id, "*", "BDAT chunk of %d bytes%s" %
                      (size, ", last" if m.group(2) else ""))
            if not m.group(2):
                return await self.push("250 2.0.0 %d octets received" % size)
            self.envelope.original_content = bytes(buf)
            self.envelope.content = self.envelope.original_content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push(status)

        async def smtp_RCPT(self, arg):
            arg, dsn = self._take_params(arg, ("NOTIFY", "ORCPT"))
            n = len(self.envelope.rcpt_tos)
            await super().smtp_RCPT(arg)
            if dsn and len(self.envelope.rcpt_tos) > n:
                self.envelope.rcpt_options.extend(dsn)

    mechs = [m.upper() for m in cfg.get("auth_mechanisms", ["PLAIN", "LOGIN"])]
    exclude = [m for m in ("PLAIN", "LOGIN") + EXTRA_MECHS if m not in mechs]
    # aiosmtpd only knows TLS that came from STARTTLS: with implicit TLS
    # every byte is encrypted already, so AUTH needs no further condition.
    auth_require_tls = cfg.get("auth_require_tls", tls == "starttls")
    auth_required = cfg.get("auth_required", bool(users))

    def factory():
        return Server(Handler(), hostname="test.postern.invalid", ident="postern test server",
                      tls_context=ctx if tls == "starttls" else None,
                      require_starttls=cfg.get("require_starttls", False),
                      auth_require_tls=auth_require_tls, auth_required=auth_required,
                      authenticator=authenticator if users else None,
                      auth_exclude_mechanism=(exclude if users else
                                              sorted(set(exclude) | {"PLAIN", "LOGIN"})),
                      enable_SMTPUTF8=cfg.get("smtputf8", False),
                      data_size_limit=cfg.get("size_limit", 64 << 20),
                      timeout=float(cfg.get("idle_timeout", 60)),
                      loop=loop)

    return loop.create_server(factory, host=cfg.get("listen", "127.0.0.1"),
                              port=cfg.get("port", 0),
                              ssl=ctx if tls == "implicit" else None)


# ---------------------------------------------------------------- raw

def run_raw(cfg, rec, loop):
    script = cfg.get("script", [])

    async def serve(reader, writer):
        conn = rec.new_conn(writer.get_extra_info("peername"))
        try:
            for step in script:
                op = step[0]
                if op == "send":
                    rec.event(conn, "S", step[1])
                    writer.write(step[1].encode() + b"\r\n")
                    await writer.drain()
                elif op == "recv":
                    line = await reader.readline()
                    if not line:
                        rec.event(conn, "*", "EOF from client")
                        return
                    rec.command(conn, line)
                elif op == "sleep":
                    rec.event(conn, "*", "sleeping %s s" % step[1])
                    await asyncio.sleep(float(step[1]))
                elif op == "close":
                    rec.event(conn, "*", "closing")
                    return
                elif op in RAW_EXTRA_STEPS:
                    if await RAW_EXTRA_STEPS[op](cfg, rec, conn, reader, writer, step):
                        return
                else:
                    raise ValueError("unknown script step %r" % (step,))
            while True:
                line = await reader.readline()
                if not line:
                    rec.event(conn, "*", "EOF from client")
                    return
                rec.command(conn, line)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            rec.event(conn, "*", "connection error: %s" % e)
        finally:
            writer.close()
            rec.event(conn, "*", "connection closed")

    return asyncio.start_server(serve, host=cfg.get("listen", "127.0.0.1"),
                                port=cfg.get("port", 0),
                                ssl=tls_context(cfg) if cfg.get("tls") == "implicit" else None)


# Raw steps beyond send/recv/sleep/close, for hostile-server tests.  Each
# returns True when the connection is finished.
RAW_MAX = 4 << 20


def _latin1(text):
    return text.encode("latin-1")


async def _step_sendraw(cfg, rec, conn, reader, writer, step):
    rec.event(conn, "S", "(raw) %r" % step[1][:200])
    writer.write(_latin1(step[1]))
    await writer.drain()
    return False


async def _step_repeat(cfg, rec, conn, reader, writer, step):
    n, line = int(step[1]), _latin1(step[2]) + b"\r\n"
    rec.event(conn, "S", "%r repeated %s" % (step[2][:100], "forever" if n < 0 else n))
    block = line * max(1, 8192 // len(line))
    sent = 0
    while n < 0 or sent < n:
        chunk = block if n < 0 else line * min(n - sent, len(block) // len(line))
        writer.write(chunk)
        await writer.drain()
        sent += len(chunk) // len(line)
    return False


async def _step_stream(cfg, rec, conn, reader, writer, step):
    n, pat = int(step[1]), _latin1(step[2])
    rec.event(conn, "S", "(streaming %d bytes of %r)" % (n, step[2][:20]))
    block = pat * max(1, 65536 // len(pat))
    left = n
    while left > 0:
        chunk = block[:left]
        writer.write(chunk)
        await writer.drain()
        left -= len(chunk)
    rec.event(conn, "*", "streamed %d bytes" % n)
    return False


async def _step_trickle(cfg, rec, conn, reader, writer, step):
    data, delay = _latin1(step[1]), float(step[2])
    rec.event(conn, "S", "(one byte every %g s) %r" % (delay, step[1][:100]))
    for i in range(len(data)):
        writer.write(data[i:i + 1])
        await writer.drain()
        await asyncio.sleep(delay)
    return False


async def _step_recv_until(cfg, rec, conn, reader, writer, step):
    want, n = _latin1(step[1]), 0
    while True:
        line = await reader.readline()
        if not line:
            rec.event(conn, "*", "EOF from client after %d lines" % n)
            return True
        n += 1
        if line.rstrip(b"\r\n") == want:
            rec.event(conn, "*", "%d lines read up to %r" % (n, step[1]))
            return False


async def _step_recvraw(cfg, rec, conn, reader, writer, step):
    data = bytearray()
    try:
        while len(data) < RAW_MAX:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionError, ssl.SSLError) as e:
        rec.event(conn, "*", "connection error: %s" % e)
    path = os.path.join(rec.outdir, "raw-%d.bin" % conn)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.rename(path + ".tmp", path)
    rec.event(conn, "*", "read %d raw bytes until EOF" % len(data))
    return True


async def _step_tls(cfg, rec, conn, reader, writer, step):
    await writer.start_tls(tls_context(cfg))
    obj = writer.get_extra_info("ssl_object")
    rec.event(conn, "*", "TLS established: %s" % (obj.version() if obj else None))
    return False


async def _step_recv_alone(cfg, rec, conn, reader, writer, step):
    """Read one line; close the connection when more bytes came with it
    (a server that does not take commands pipelined behind this one)."""
    line = await reader.readline()
    if not line:
        rec.event(conn, "*", "EOF from client")
        return True
    rec.command(conn, line, len(reader._buffer))
    if reader._buffer:
        rec.event(conn, "*", "more commands came with it: closing")
        return True
    return False


async def _step_abort(cfg, rec, conn, reader, writer, step):
    rec.event(conn, "*", "aborting the connection")
    writer.transport.abort()
    return True


RAW_EXTRA_STEPS = {
    "sendraw": _step_sendraw, "repeat": _step_repeat, "stream": _step_stream,
    "trickle": _step_trickle, "recv_until": _step_recv_until, "recvraw": _step_recvraw,
    "tls": _step_tls, "abort": _step_abort, "recv_alone": _step_recv_alone,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--lifetime", type=float, default=None)
    args = ap.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    lifetime = args.lifetime or float(cfg.get("lifetime", 120))
    outdir = cfg.get("outdir") or tempfile.mkdtemp(prefix="postern-smtpd-")
    rec = Recorder(outdir)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if cfg.get("mode", "aiosmtpd") == "raw":
        coro = run_raw(cfg, rec, loop)
    else:
        coro = run_aiosmtpd(cfg, rec, loop)
    server = loop.run_until_complete(coro)
    port = server.sockets[0].getsockname()[1]
    sys.stderr.write("smtpd: listening on %s port %d, records in %s, lifetime %g s\n" %
                     (cfg.get("listen", "127.0.0.1"), port, outdir, lifetime))
    sys.stderr.flush()
    # The port line is the readiness signal: the socket is listening now.
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    # A lifetime that ends the process whatever the event loop is doing.
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(max(1, int(lifetime)))
    loop.add_signal_handler(signal.SIGTERM, lambda: os._exit(0))
    try:
        loop.run_forever()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
