#!/bin/bash
# demo.sh - show postern doing its job, end to end, on this machine.
#
#   tests/demo.sh [PATH-TO-POSTERN]        (default: ./postern)
#
# Builds nothing.  Makes a throwaway certificate authority, starts a test
# SMTP server on a loopback port (STARTTLS, AUTH PLAIN/LOGIN, user "demo"
# with a random password), writes a ~/.smtprc in a private HOME that uses
# tls_ca_file and password_command, pipes a message into
# `postern -v joe@example.com`, then prints what the server received: the
# envelope and the exact message bytes.  Exits with postern's status.
# Needs Debian's /usr/bin/python3 with python3-aiosmtpd, and openssl.
set -u

POSTERN=${1:-./postern}
case $POSTERN in /*) ;; *) POSTERN=$PWD/$POSTERN ;; esac
if [ ! -x "$POSTERN" ]; then
	echo "demo: no postern binary at $POSTERN; build it first (make) or give its path" >&2
	exit 69
fi
LIB=$(cd "$(dirname "$0")" && pwd)/lib
PY=/usr/bin/python3
if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
	echo "demo: $PY cannot import aiosmtpd; apt-get install python3-aiosmtpd" >&2
	exit 69
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/postern-demo.XXXXXX")
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null
		wait "$SERVER_PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
indent() { sed 's/^/    /'; }

# 1. A certificate authority and a certificate for localhost.
say "1. A throwaway certificate authority and a server certificate for localhost"
if ! CAVARS=$("$PY" "$LIB/ca.py" "$WORK/ca"); then
	echo "demo: could not make the test CA" >&2
	exit 70
fi
eval "$CAVARS"
echo "CA certificate:     $CA_CERT"
echo "server certificate: $SERVER_CERT"

# 2. The test SMTP server.
PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
cat >"$WORK/server.json" <<EOF
{"tls": "starttls", "cert": "$SERVER_CERT", "key": "$SERVER_KEY",
 "users": {"demo": "$PASSWORD"}, "ehlo_extra": ["PIPELINING"],
 "outdir": "$WORK/received", "lifetime": 60}
EOF
mkfifo "$WORK/port.fifo"
"$PY" "$LIB/smtpd.py" --config "$WORK/server.json" >"$WORK/port.fifo" 2>"$WORK/server.log" &
SERVER_PID=$!
# The server writes its port once it listens; read blocks until then.
PORT=
read -r -t 20 PORT <"$WORK/port.fifo"
if [ -z "$PORT" ]; then
	echo "demo: the test SMTP server did not start:" >&2
	cat "$WORK/server.log" >&2
	exit 70
fi
say "2. A test SMTP server on localhost port $PORT (STARTTLS required for AUTH; user demo)"

# 3. A private HOME with ~/.smtprc.
export HOME=$WORK/home
export XDG_CONFIG_HOME=$HOME/.config XDG_STATE_HOME=$HOME/.local/state
unset SMTPRC DBUS_SESSION_BUS_ADDRESS
mkdir -p "$HOME"
umask 077
cat >"$HOME/.smtprc" <<EOF
[demo]
host = localhost
port = $PORT
tls = starttls
tls_ca_file = $CA_CERT
user = demo
password_command = printf '%s' '$PASSWORD'
from = demo@example.com
queue = off
EOF
say "3. ~/.smtprc (in a private HOME, $HOME)"
indent <"$HOME/.smtprc"

# 4. The main job.
say "4. printf 'Subject: hi\\n\\nbody\\n' | postern -v joe@example.com"
printf 'Subject: hi\n\nbody\n' | "$POSTERN" -v joe@example.com
STATUS=$?
echo "postern exited with status $STATUS"

# 5. What the server got.
if [ -f "$WORK/received/msg-1.json" ]; then
	say "5. The envelope the server received"
	"$PY" - "$WORK/received/msg-1.json" <<'EOF' | indent
import json, sys
m = json.load(open(sys.argv[1]))
print("MAIL FROM:   <%s> %s" % (m["mail_from"], " ".join(m["mail_options"])))
for r in m["rcpt_tos"]:
    print("RCPT TO:     <%s>" % r)
auth = m.get("auth") or {}
print("AUTH:        %s as %s" % (auth.get("mechanism", "none"), auth.get("login", "-")))
print("TLS:         %s" % (m.get("tls") or "none"))
print("size:        %d bytes" % m["size"])
EOF
	say "6. The message the server received (exact bytes; every line ends in CRLF)"
	sed 's/\r$//' "$WORK/received/msg-1.eml" | indent
else
	say "5. The server received no message. Its log:"
	indent <"$WORK/received/transcript.log" 2>/dev/null
fi
echo
exit $STATUS
