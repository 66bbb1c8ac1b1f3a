#!/usr/bin/python3
"""ca.py - a throwaway certificate authority for postern's tests.

Made with the openssl command line (present wherever ca-certificates is),
so nothing beyond Debian's python3 is needed.  One CA per test run:

    ca = make_ca(directory)
    ca.ca_cert                 the CA certificate (give it as tls_ca_file)
    ca.server     (cert, key)  localhost, SAN DNS:localhost, IP:127.0.0.1, IP:::1
    ca.expired    (cert, key)  same names, validity ended in 2020
    ca.wronghost  (cert, key)  SAN DNS:mail.example.org only
    ca.selfsigned (cert, key)  localhost, not issued by the CA
    ca.client_cert(cn)         (cert, key) of a client certificate, made on demand
    fingerprint(cert_path)     "sha256:<64 lowercase hex>" of the DER

Run as a script (`ca.py DIR`) it makes the CA in DIR and prints the paths
as shell assignments, for tests/demo.sh.
"""

import hashlib
import os
import ssl
import subprocess
import sys

# One configuration serves `openssl req` and `openssl ca`; nothing is read
# from the system's openssl.cnf.
_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ ca ]
default_ca = testca
[ testca ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[ anything ]
commonName = supplied

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ leaf_localhost ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid

[ leaf_wronghost ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mail.example.org
authorityKeyIdentifier = keyid

[ leaf_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid

[ self_localhost ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
"""

_KEYOPTS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" % (
            " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


def fingerprint(cert_path):
    """sha256 of the certificate's DER, as tls_fingerprint wants it."""
    with open(cert_path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def fingerprint_colons(cert_path):
    """The same, written as `openssl x509 -fingerprint -sha256` prints it."""
    hexd = fingerprint(cert_path)[len("sha256:"):].upper()
    return "sha256:" + ":".join(hexd[i:i + 2] for i in range(0, len(hexd), 2))


class CA:
    def __init__(self, d):
        self.dir = d
        self.cnf = os.path.join(d, "openssl.cnf")
        self.ca_cert = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _csr(self, name, cn):
        _openssl(["req", "-new", "-config", self.cnf] + _KEYOPTS +
                 ["-keyout", name + ".key", "-out", name + ".csr",
                  "-subj", "/CN=" + cn], self.dir)

    def _sign(self, name, cn, ext, dates):
        _openssl(["ca", "-batch", "-config", self.cnf, "-notext",
                  "-in", name + ".csr", "-out", name + ".pem",
                  "-subj", "/CN=" + cn, "-extensions", ext] + dates, self.dir)
        return (self.path(name + ".pem"), self.path(name + ".key"))

    def issue(self, name, cn, ext="leaf_localhost", dates=None):
        """A certificate signed by the CA; dates are openssl ca options."""
        self._csr(name, cn)
        return self._sign(name, cn, ext, dates or ["-days", "3"])

    def client_cert(self, cn="postern-client"):
        """(cert, key) of a client certificate (extendedKeyUsage clientAuth)
        issued by the CA for AUTH EXTERNAL; made on first use."""
        cache = getattr(self, "_clients", None)
        if cache is None:
            cache = self._clients = {}
        if cn not in cache:
            name = "client-%d" % len(cache)
            cache[cn] = self.issue(name, cn, ext="leaf_client")
        return cache[cn]

    def self_signed(self, name, cn):
        _openssl(["req", "-x509", "-config", self.cnf] + _KEYOPTS +
                 ["-keyout", name + ".key", "-out", name + ".pem",
                  "-subj", "/CN=" + cn, "-days", "3",
                  "-extensions", "self_localhost"], self.dir)
        return (self.path(name + ".pem"), self.path(name + ".key"))


def make_ca(d):
    """Create the CA and every certificate the tests use in directory d."""
    os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
    ca = CA(d)
    with open(ca.cnf, "w") as f:
        f.write(_CNF.format(dir=d))
    open(ca.path("index.txt"), "w").close()
    with open(ca.path("serial"), "w") as f:
        f.write("%016X\n" % int.from_bytes(os.urandom(7), "big"))
    _openssl(["req", "-x509", "-config", ca.cnf] + _KEYOPTS +
             ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
              "-subj", "/CN=postern test CA", "-extensions", "v3_ca"], d)
    ca.server = ca.issue("server", "localhost")
    ca.expired = ca.issue("expired", "localhost",
                          dates=["-startdate", "20200101000000Z",
                                 "-enddate", "20200201000000Z"])
    ca.wronghost = ca.issue("wronghost", "mail.example.org", ext="leaf_wronghost")
    ca.selfsigned = ca.self_signed("selfsigned", "localhost")
    return ca


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: ca.py DIR\n")
        return 64
    d = os.path.abspath(sys.argv[1])
    ca = make_ca(d)
    print("CA_CERT=%s" % ca.ca_cert)
    print("SERVER_CERT=%s" % ca.server[0])
    print("SERVER_KEY=%s" % ca.server[1])
    print("SERVER_FINGERPRINT=%s" % fingerprint(ca.server[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
