"""A throw-away CA and a serving certificate for the admission webhook server, made with the
openssl CLI (the venv has no `cryptography` package, and requirements*.txt may not grow).

The API server calls a webhook given by clientConfig.url over TLS, checks the serving
certificate against clientConfig.caBundle, and (Go's crypto/x509) matches the URL's host
against the certificate's subjectAltName only, never its CN (Kubernetes docs, "Dynamic
Admission Control", Contacting the webhook: url and caBundle). Hence SAN IP:127.0.0.1.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServingCert:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def make_serving_cert(folder: Path, host: str = "127.0.0.1") -> ServingCert:
    """CA (ca.crt) and a server certificate for `host` signed by it, in `folder`."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=gke-mesh testbed managed-mesh CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    _openssl("req", *ec, "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=istiod.istio-system.svc", cwd=folder)
    (folder / "ext.cnf").write_text(f"subjectAltName=IP:{host},DNS:istiod.istio-system.svc\n"
                                    "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n")
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf", cwd=folder)
    return ServingCert((folder / "ca.crt").read_bytes(), folder / "tls.crt", folder / "tls.key")
