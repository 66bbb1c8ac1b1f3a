"""postfixlab.py - a private Postfix on loopback, for tests and benchmarks.

    from postfixlab import PostfixLab, why_not_here
    pf = PostfixLab(server_cert, server_key, users={"joe@example.com": "pw"})
    ... pf.ports["587"], pf.ports["465"], pf.ports["data"] ...
    pf.stop()

Everything lives under one temp dir: main.cf/master.cf, queue, data, the
maildir, Cyrus SASL's sasldb.  Three submission services with AUTH (PLAIN
and LOGIN, required before MAIL):
  "587"   STARTTLS required (PIPELINING, CHUNKING, SIZE, 8BITMIME, ...)
  "465"   TLS from the first byte
  "data"  as 587 but without CHUNKING (so clients use DATA)
Mail for example.com goes into one maildir (delivered()); mail for
discard.example is accepted and thrown away (for large-message benchmarks).
The system's own Postfix (port 25) is neither used nor touched.  A
watchdog process stops the instance when the creating process is gone or
the lifetime is over, so a killed run never leaves Postfix behind.

Needs root and the Debian packages postfix, sasl2-bin, libsasl2-modules
(why_not_here() says what is missing).
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import labs
from harness import free_port
from labs import LabError

POSTFIX = "/usr/sbin/postfix"
SASLPASSWD2 = "/usr/sbin/saslpasswd2"
DOMAIN = "example.com"
DISCARD_DOMAIN = "discard.example"

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {d}
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
myhostname = mx.postern.test
mydomain = postern.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
relay_domains = {discard}
transport_maps = inline:{{{discard}=discard:}}
default_transport = error:this test instance sends nothing out
relay_transport = error:this test instance sends nothing out
alias_maps =
alias_database =
local_header_rewrite_clients =
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP postern lab
smtputf8_enable = yes
message_size_limit = {size_limit}
virtual_mailbox_limit = {size_limit}
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_tls_cert_file = {d}/tls/cert.pem
smtpd_tls_key_file = {d}/tls/key.pem
smtpd_tls_security_level = may
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {d}/sasl
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = reject_unauth_destination
{extra}
"""

SUBMISSION = """\
  -o syslog_name=postfix/{name}
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
"""

MASTER_CF = """\
{p587} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
{sub587}{p465} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
{sub465}{pdata} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_discard_ehlo_keywords=chunking,silent-discard
{subdata}cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

SASL_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {d}/sasl/sasldb2
mech_list: PLAIN LOGIN
"""

WATCHDOG = r"""
import os, shutil, signal, subprocess, sys, time
parent, d, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
end = time.monotonic() + lifetime
""" + labs.ALIVE + r"""
while alive(parent) and time.monotonic() < end:
    time.sleep(1)
subprocess.run([sys.argv[4], "-c", d, "stop"], stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL, timeout=20)
try:
    with open(os.path.join(d, "queue", "pid", "master.pid")) as f:
        pid = int(f.read().split()[0])
    time.sleep(2)
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        if b"master" in f.read():
            os.kill(pid, signal.SIGKILL)
except (OSError, ValueError, IndexError):
    pass
if not os.environ.get("POSTERN_TEST_KEEP"):
    shutil.rmtree(d, ignore_errors=True)
"""


def _run(argv, **kw):
    return subprocess.run(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=kw.pop("timeout", 60), **kw)


def _ids(name):
    import grp
    import pwd
    return pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid


def why_not_here():
    """None when a lab can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (Postfix's master runs as root)"
    for exe, pkg in ((POSTFIX, "postfix"), (SASLPASSWD2, "sasl2-bin")):
        if not os.access(exe, os.X_OK):
            return "%s missing (apt-get install postfix sasl2-bin libsasl2-modules)" % exe
    try:
        _ids("postfix")
    except KeyError:
        return "no postfix user (the postfix package is not installed properly)"
    return None


def _is_master(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"master" in f.read()
    except OSError:
        return False


class PostfixLab(labs.Maildir):
    """users: {"login@domain": "password"}; size_limit: message_size_limit
    (0: none); extra: more main.cf lines; lifetime: seconds the instance
    may live whatever happens; base: the directory to create the
    instance's directory in (default: $TMPDIR or /tmp)."""

    def __init__(self, cert, key, users, size_limit=20480000, extra="", lifetime=600,
                 base=None):
        self.d = tempfile.mkdtemp(prefix="postern-postfix-", dir=base)
        self.lifetime = lifetime
        self.watchdog = None
        d = self.d
        os.chmod(d, 0o755)  # smtpd (user postfix) opens the sasldb by path
        self.ports = {"587": free_port(), "465": free_port(), "data": free_port()}
        self.maildir = os.path.join(d, "mail", "inbox")
        for sub in ("tls", "sasl", "mail", "data", "queue"):
            os.makedirs(os.path.join(d, sub))
        nobody = int(_run(["id", "-u", "nobody"]).stdout.strip())
        nogroup = int(_run(["id", "-g", "nobody"]).stdout.strip())
        pf_uid, pf_gid = _ids("postfix")
        os.chown(os.path.join(d, "mail"), nobody, nogroup)
        os.chown(os.path.join(d, "data"), pf_uid, -1)
        labs.write(os.path.join(d, "main.cf"), MAIN_CF.format(
            d=d, domain=DOMAIN, discard=DISCARD_DOMAIN, uid=nobody, gid=nogroup,
            size_limit=size_limit, extra=extra))
        subs = {k: SUBMISSION.format(name="s" + k) for k in self.ports}
        labs.write(os.path.join(d, "master.cf"), MASTER_CF.format(
            p587=self.ports["587"], p465=self.ports["465"], pdata=self.ports["data"],
            sub587=subs["587"], sub465=subs["465"], subdata=subs["data"]))
        shutil.copy(cert, os.path.join(d, "tls", "cert.pem"))
        shutil.copy(key, os.path.join(d, "tls", "key.pem"))
        os.chmod(os.path.join(d, "tls", "key.pem"), 0o600)
        labs.write(os.path.join(d, "sasl", "smtpd.conf"), SASL_CONF.format(d=d))
        db = os.path.join(d, "sasl", "sasldb2")
        for login, password in users.items():
            user, _, realm = login.partition("@")
            r = _run([SASLPASSWD2, "-p", "-c", "-f", db, "-u", realm or DOMAIN, user],
                     input=password.encode(), stdin=None)
            if r.returncode != 0:
                self.cleanup()
                raise LabError("saslpasswd2 failed: %s" %
                               r.stdout.decode(errors="replace").strip())
        if users:
            os.chown(db, 0, pf_gid)
            os.chmod(db, 0o640)
        self.start()

    def start(self):
        r = _run([POSTFIX, "-c", self.d, "start"])
        if r.returncode != 0:
            out = r.stdout.decode(errors="replace").strip().splitlines()
            tail = self.log_tail(5)
            self.cleanup()
            raise LabError("postfix -c DIR start failed: %s | %s" % (" | ".join(out[-5:]), tail))
        self.watchdog = labs.watchdog(WATCHDOG, self.d, self.lifetime, POSTFIX)
        deadline = time.monotonic() + 20

        def give_up(port):
            if time.monotonic() > deadline:
                raise LabError("postfix does not answer on port %d after 20 s: %s" %
                               (port, self.log_tail(5)))
        labs.await_greetings(self.ports, lambda name: name == "465",
                             lambda g: g.startswith(b"220 "), give_up, pause=0.1,
                             wait_bye=False)

    def master_pid(self):
        try:
            with open(os.path.join(self.d, "queue", "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        pid = self.master_pid()
        try:
            _run([POSTFIX, "-c", self.d, "stop"], timeout=20)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                pid = None
                break
            time.sleep(0.1)
        if pid and _is_master(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        labs.end(self.watchdog)
        self.cleanup()

    def cleanup(self):
        labs.remove(self.d)

    def log(self):
        return labs.lines(os.path.join(self.d, "maillog"))

    def log_tail(self, n=20):
        return " | ".join(self.log()[-n:]) or "(no maillog)"

    def count_delivered(self):
        return len(self.delivered_names())

    def wait_delivered(self, before, count, limit=20):
        """The messages that appeared since before (a delivered() result)."""
        deadline = time.monotonic() + limit
        while True:
            new = {k: v for k, v in self.delivered().items() if k not in before}
            if len(new) >= count or time.monotonic() > deadline:
                return list(new.values())
            time.sleep(0.1)

    def session_counts(self, service, since=0):
        """Command counts of the last finished session on a service ("587"),
        from Postfix's "disconnect from ... ehlo=2 starttls=1 ..." line."""
        tag = "postfix/s%s" % service
        for ln in reversed(self.log()[since:]):
            if tag in ln and "disconnect from" in ln:
                return dict(re.findall(r"(\w+)=(\d+(?:/\d+)?)",
                                       ln.split("disconnect from", 1)[1]))
        return {}

    def complaints(self, since=0):
        """Log lines since a position that show a client misbehaving: the
        SMTP server's warnings and errors (not, say, cleanup's complaint
        about the file system clock, which no client causes)."""
        return [ln for ln in self.log()[since:]
                if re.search(r"improper command pipelining|lost connection|SSL_accept error|"
                             r"smtpd\[\d+\]: warning|timeout after", ln)]
