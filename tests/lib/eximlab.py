"""eximlab.py - a private Exim 4 on loopback, for interoperability tests.

    from eximlab import EximLab, why_not_here
    ex = EximLab(server_cert, server_key, "joe", "password")
    ex.ports["pc-starttls"], ex.ports["none-implicit"], ...
    ex.stop()

Exim comes from tests/install-exim: Debian's exim4-daemon-heavy unpacked
under /opt/postern-test/exim (it conflicts with postfix, so it is not
installed as a package).  One daemon (`exim4 -C private.conf -bdf`) runs as
root in the foreground with everything under one temp dir: the
configuration (owned by root), spool, logs (mainlog, rejectlog, paniclog),
the TLS key (0640 root:Debian-exim) and the maildir that mail for
example.com is delivered into.

Listeners, all on 127.0.0.1, by name VARIANT-KIND:
  VARIANT "pc"    PIPELINING and CHUNKING advertised
          "p"     PIPELINING only
          "none"  neither
  KIND    "starttls"  STARTTLS; AUTH (PLAIN, LOGIN) offered only inside
                      TLS and required before MAIL
          "implicit"  TLS from the first byte (tls_on_connect_ports)
          "optional"  STARTTLS, AUTH offered, but mail from clients that
                      did not authenticate is accepted too
The advertisement is per listener: pipelining_advertise_hosts and
chunking_advertise_hosts expand to "*" or to an empty host list depending
on $received_port (the local port of the connection).

Recipients: any local part @example.com is delivered into one maildir,
except nosuchuser@example.com (550 at RCPT); other domains get 550 too.
Exim stays strict: smtp_enforce_sync and smtp_max_synprot_errors keep
their defaults, so a client that sends commands before a reply it must
wait for is logged ("SMTP synchronization error").  A watchdog process
ends the daemon when the creating process is gone or the lifetime is
over.
"""

import os
import re
import shutil
import time

import labs
from harness import free_port
from labs import LabError, session_members

ROOT = os.environ.get("POSTERN_EXIM_ROOT", "/opt/postern-test/exim")
EXIM = os.path.join(ROOT, "usr", "sbin", "exim4")
EXIM_USER = "Debian-exim"
DOMAIN = "example.com"
REFUSED = "nosuchuser@" + DOMAIN

VARIANTS = ("pc", "p", "none")
KINDS = ("starttls", "implicit", "optional")

CONF = """\
# private Exim for postern's tests: everything under {d}
exim_path = {exim}
exim_user = {user}
exim_group = {user}
never_users = root
keep_environment =
primary_hostname = mx.postern.test
qualify_domain = postern.test
spool_directory = {d}/spool
log_file_path = {d}/log/%slog
pid_file_path = {d}/exim.pid
log_selector = +smtp_connection +smtp_protocol_error +smtp_syntax_error \\
  +incoming_port +received_recipients +pipelining
local_interfaces = 127.0.0.1
daemon_smtp_ports = {all_ports}
tls_on_connect_ports = {implicit_ports}
host_lookup =
rfc1413_hosts =
smtp_accept_queue_per_connection = 0
smtp_accept_max = 50
message_size_limit = 50M
tls_advertise_hosts = *
tls_certificate = {d}/tls/cert.pem
tls_privatekey = {d}/tls/key.pem
pipelining_advertise_hosts = ${{if inlist{{$received_port}}{{{pipe_ports}}}{{*}}{{}}}}
chunking_advertise_hosts = ${{if inlist{{$received_port}}{{{chunk_ports}}}{{*}}{{}}}}
auth_advertise_hosts = ${{if eq{{$tls_in_cipher}}{{}}{{}}{{*}}}}
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt

begin acl

acl_mail:
  accept authenticated = *
  accept condition = ${{if inlist{{$received_port}}{{{optional_ports}}}}}
  deny message = 5.7.0 authentication required

acl_rcpt:
  deny message = 5.7.1 relay not permitted
       domains = !{domain}
  deny message = 5.1.1 <$local_part@$domain>: no such user here
       local_parts = nosuchuser
  accept

begin routers

inbox:
  driver = accept
  domains = {domain}
  transport = maildir

begin transports

maildir:
  driver = appendfile
  directory = {d}/mail/inbox
  maildir_format
  create_directory
  user = {user}
  group = {user}
  mode = 0644
  return_path_add
  envelope_to_add

begin retry
*  *  F,1m,1m

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if and{{{{eq{{$auth2}}{{{login}}}}}{{eq{{$auth3}}{{{password}}}}}}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = <| Username: | Password:
  server_condition = ${{if and{{{{eq{{$auth1}}{{{login}}}}}{{eq{{$auth2}}{{{password}}}}}}}}}
  server_set_id = $auth1
"""

# What Exim writes when a client breaks the protocol (checked after every
# test): errors of command order, of pipelining, of BDAT.
PROTOCOL_ERRORS = re.compile(r"SMTP protocol error|synchronization error|"
                             r"valid RCPT command must precede BDAT|too many", re.I)


def why_not_here():
    """None when the lab can run here, else the reason."""
    if os.geteuid() != 0:
        return "needs root (Exim's daemon starts as root)"
    if not os.access(EXIM, os.X_OK):
        return "%s missing (run tests/install-exim)" % EXIM
    try:
        import pwd
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return "no %s user (run tests/install-exim)" % EXIM_USER
    return None


def _ids():
    import pwd
    p = pwd.getpwnam(EXIM_USER)
    return p.pw_uid, p.pw_gid


class EximLab(labs.Daemon, labs.Maildir):
    """login/password: the one account AUTH accepts; lifetime: seconds
    the daemon may live whatever happens; slow: a factor for the waits."""

    NAME, COMMAND = "exim", "exim -bdf"

    def __init__(self, cert, key, login, password, lifetime=600, slow=1, base=None):
        why = why_not_here()
        if why:
            raise LabError(why)
        labs.Daemon.__init__(self, slow, base)
        d = self.d
        uid, gid = _ids()
        for sub in ("spool", "log", "tls", "mail"):
            os.makedirs(os.path.join(d, sub))
            if sub != "tls":
                os.chown(os.path.join(d, sub), uid, gid)
        os.chmod(os.path.join(d, "log"), 0o755)
        shutil.copy(cert, os.path.join(d, "tls", "cert.pem"))
        shutil.copy(key, os.path.join(d, "tls", "key.pem"))
        os.chmod(os.path.join(d, "tls", "cert.pem"), 0o644)
        os.chown(os.path.join(d, "tls", "key.pem"), 0, gid)
        os.chmod(os.path.join(d, "tls", "key.pem"), 0o640)
        self.maildir = os.path.join(d, "mail", "inbox")
        for s in (login, password):
            if re.search(r"[{}$\\:\s]", s):
                raise LabError("login and password must not hold { } $ \\ : or spaces")
        self.login, self.password = login, password
        self.conf = os.path.join(d, "exim.conf")
        self._launch(lifetime)

    def _configure(self):
        self.ports = {"%s-%s" % (v, k): free_port() for v in VARIANTS for k in KINDS}

        def of(pred):
            return " : ".join(str(p) for n, p in sorted(self.ports.items()) if pred(n))
        labs.write(self.conf, CONF.format(
            d=self.d, exim=EXIM, user=EXIM_USER, domain=DOMAIN, login=self.login,
            password=self.password,
            all_ports=of(lambda n: True),
            implicit_ports=of(lambda n: n.endswith("-implicit")),
            optional_ports=of(lambda n: n.endswith("-optional")),
            pipe_ports=of(lambda n: n.split("-")[0] in ("pc", "p")),
            chunk_ports=of(lambda n: n.split("-")[0] == "pc")), 0o644)
        os.chown(self.conf, 0, 0)

    def _start(self, lifetime, last):
        """Start the daemon; False when a port was taken (and not last)."""
        mark = self.mark()
        deadline = self._spawn([EXIM, "-C", self.conf, "-bdf"], lifetime)
        # Exim binds every port, then logs "daemon started"; a port that is
        # taken is logged at once (and retried only after 30 s).
        while not any("daemon started" in ln for ln in self.log_since(mark)):
            if any("Address already in use" in ln
                   for n in ("main", "panic") for ln in self.log_since(mark, n)):
                if not last:
                    self._kill()
                    return False
                self._failed("could not bind its ports")
            if self.proc.poll() is not None:
                self._failed("exited (%s)" % self.proc.returncode)
            if time.monotonic() > deadline:
                self._failed("did not start listening")
            time.sleep(0.05)

        def give_up(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._failed("does not answer on port %d" % port)
        return labs.await_greetings(
            self.ports, lambda name: name.endswith("-implicit"),
            lambda g: g.startswith(b"220 mx.postern.test ESMTP Exim"), give_up)

    # -- what happened ------------------------------------------------------
    def log(self, name="main"):
        return labs.lines(os.path.join(self.d, "log", name + "log"))

    def mark(self):
        """Positions in the three logs (for since=)."""
        return {n: len(self.log(n)) for n in ("main", "reject", "panic")}

    def log_since(self, mark, name="main"):
        return self.log(name)[mark.get(name, 0):]

    def log_tail(self, n=20):
        return " | ".join(self.log()[-n:]) or "(no mainlog)"

    def failed_logins(self, mark):
        return [ln for ln in self.log_since(mark) if "authenticator failed" in ln]

    def received(self, mark):
        """Mainlog lines of messages accepted since mark ("<=")."""
        return [ln for ln in self.log_since(mark) if re.search(r"^\S+ \S+ \S+ <= ", ln)]

    def protocol_errors(self, mark):
        return [ln for n in ("main", "reject", "panic") for ln in self.log_since(mark, n)
                if PROTOCOL_ERRORS.search(ln)]

    def panics(self, mark):
        """Paniclog lines since mark, but for the one every delivery
        writes: the reception process (running as the Exim user) re-execs
        Exim with -C for the delivery, and a private configuration is not
        in the binary's TRUSTED_CONFIG_LIST (/etc/exim4/trusted_configs),
        so the delivery runs as the Exim user - which the maildir
        transport needs anyway."""
        return [ln for ln in self.log_since(mark, "panic")
                if "exim user lost privilege for using -C option" not in ln]

    def quiesce(self, limit=20):
        """Wait until no client session is open on the lab's ports and the
        daemon has no reception or delivery process left; True if so."""
        return labs.settle(set(self.ports.values()),
                           lambda: session_members(self.proc.pid) == [self.proc.pid],
                           limit * self.slow)
