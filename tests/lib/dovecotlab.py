"""dovecotlab.py - a private Dovecot 2.3 submission service on loopback.

    from dovecotlab import DovecotLab, why_not_here
    dv = DovecotLab(workdir, server_cert, server_key, "joe", "password")
    dv.ports["starttls"], dv.ports["implicit"]; dv.sink.messages()
    dv.stop()

One `dovecot -F -c private.conf` (foreground, started as root) with
base_dir, state_dir and the log file under one temp dir, a passwd-file
passdb (PLAIN, LOGIN, SCRAM-SHA-256; auth_verbose, so every failed login is
one "Password mismatch" line), and submission-login listening on 127.0.0.1:
  "starttls"  STARTTLS (disable_plaintext_auth: AUTH only inside TLS)
  "implicit"  TLS from the first byte
The submission service relays every accepted message to a sink on
loopback (tests/lib/smtpd.py, the harness's aiosmtpd server, without TLS
or AUTH) which records the exact bytes: sink.messages().  The sink refuses
nosuchuser@example.com with 550 at RCPT; Dovecot forwards that reply to
the client.

What Dovecot advertises is a setting of the instance, not of a listener,
so each variant is an instance of its own (DovecotLab(variant=...)):
  "pc"    the defaults: the EHLO offers PIPELINING and CHUNKING
          (submission_client_workarounds and
          submission_backend_capabilities untouched)
  "p"     PIPELINING only
  "none"  neither
submission-login (the EHLO before AUTH) offers PIPELINING and CHUNKING
unless submission_client_workarounds = exotic-backend, and then only those
listed in submission_backend_capabilities; so "p" and "none" set that
workaround and list 8BITMIME ENHANCEDSTATUSCODES SIZE (+ PIPELINING).
(src/submission-login/client-authenticate.c, cmd_helo_reply.)  What
cannot be turned off: after AUTH the submission process itself always
takes pipelined commands and BDAT and lists both in an EHLO sent after
AUTH - src/submission/submission-client.c adds them unconditionally
(client_apply_backend_capabilities).  A client that sends EHLO only
before AUTH, as RFC 4954 allows, sees what submission-login offered.

A watchdog ends the instance when the creating process is gone or the
lifetime is over.  Needs root and the Debian packages dovecot-core and
dovecot-submissiond.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from harness import Server, free_port
from eximlab import busy_ports, _session_members  # noqa: F401 (shared helpers)

DOVECOT = "/usr/sbin/dovecot"
SUBMISSION = "/usr/lib/dovecot/submission"
DOMAIN = "example.com"
REFUSED = "nosuchuser@" + DOMAIN

CONF = """\
# private Dovecot for postern's tests: everything under {d}
instance_name = postern-{tag}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log
protocols = submission
listen = 127.0.0.1
hostname = mx.postern.test
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login scram-sha-256
auth_verbose = yes
auth_failure_delay = 0
mail_location = maildir:{d}/home/%u/Maildir
submission_relay_host = 127.0.0.1
submission_relay_port = {sink}
submission_relay_ssl = no
submission_max_mail_size = 50M
{variant}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
service submission-login {{
  chroot =
  inet_listener submission {{
    address = 127.0.0.1
    port = {starttls}
  }}
  inet_listener submissions {{
    address = 127.0.0.1
    port = {implicit}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No socket the auth process may use: its penalty for failed logins
  # (2 s doubling to 15 s per client IP, not configurable) would make
  # every later failed-login case from 127.0.0.1 wait.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""

WATCHDOG = r"""
import os, signal, sys, time
parent, pid, lifetime = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + lifetime
def alive(p):
    try:
        os.kill(p, 0)
        return True
    except OSError:
        return False
while alive(parent) and alive(pid) and time.monotonic() < end:
    time.sleep(1)
try:
    os.killpg(pid, signal.SIGTERM)
    time.sleep(2)
    os.killpg(pid, signal.SIGKILL)
except OSError:
    pass
"""

VARIANTS = {
    "pc": "",
    "p": "submission_client_workarounds = exotic-backend\n"
         "submission_backend_capabilities = 8BITMIME ENHANCEDSTATUSCODES SIZE PIPELINING\n",
    "none": "submission_client_workarounds = exotic-backend\n"
            "submission_backend_capabilities = 8BITMIME ENHANCEDSTATUSCODES SIZE\n",
}

# What Dovecot logs when a client breaks the protocol.
PROTOCOL_ERRORS = re.compile(r"Too many invalid commands|Unknown command|protocol error", re.I)


class LabError(Exception):
    """The instance could not be set up or started."""


def why_not_here():
    """None when the lab can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (dovecot's master starts as root)"
    for exe in (DOVECOT, SUBMISSION):
        if not os.access(exe, os.X_OK):
            return "%s missing (apt-get install dovecot-core dovecot-submissiond)" % exe
    try:
        import pwd
        pwd.getpwnam("dovenull")
        pwd.getpwnam("dovecot")
    except KeyError:
        return "no dovecot/dovenull user (dovecot-core is not installed properly)"
    return None


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class DovecotLab:
    """login/password: the account the passwd-file holds; lifetime:
    seconds the instance may live; slow: a factor for the waits."""

    def __init__(self, cert, key, login, password, variant="pc", lifetime=600, slow=1,
                 base=None):
        why = why_not_here()
        if why:
            raise LabError(why)
        self.d = tempfile.mkdtemp(prefix="postern-dovecot-", dir=base)
        self.slow = slow
        self.proc = None
        self.watchdog = None
        d = self.d
        os.chmod(d, 0o755)
        import pwd
        nobody = pwd.getpwnam("nobody")
        for sub in ("run", "state", "log", "tls", "home", "sink"):
            os.makedirs(os.path.join(d, sub))
        os.chown(os.path.join(d, "home"), nobody.pw_uid, nobody.pw_gid)
        shutil.copy(cert, os.path.join(d, "tls", "cert.pem"))
        shutil.copy(key, os.path.join(d, "tls", "key.pem"))
        os.chmod(os.path.join(d, "tls", "key.pem"), 0o600)
        if re.search(r"[:\s]", login + password):
            raise LabError("login and password must not hold ':' or spaces")
        _write(os.path.join(d, "users"), "%s:{PLAIN}%s::::::\n" % (login, password), 0o644)
        # The relay: the harness's aiosmtpd server without TLS or AUTH.
        self.sink = Server({"tls": "plain", "lifetime": lifetime,
                            "rcpt_replies": {REFUSED: "550 5.1.1 <%s>: no such user here" %
                                             REFUSED}},
                           os.path.join(d, "sink"), "relay")
        self.conf = os.path.join(d, "dovecot.conf")
        self.variant = VARIANTS[variant]
        self.ids = (nobody.pw_uid, nobody.pw_gid)
        # free_port() can race with other programs on the machine: on
        # "Address already in use" start again on new ports.
        for attempt in range(3):
            self._configure()
            if self._start(lifetime, last=attempt == 2):
                return

    def _configure(self):
        self.ports = {"starttls": free_port(), "implicit": free_port()}
        _write(self.conf, CONF.format(d=self.d, tag=os.path.basename(self.d),
                                      sink=self.sink.port, uid=self.ids[0], gid=self.ids[1],
                                      starttls=self.ports["starttls"],
                                      implicit=self.ports["implicit"], variant=self.variant))

    def _start(self, lifetime, last):
        """Start the master; False when a port was taken (and not last)."""
        errfile = os.path.join(self.d, "dovecot.stderr")
        mark = len(self.log())
        with open(errfile, "wb") as err:
            self.proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                stdout=err, stderr=err, start_new_session=True, cwd=self.d)
        self.watchdog = subprocess.Popen(
            ["/usr/bin/python3", "-c", WATCHDOG, str(os.getpid()), str(self.proc.pid),
             str(lifetime)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20 * self.slow

        def failed(why):
            tail = self.log_tail(5) + " | " + self._stderr()
            self.stop()
            raise LabError("dovecot -F %s: %s" % (why, tail))
        for name, port in self.ports.items():
            while not self._banner(port, name == "implicit"):
                taken = "Address already in use" in self._stderr() or any(
                    "Address already in use" in ln for ln in self.log()[mark:])
                if taken and not last:
                    self._kill()
                    return False
                if taken:
                    failed("could not bind its ports")
                if self.proc.poll() is not None:
                    failed("exited (%s)" % self.proc.returncode)
                if time.monotonic() > deadline:
                    failed("does not answer on port %d" % port)
                time.sleep(0.05)
        return True

    def _stderr(self):
        try:
            with open(os.path.join(self.d, "dovecot.stderr"), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return ""

    @staticmethod
    def _banner(port, implicit):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                if implicit:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s = ctx.wrap_socket(s)
                g = s.recv(512)
                ok = g.startswith(b"220 mx.postern.test ") and b"Dovecot" in g
                s.sendall(b"QUIT\r\n")
                s.recv(512)
                return ok
        except OSError:
            return False

    def stop(self):
        """Stop the master by its PID (it ends its children), then
        whatever is left of its session, the watchdog and the sink."""
        self._kill()
        self.sink.stop()
        if not os.environ.get("POSTERN_TEST_KEEP"):
            shutil.rmtree(self.d, ignore_errors=True)

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:
            for pid in _session_members(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.watchdog and self.watchdog.poll() is None:
            os.kill(self.watchdog.pid, signal.SIGKILL)
            self.watchdog.wait(5)

    # -- what happened ------------------------------------------------------
    def log(self):
        try:
            with open(os.path.join(self.d, "log", "dovecot.log"), errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def mark(self):
        return {"log": len(self.log()), "sink": len(self.sink.messages())}

    def log_since(self, mark):
        return self.log()[mark["log"]:]

    def log_tail(self, n=20):
        return " | ".join(self.log()[-n:]) or "(no log)"

    def failed_logins(self, mark):
        return [ln for ln in self.log_since(mark) if "Password mismatch" in ln]

    def protocol_errors(self, mark):
        return [ln for ln in self.log_since(mark) if PROTOCOL_ERRORS.search(ln)]

    def relayed(self, mark):
        """Messages the sink accepted since mark (dicts as
        harness.Server.messages(): mail_from, rcpt_tos, data)."""
        return [m for m in self.sink.messages()[mark["sink"]:]
                if (m.get("reply") or "").startswith("2")]

    def quiesce(self, limit=20):
        """Wait until no session is open on the lab's ports or the
        sink's, and every submission process has ended; True if so."""
        deadline = time.monotonic() + limit * self.slow
        ports = set(self.ports.values()) | {self.sink.port}
        while time.monotonic() < deadline:
            if not busy_ports(ports) and not self._sessions():
                return True
            time.sleep(0.05)
        return False

    def _sessions(self):
        """PIDs of running submission and submission-login processes."""
        out = []
        for pid in _session_members(self.proc.pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
            except OSError:
                continue
            if argv0.endswith(b"submission") or argv0.endswith(b"submission-login"):
                out.append(pid)
        return out
