"""harness.py - what postern's integration tests share.

A test script builds a Suite, registers test functions and runs them:

    from harness import Suite, USER, PASSWORD
    T = Suite()

    @T.test("STARTTLS + AUTH PLAIN delivers")
    def _(t):                       # t: a Case, one per test
        srv = t.server(tls="starttls", users={USER: PASSWORD})
        t.write_smtprc(t.account(srv))
        r = t.postern(["rcpt@example.com"], stdin=b"Subject: x\\n\\nhi\\n")
        t.expect_exit(r, 0)

    T.run()

Output is TAP for automake's tap-driver: "1..N", then "ok"/"not ok" per
test with "# " diagnostics (postern's stderr, the server's transcript) on
failure.  Each Case has a private HOME, XDG_CONFIG_HOME, XDG_STATE_HOME,
XDG_RUNTIME_DIR and TMPDIR; every server it starts is stopped by PID when
the test ends (and at exit), and each server also ends itself after its
lifetime.  postern always runs under a subprocess timeout.

Environment: POSTERN (the binary), TESTS_SRCDIR, TESTS_BUILDDIR;
POSTERN_TEST_KEEP=1 keeps the temp dirs of failed tests;
POSTERN_TEST_VERBOSE=1 shows every postern run, passing tests too;
POSTERN_TEST_ONLY=TEXT runs only the tests whose name contains TEXT;
POSTERN_WRAPPER=COMMAND runs postern under COMMAND (e.g. valgrind).
"""

import atexit
import base64
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

LIB = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, LIB)
import ca as calib  # noqa: E402

PY = "/usr/bin/python3"  # Debian's python, which has aiosmtpd
SMTPD = os.path.join(LIB, "smtpd.py")

USER = "joe"
PASSWORD = "correct-horse-42-battery"
SENDER = "sender@example.com"

# POSTERN_WRAPPER="valgrind --error-exitcode=99 ..." runs every postern
# under that command (not the rss runs); time limits grow by
# WRAPPER_SLOWDOWN, and Suite.sanitized is true.
WRAPPER = shlex.split(os.environ.get("POSTERN_WRAPPER", ""))
WRAPPER_SLOWDOWN = 10

_all_servers = []


def postern_binary():
    p = os.environ.get("POSTERN")
    if p:
        return os.path.abspath(p)
    build = os.environ.get("TESTS_BUILDDIR")
    if build:
        return os.path.join(os.path.dirname(os.path.abspath(build)), "postern")
    return os.path.abspath("postern")


class Fail(Exception):
    """A failed expectation; the message is the first diagnostic line."""


class Skip(Exception):
    """The test cannot run here; the message says why."""


def lab_missing(why):
    """A real server (Postfix, Exim, Dovecot) cannot run here: SKIP, or
    FAIL when POSTERN_REQUIRE_LABS=1 (CI), so a missing server never
    passes silently."""
    if os.environ.get("POSTERN_REQUIRE_LABS") == "1":
        raise Fail("POSTERN_REQUIRE_LABS=1 but the server cannot run here: %s" % why)
    raise Skip(why)


def normalize(data):
    """What a correct client transmits for a message (after the server's
    dot-unstuffing): every CRLF, bare LF and bare CR becomes CRLF, and a
    non-empty message ends with CRLF."""
    out = re.sub(rb"\r\n|\r|\n", b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def free_port():
    """A loopback port nothing listens on (bound and closed again)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64(data):
    return base64.b64encode(data).decode()


def first_difference(got, want):
    n = min(len(got), len(want))
    for i in range(n):
        if got[i] != want[i]:
            return i
    return n if len(got) != len(want) else -1


# Runs argv[3:] (argv[2] is the executable) and writes its peak RSS in kB
# (from wait4) to argv[1]; exits with the child's status.
_RSS_WRAPPER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[3:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(ru.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
"""


class Result:
    def __init__(self, args, code, out, err, secs):
        self.args, self.code, self.out, self.err, self.secs = args, code, out, err, secs

    @property
    def stderr(self):
        return self.err.decode("utf-8", "replace")

    @property
    def stdout(self):
        return self.out.decode("utf-8", "replace")

    def describe(self):
        lines = ["$ postern %s" % " ".join(shlex.quote(a) for a in self.args),
                 "exit %s after %.2f s" % (self.code, self.secs)]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            t = text.splitlines()
            if not t:
                lines.append("%s: (empty)" % name)
                continue
            lines.append("%s:" % name)
            if len(t) > 40:
                t = t[:20] + ["... (%d lines) ..." % (len(t) - 40)] + t[-20:]
            lines += ["  " + x[:300] for x in t]
        return lines


class Server:
    """One tests/lib/smtpd.py process."""

    def __init__(self, cfg, workdir, name):
        self.name = name
        self.outdir = os.path.join(workdir, name)
        os.makedirs(self.outdir)
        cfg = dict(cfg)
        cfg["outdir"] = self.outdir
        self.cfg = cfg
        cfgfile = os.path.join(workdir, name + ".json")
        with open(cfgfile, "w") as f:
            json.dump(cfg, f)
        self.errfile = os.path.join(workdir, name + ".stderr")
        with open(self.errfile, "wb") as err:
            self.proc = subprocess.Popen(
                [PY, SMTPD, "--config", cfgfile],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True)
        _all_servers.append(self)
        self.port = self._read_port(15.0)

    def _read_port(self, limit):
        deadline = time.monotonic() + limit
        buf = b""
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise Fail("server %s did not report its port within %g s; stderr: %s" %
                           (self.name, limit, self.stderr_tail()))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 64)
                if not chunk:
                    self.proc.wait(5)
                    raise Fail("server %s exited (%s) before listening; stderr: %s" %
                               (self.name, self.proc.returncode, self.stderr_tail()))
                buf += chunk
        return int(buf.split(b"\n")[0])

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(3)
            except ProcessLookupError:
                pass
        if self.proc.stdout:
            self.proc.stdout.close()
            self.proc.stdout = None

    # -- records --------------------------------------------------------
    def messages(self, accepted_only=False):
        """[{"mail_from", "rcpt_tos", "mail_options", "reply", "data", ...}]"""
        out = []
        n = 1
        while os.path.exists(os.path.join(self.outdir, "msg-%d.json" % n)):
            with open(os.path.join(self.outdir, "msg-%d.json" % n)) as f:
                m = json.load(f)
            with open(os.path.join(self.outdir, "msg-%d.eml" % n), "rb") as f:
                m["data"] = f.read()
            if not accepted_only or (m["reply"] or "").startswith("2"):
                out.append(m)
            n += 1
        return out

    def commands(self):
        try:
            with open(os.path.join(self.outdir, "commands.log"), encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def verbs(self):
        return [c.split(" ", 1)[0].split(":", 1)[0].upper() for c in self.commands()]

    def transcript(self):
        try:
            with open(os.path.join(self.outdir, "transcript.log"), encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def connections(self):
        return sum(1 for ln in self.transcript() if " * connection from " in ln)

    def stderr_tail(self, n=10):
        try:
            with open(self.errfile, encoding="utf-8", errors="replace") as f:
                return " | ".join(f.read().splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def describe(self):
        t = self.transcript()
        lines = ["server %s (port %s, %s):" % (self.name, self.port,
                                               self.cfg.get("mode", "aiosmtpd"))]
        if len(t) > 40:
            lines.append("  ... (%d earlier lines)" % (len(t) - 40))
            t = t[-40:]
        lines += ["  " + x[:300] for x in t] or ["  (no connection)"]
        tail = self.stderr_tail(5)
        if "Traceback" in tail or "Error" in tail:
            lines.append("  server stderr: " + tail[:1000])
        return lines


def _stop_all():
    for s in _all_servers:
        try:
            s.stop()
        except Exception:
            pass


atexit.register(_stop_all)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda signum, frame: sys.exit(128 + signum))


class Case:
    """One test: a private environment, its servers and postern runs."""

    def __init__(self, suite, name):
        self.suite = suite
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="postern-test-")
        self.home = os.path.join(self.dir, "home")
        self.xdg_config = os.path.join(self.home, ".config")
        self.xdg_state = os.path.join(self.home, ".local", "state")
        self.runtime = os.path.join(self.dir, "run")
        self.tmp = os.path.join(self.dir, "tmp")
        for d in (self.home, self.xdg_config, self.xdg_state, self.runtime, self.tmp):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.servers = []
        self.runs = []
        self.notes = []

    # -- servers ----------------------------------------------------------
    def server(self, **cfg):
        """Start tests/lib/smtpd.py with this config (see smtpd.py).  For
        tls = starttls/implicit the CA's localhost certificate is used
        unless cert/key are given."""
        if cfg.get("tls", "plain") != "plain" and "cert" not in cfg:
            ca = self.suite.ca()
            cfg["cert"], cfg["key"] = ca.server
        # The server's own lifetime (smtpd.py: 120 s) is a safety net; a
        # test that runs postern hundreds of times under the wrapper needs
        # longer.  Every server is still stopped by PID when its test ends.
        cfg.setdefault("lifetime", self.slow(120))
        srv = Server(cfg, self.dir, "server%d" % (len(self.servers) + 1))
        self.servers.append(srv)
        return srv

    def raw_server(self, script, **cfg):
        return self.server(mode="raw", script=script, **cfg)

    @property
    def ca(self):
        return self.suite.ca()

    # -- configuration ------------------------------------------------------
    def account(self, srv=None, secret="file", **keys):
        """~/.smtprc text for one account [test] on srv.  secret: "file"
        (password = ...), "command" (password_command = printf ...) or
        None.  Keyword arguments set keys (None removes a key); port and
        tls may be given to override the server's."""
        tls = {"plain": "off"}.get(srv.cfg.get("tls", "plain"), srv.cfg.get("tls")) if srv else "starttls"
        k = {
            "host": "localhost",
            "port": str(srv.port) if srv else str(free_port()),
            "tls": tls,
            "tls_ca_file": self.ca.ca_cert,
            "user": USER,
            "from": SENDER,
            "domain": "client.example.com",
            "timeout": "10",
            "queue": "off",
            "log": "off",
        }
        if secret == "file":
            k["password"] = PASSWORD
        elif secret == "command":
            k["password_command"] = "printf '%%s' %s" % shlex.quote(PASSWORD)
        if tls == "off":
            del k["tls_ca_file"]
        for key, val in keys.items():
            if val is None:
                k.pop(key, None)
            else:
                k[key] = str(val)
        return "[test]\n" + "".join("%s = %s\n" % kv for kv in k.items())

    def write_smtprc(self, text, mode=0o600, path=None):
        path = path or os.path.join(self.home, ".smtprc")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        self.note("~/.smtprc" if path.endswith("/.smtprc") else path, text)
        return path

    def note(self, title, text):
        self.notes.append((title, text))

    # -- postern ----------------------------------------------------------
    def env(self, extra=None):
        e = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.home,
            "XDG_CONFIG_HOME": self.xdg_config,
            "XDG_STATE_HOME": self.xdg_state,
            "XDG_RUNTIME_DIR": self.runtime,
            "TMPDIR": self.tmp,
            # root's default spool is /var/spool/postern, shared by every
            # test: each case gets its own (env={"POSTERN_QUEUE_DIR": None}
            # tests the default).
            "POSTERN_QUEUE_DIR": os.path.join(self.dir, "spool"),
            "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "root"),
            "LOGNAME": os.environ.get("LOGNAME", os.environ.get("USER", "root")),
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "VALGRIND_OPTS"):
            if k in os.environ:
                e[k] = os.environ[k]
        if extra:
            for k, v in extra.items():
                if v is None:
                    e.pop(k, None)
                else:
                    e[k] = v
        return e

    def _wrapped(self, argv0, args):
        """argv and executable to run postern under POSTERN_WRAPPER; the
        wrapper (valgrind) gives postern its path as argv[0], so an argv0
        is a symbolic link of that name."""
        prog = self.suite.postern
        if argv0 and os.path.basename(argv0) != os.path.basename(prog):
            prog = self._link(os.path.basename(argv0))
        exe = shutil.which(WRAPPER[0]) or WRAPPER[0]
        return WRAPPER + [prog] + list(args), exe

    def argv(self, args):
        """argv for a test that starts postern itself (subprocess.Popen):
        under POSTERN_WRAPPER it runs under the wrapper."""
        return WRAPPER + [self.suite.postern] + list(args)

    def slow(self, seconds):
        """A wait or time limit for postern, grown under POSTERN_WRAPPER."""
        return seconds * WRAPPER_SLOWDOWN if WRAPPER else seconds

    def _link(self, name):
        """A symbolic link called name to postern (its argv[0] then)."""
        d = os.path.join(self.dir, "links")
        link = os.path.join(d, name)
        if not os.path.lexists(link):
            os.makedirs(d, exist_ok=True)
            os.symlink(self.suite.postern, link)
        return link

    def program(self, name):
        """The path of an executable called name that is postern (argv[0]
        = name), for programs that run it themselves: mutt, PHP, git, a
        shell.  A symbolic link; under POSTERN_WRAPPER a shell script that
        runs such a link under the wrapper."""
        if not WRAPPER:
            return self._link(name)
        d = os.path.join(self.dir, "programs")
        path = os.path.join(d, name)
        if os.path.lexists(path):
            return path
        os.makedirs(d, exist_ok=True)
        link = self._link(name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n" %
                    " ".join(shlex.quote(a) for a in WRAPPER + [link]))
        os.chmod(path, 0o755)
        return path

    def postern(self, args, stdin=b"", env=None, timeout=30, argv0=None, rss=False):
        """Run postern; returns a Result.  Never waits more than timeout.
        With rss, postern runs under a small wrapper that records its peak
        resident set size (Result.maxrss_kb)."""
        if isinstance(stdin, str):
            stdin = stdin.encode()
        exe = self.suite.postern
        argv = [argv0 or exe] + list(args)
        rssfile = None
        if rss:
            rssfile = os.path.join(self.dir, "rss")
            argv = [PY, "-c", _RSS_WRAPPER, rssfile, exe] + argv
            exe = PY
        elif WRAPPER:
            argv, exe = self._wrapped(argv0, args)
            timeout = self.slow(timeout)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, executable=exe, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.env(env), cwd=self.home, start_new_session=True)
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            r = Result(args, None, out, err, time.monotonic() - t0)
            self.runs.append(r)
            raise Fail("postern did not finish within %g s (killed)" % timeout)
        r = Result(args, p.returncode, out, err, time.monotonic() - t0)
        self.runs.append(r)
        if rssfile:
            with open(rssfile) as f:
                r.maxrss_kb = int(f.read())
        return r

    # -- expectations -----------------------------------------------------
    def check(self, cond, what):
        if not cond:
            raise Fail(what)

    def eq(self, got, want, what):
        if got != want:
            if isinstance(got, bytes) and isinstance(want, bytes):
                i = first_difference(got, want)
                raise Fail("%s: %d bytes received, %d expected; first difference at "
                           "offset %d: got %r, want %r" %
                           (what, len(got), len(want), i, got[max(0, i - 20):i + 40],
                            want[max(0, i - 20):i + 40]))
            raise Fail("%s: got %r, want %r" % (what, got, want))

    def expect_exit(self, r, code):
        if r.code != code:
            raise Fail("exit status %s, want %s" % (r.code, code))

    def expect_stderr(self, r, *words):
        """Each word (case-insensitive) must appear in stderr; a tuple means
        any one of its words; a compiled regex is searched as it is."""
        text = r.stderr

        def found(a):
            if isinstance(a, re.Pattern):
                return a.search(text)
            return a.lower() in text.lower()
        for w in words:
            alts = w if isinstance(w, tuple) else (w,)
            if not any(found(a) for a in alts):
                raise Fail("stderr does not mention %s" % " or ".join(
                    repr(getattr(a, "pattern", a)) for a in alts))

    def expect_failure_line(self, r, code, *words):
        """Exit code, exactly one stderr line starting "postern:", words in it."""
        self.expect_exit(r, code)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        if len(lines) != 1:
            raise Fail("want one stderr line naming the cause, got %d lines" % len(lines))
        if not lines[0].startswith("postern:"):
            raise Fail("stderr line does not start with 'postern:'")
        if "()" in lines[0] or '""' in lines[0]:
            raise Fail("stderr line has an empty () or \"\" where a value belongs")
        self.expect_stderr(r, *words)

    def expect_no_secret(self, r, secret=PASSWORD, user=USER):
        """Neither the secret nor its AUTH encodings appear in any output."""
        both = r.out + r.err
        bad = [secret.encode(),
               b64(b"\0" + user.encode() + b"\0" + secret.encode()).encode(),
               b64(user.encode() + b"\0" + user.encode() + b"\0" + secret.encode()).encode(),
               b64(secret.encode()).encode()]
        for b in bad:
            if b in both:
                raise Fail("postern's output contains the secret (or its base64): %r" % b)

    def only_message(self, srv):
        msgs = srv.messages()
        if len(msgs) != 1:
            raise Fail("server received %d messages, want 1" % len(msgs))
        return msgs[0]

    def elapsed_under(self, r, limit):
        limit = self.slow(limit)
        if r.secs >= limit:
            raise Fail("postern took %.2f s, want < %g s" % (r.secs, limit))

    # -- end ----------------------------------------------------------------
    def stop_servers(self):
        for s in self.servers:
            s.stop()

    def diagnostics(self):
        lines = []
        for title, text in self.notes:
            lines.append("%s:" % title)
            if not isinstance(text, str):
                text = "\n".join(map(str, text))
            lines += ["  " + x for x in text.splitlines()[:30]]
        for r in self.runs[-3:]:
            lines += r.describe()
        for s in self.servers:
            lines += s.describe()
        return lines

    def cleanup(self, failed):
        self.stop_servers()
        if failed and os.environ.get("POSTERN_TEST_KEEP"):
            return "kept " + self.dir
        shutil.rmtree(self.dir, ignore_errors=True)
        return None


class Suite:
    def __init__(self):
        self.tests = []
        self._ca = None
        self._dir = None
        self.postern = postern_binary()

    def test(self, name, todo=None):
        """Register a test.  todo: the reason a known gap makes it fail;
        it is then reported "# TODO" (automake: XFAIL, and XPASS - an
        error - once it passes, so the mark gets removed)."""
        def deco(fn):
            self.tests.append((name, fn, todo))
            return fn
        return deco

    @property
    def sanitized(self):
        """True when postern was built with AddressSanitizer (whose
        quarantine makes memory use grow with the work done), or runs
        under POSTERN_WRAPPER (valgrind)."""
        if WRAPPER:
            return True
        try:
            with open(self.postern, "rb") as f:
                return b"__asan_init" in f.read()
        except OSError:
            return False

    def ca(self):
        if self._ca is None:
            self._dir = tempfile.mkdtemp(prefix="postern-ca-")
            self._ca = calib.make_ca(os.path.join(self._dir, "ca"))
        return self._ca

    def _emit(self, line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _diag(self, lines):
        for ln in lines:
            self._emit("# " + ln.replace("\r", "\\r"))

    def run(self):
        self._emit("1..%d" % len(self.tests))
        if not os.access(self.postern, os.X_OK):
            self._emit("Bail out! no postern binary at %s (set POSTERN)" % self.postern)
            sys.exit(1)
        if subprocess.run([PY, "-c", "import aiosmtpd"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            self._emit("Bail out! %s cannot import aiosmtpd; apt-get install python3-aiosmtpd" % PY)
            sys.exit(1)
        filt = os.environ.get("POSTERN_TEST_ONLY")
        npass = nfail = nskip = ntodo = 0
        for i, (name, fn, todo) in enumerate(self.tests, 1):
            mark = " # TODO %s" % todo if todo else ""
            if filt and filt not in name:
                self._emit("ok %d - %s # SKIP not selected by POSTERN_TEST_ONLY" % (i, name))
                nskip += 1
                continue
            case = Case(self, name)
            t0 = time.monotonic()
            status, diag = "ok", []
            try:
                fn(case)
                if os.environ.get("POSTERN_TEST_VERBOSE"):
                    diag = case.diagnostics()
            except Skip as e:
                status = "skip"
                diag = [str(e)]
            except Fail as e:
                status = "not ok"
                diag = [str(e)] + case.diagnostics()
            except Exception:
                status = "not ok"
                diag = ["test raised an exception:"] + \
                    traceback.format_exc().splitlines() + case.diagnostics()
            finally:
                kept = case.cleanup(status == "not ok")
            secs = time.monotonic() - t0
            if status == "skip":
                self._emit("ok %d - %s # SKIP %s" % (i, name, diag[0]))
                nskip += 1
            elif status == "ok":
                self._emit("ok %d - %s%s" % (i, name, mark))
                self._diag(diag)
                npass += 1
            else:
                self._emit("not ok %d - %s%s" % (i, name, mark))
                self._diag(diag)
                if kept:
                    self._diag([kept])
                if todo:
                    ntodo += 1
                else:
                    nfail += 1
            if secs > 10:
                self._diag(["(test took %.1f s)" % secs])
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        _stop_all()
        self._diag(["%d passed, %d failed, %d skipped, %d known gaps (TODO)" %
                    (npass, nfail, nskip, ntodo)])
        sys.exit(0)


def sha256(data):
    return hashlib.sha256(data).hexdigest()
