"""labs.py - what the private server labs share (postfixlab, eximlab,
dovecotlab).

Each lab runs a real server under one temp dir on loopback ports, started
as root, with a watchdog process that ends it when the creating process is
gone or the lifetime is over.  Shared here: the error a lab raises
(LabError), the greeting check of a port (banner(), await_greetings()),
the files (write(), lines(), remove()), the watchdog (watchdog(),
DAEMON_WATCHDOG, end()), the processes and connections of a session
(session_members(), busy_ports(), settle()), a maildir's new/ (Maildir)
and a server that runs in the foreground as one process (Daemon).
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

# The liveness test of a watchdog script (a text for `python3 -c`).
ALIVE = r"""
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
"""

# The watchdog of a server that runs in the foreground in a session of its
# own (argv: the creating process, the server's PID, the lifetime): it
# ends the session when either process is gone or the lifetime is over.
DAEMON_WATCHDOG = r"""
import os, signal, sys, time
parent, pid, lifetime = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + lifetime
""" + ALIVE + r"""
while alive(parent) and alive(pid) and time.monotonic() < end:
    time.sleep(1)
try:
    os.killpg(pid, signal.SIGTERM)
    time.sleep(2)
    os.killpg(pid, signal.SIGKILL)
except OSError:
    pass
"""


class LabError(Exception):
    """The instance could not be set up or started."""


# -- files -------------------------------------------------------------------
def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def lines(path):
    """The lines of a text file (undecodable bytes replaced); [] when it
    cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def remove(d):
    """Remove a lab's directory, unless POSTERN_TEST_KEEP is set."""
    if not os.environ.get("POSTERN_TEST_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


# -- greetings ---------------------------------------------------------------
def banner(port, implicit, greets, wait_bye=True):
    """Connect to 127.0.0.1:port (TLS from the first byte if implicit,
    the certificate not verified), read the greeting, send QUIT (and read
    the reply if wait_bye); True if greets(greeting bytes) holds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            if implicit:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            ok = greets(s.recv(512))
            s.sendall(b"QUIT\r\n")
            if wait_bye:
                s.recv(512)
            return ok
    except OSError:
        return False


def await_greetings(ports, implicit, greets, give_up, pause=0.05, wait_bye=True):
    """Wait until every port of ports ({name: port}) greets as banner()
    checks it (TLS from the first byte where implicit(name)).  After each
    try that fails give_up(port) is asked: it raises to end the wait with
    an error, or returns True to end it without one (then the result is
    False); else the next try follows after pause seconds."""
    for name, port in ports.items():
        while not banner(port, implicit(name), greets, wait_bye):
            if give_up(port):
                return False
            time.sleep(pause)
    return True


# -- processes ---------------------------------------------------------------
def watchdog(script, *args):
    """Start a watchdog (python text script) in a session of its own; its
    arguments: this process's PID, then args."""
    return subprocess.Popen(
        ["/usr/bin/python3", "-c", script, str(os.getpid())] + [str(a) for a in args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def end(proc):
    """Kill a process started with Popen (a watchdog), if it still runs."""
    if proc and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def session_members(sid):
    """PIDs of the processes in session sid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            out.append(int(name))
    return out


def busy_ports(ports):
    """Local ports among ports with a TCP connection that is neither
    listening nor in TIME_WAIT (a session still going on)."""
    busy = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state = cols[1], cols[3]
            port = int(local.rsplit(":", 1)[1], 16)
            if port in ports and state not in ("0A", "06", "07"):
                busy.add(port)
    return busy


def settle(ports, idle, limit):
    """Wait up to limit seconds until no session is open on ports and
    idle() holds; True if so."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not busy_ports(ports) and idle():
            return True
        time.sleep(0.05)
    return False


# -- what a lab is -----------------------------------------------------------
class Maildir:
    """What a maildir self.maildir received, from its new/."""

    def delivered(self):
        """{file name: bytes} in the maildir's new/."""
        new = os.path.join(self.maildir, "new")
        out = {}
        if os.path.isdir(new):
            for n in sorted(os.listdir(new)):
                with open(os.path.join(new, n), "rb") as f:
                    out[n] = f.read()
        return out

    def delivered_names(self):
        new = os.path.join(self.maildir, "new")
        return set(os.listdir(new)) if os.path.isdir(new) else set()


class Daemon:
    """A server that runs in the foreground as one process (self.proc), in
    a session of its own, with DAEMON_WATCHDOG; everything under the temp
    dir self.d.  A subclass names it (NAME: the temp dir postern-NAME-*,
    the file NAME.stderr; COMMAND: for errors), says how long SIGTERM may
    take (STOP_WAIT), and defines _configure() (new ports, the
    configuration), _start(lifetime, last) and log_tail(n)."""

    NAME = COMMAND = None
    STOP_WAIT = 5

    def __init__(self, slow, base):
        self.d = tempfile.mkdtemp(prefix="postern-%s-" % self.NAME, dir=base)
        self.slow = slow
        self.proc = None
        self.watchdog = None
        os.chmod(self.d, 0o755)

    def _launch(self, lifetime):
        # free_port() can race with other programs on the machine: on
        # "Address already in use" start again on new ports.
        for attempt in range(3):
            self._configure()
            if self._start(lifetime, last=attempt == 2):
                return

    def _spawn(self, argv, lifetime):
        """Start argv (output to NAME.stderr) and its watchdog; returns the
        deadline of the start-up."""
        with open(os.path.join(self.d, self.NAME + ".stderr"), "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                start_new_session=True, cwd=self.d)
        self.watchdog = watchdog(DAEMON_WATCHDOG, self.proc.pid, lifetime)
        return time.monotonic() + 20 * self.slow

    def _failed(self, why):
        tail = self.log_tail(5) + " | " + self._stderr()
        self.stop()
        raise LabError("%s %s: %s" % (self.COMMAND, why, tail))

    def _stderr(self):
        return " | ".join(lines(os.path.join(self.d, self.NAME + ".stderr"))[-5:])

    def stop(self):
        """Stop the server (by its PID, then whatever is left of its
        session) and the watchdog."""
        self._kill()
        remove(self.d)

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.STOP_WAIT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc:
            for pid in session_members(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        end(self.watchdog)
