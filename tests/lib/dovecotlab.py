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
import time

import labs
from harness import Server, free_port
from labs import LabError, session_members

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

VARIANTS = {
    "pc": "",
    "p": "submission_client_workarounds = exotic-backend\n"
         "submission_backend_capabilities = 8BITMIME ENHANCEDSTATUSCODES SIZE PIPELINING\n",
    "none": "submission_client_workarounds = exotic-backend\n"
            "submission_backend_capabilities = 8BITMIME ENHANCEDSTATUSCODES SIZE\n",
}

# What Dovecot logs when a client breaks the protocol.
PROTOCOL_ERRORS = re.compile(r"Too many invalid commands|Unknown command|protocol error", re.I)


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


class DovecotLab(labs.Daemon):
    """login/password: the account the passwd-file holds; lifetime:
    seconds the instance may live; slow: a factor for the waits."""

    NAME, COMMAND, STOP_WAIT = "dovecot", "dovecot -F", 10

    def __init__(self, cert, key, login, password, variant="pc", lifetime=600, slow=1,
                 base=None):
        why = why_not_here()
        if why:
            raise LabError(why)
        labs.Daemon.__init__(self, slow, base)
        d = self.d
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
        labs.write(os.path.join(d, "users"), "%s:{PLAIN}%s::::::\n" % (login, password),
                   0o644)
        # The relay: the harness's aiosmtpd server without TLS or AUTH.
        self.sink = Server({"tls": "plain", "lifetime": lifetime,
                            "rcpt_replies": {REFUSED: "550 5.1.1 <%s>: no such user here" %
                                             REFUSED}},
                           os.path.join(d, "sink"), "relay")
        self.conf = os.path.join(d, "dovecot.conf")
        self.variant = VARIANTS[variant]
        self.ids = (nobody.pw_uid, nobody.pw_gid)
        self._launch(lifetime)

    def _configure(self):
        self.ports = {"starttls": free_port(), "implicit": free_port()}
        labs.write(self.conf, CONF.format(d=self.d, tag=os.path.basename(self.d),
                                          sink=self.sink.port, uid=self.ids[0],
                                          gid=self.ids[1], starttls=self.ports["starttls"],
                                          implicit=self.ports["implicit"],
                                          variant=self.variant))

    def _start(self, lifetime, last):
        """Start the master; False when a port was taken (and not last)."""
        mark = len(self.log())
        deadline = self._spawn([DOVECOT, "-F", "-c", self.conf], lifetime)

        def give_up(port):
            taken = "Address already in use" in self._stderr() or any(
                "Address already in use" in ln for ln in self.log()[mark:])
            if taken and not last:
                self._kill()
                return True
            if taken:
                self._failed("could not bind its ports")
            if self.proc.poll() is not None:
                self._failed("exited (%s)" % self.proc.returncode)
            if time.monotonic() > deadline:
                self._failed("does not answer on port %d" % port)
            return False
        return labs.await_greetings(
            self.ports, lambda name: name == "implicit",
            lambda g: g.startswith(b"220 mx.postern.test ") and b"Dovecot" in g, give_up)

    def stop(self):
        """Stop the master by its PID (it ends its children), then
        whatever is left of its session, the watchdog and the sink."""
        self._kill()
        self.sink.stop()
        labs.remove(self.d)

    # -- what happened ------------------------------------------------------
    def log(self):
        return labs.lines(os.path.join(self.d, "log", "dovecot.log"))

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
        return labs.settle(set(self.ports.values()) | {self.sink.port},
                           lambda: not self._sessions(), limit * self.slow)

    def _sessions(self):
        """PIDs of running submission and submission-login processes."""
        out = []
        for pid in session_members(self.proc.pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv0 = f.read().split(b"\0")[0]
            except OSError:
                continue
            if argv0.endswith(b"submission") or argv0.endswith(b"submission-login"):
                out.append(pid)
        return out
