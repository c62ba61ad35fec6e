"""The device listener's TLS material: a private CA and the broker's key pair, made with openssl.

Generated on first use under the var directory's tls/ folder, beside the generated secrets
(secrets.env), every file mode 0600. The CA is kept across restarts so the CA file devices
trust stays valid; the broker's certificate is re-issued (by the same CA) whenever the names
devices dial change. Kafka reads the key and chain as one PEM keystore (ssl.keystore.type=PEM).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .config import write_private

CA_DAYS = 3650
BROKER_DAYS = 825  # the longest lifetime common TLS clients accept for a server certificate


def tls_dir(var: Path) -> Path:
    return var / "tls"


def ca_file(var: Path) -> Path:
    """The CA certificate devices trust (kafka-python's ssl_cafile)."""
    return tls_dir(var) / "ca.pem"


def keystore_file(var: Path) -> Path:
    """The broker's private key, certificate and CA in one PEM file, as Kafka reads it."""
    return tls_dir(var) / "broker-keystore.pem"


def subject_alt_names(hosts: list[str]) -> str:
    """An openssl subjectAltName value: IP entries for addresses, DNS entries for names."""
    entries = []
    for host in dict.fromkeys(hosts):  # unique, in order
        try:
            entries.append(f"IP:{ipaddress.ip_address(host.strip('[]'))}")
        except ValueError:
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def _private(path: Path) -> None:
    os.chmod(path, 0o600)


def ensure_ca(var: Path) -> bool:
    """Create the CA once; True if it was created now."""
    folder = tls_dir(var)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    key, cert = folder / "ca.key", ca_file(var)
    if key.exists() and cert.exists():
        return False
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
        "-keyout", str(key), "-out", str(cert), "-days", str(CA_DAYS),
        "-subj", "/CN=heartbeat device CA",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _private(key)
    _private(cert)
    return True


@contextmanager
def _exclusive(var: Path) -> Iterator[None]:
    """The nodes of a Kafka cluster share one TLS folder (one CA devices trust) and start at
    the same moment: one of them at a time makes or checks the material."""
    folder = tls_dir(var)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ensure_broker_certificate(var: Path, hosts: list[str]) -> bool:
    """Issue the broker's key pair for `hosts` unless the current one names exactly them;
    True if issued now. Writes the keystore Kafka reads."""
    with _exclusive(var):
        return _ensure_broker_certificate(var, hosts)


def _ensure_broker_certificate(var: Path, hosts: list[str]) -> bool:
    ensure_ca(var)
    folder = tls_dir(var)
    names = subject_alt_names(hosts)
    names_file, keystore = folder / "broker.names", keystore_file(var)
    if keystore.exists() and names_file.exists() and names_file.read_text().strip() == names:
        return False
    key, cert = folder / "broker.key", folder / "broker.pem"
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        csr, extensions = Path(scratch) / "broker.csr", Path(scratch) / "extensions.cnf"
        extensions.write_text(
            f"subjectAltName={names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={hosts[0]}",
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_file(var)),
            "-CAkey", str(folder / "ca.key"), "-set_serial", str(int.from_bytes(os.urandom(8))),
            "-days", str(BROKER_DAYS), "-sha256", "-extfile", str(extensions), "-out", str(cert),
        )  # fmt: skip
    # The key first, then the chain up to the CA.
    write_private(keystore, key.read_text() + cert.read_text() + ca_file(var).read_text())
    for path in (key, cert):
        _private(path)
    names_file.write_text(names + "\n")
    _private(names_file)
    return True
