"""Local receivers for alert delivery tests: a webhook endpoint and an SMTP server on 127.0.0.1.

Loaded by the test modules with ``importlib`` (tests are not a package). The webhook receiver
checks every request's HMAC signature with the secret it was given and keeps the requests; it can
be told to answer with given status codes first (``fail_with``) and can be started on a port
chosen in advance, to play a receiver that is down and then comes up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A JSON endpoint on ``http://127.0.0.1:<port>/hook`` recording signed requests."""

    secret: str
    port: int = field(default_factory=free_port)
    fail_with: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def keys(self) -> list[str]:
        """Idempotency keys of every request received, repeats included."""
        return [r.headers.get("Idempotency-Key", "") for r in self.requests]

    @property
    def unique(self) -> dict[str, Received]:
        """What a receiver that deduplicates on the idempotency key keeps."""
        out: dict[str, Received] = {}
        for r in self.requests:
            out.setdefault(r.headers.get("Idempotency-Key", ""), r)
        return out

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sig = self.headers.get("X-Workbench-Signature", "")
                good = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                code = receiver.fail_with.pop(0) if receiver.fail_with else 200
                receiver.requests.append(Received(dict(self.headers.items()), body, hmac.compare_digest(sig, good)))
                receiver.answered.append(code)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        #: address -> SMTP reply for RCPT TO (e.g. "550 5.1.1 no such user"); a list is answered in turn,
        #: then the address is accepted.
        self.refuse: dict[str, str | list[str]] = {}
        self.rcpts: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        self.rcpts.append(address)
        reply = self.refuse.get(address)
        if isinstance(reply, list):
            reply = reply.pop(0) if reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.content.decode("utf-8", "replace"),
                              "tls": session.ssl is not None, "authenticated": bool(session.authenticated)})
        return "250 OK"


@dataclass
class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 keeping every message; optional login and STARTTLS."""

    port: int = field(default_factory=free_port)
    users: dict[str, str] | None = None
    tls_files: tuple[Path, Path] | None = None  # (certificate, key)
    implicit_tls: bool = False  # SMTPS: TLS from the first byte instead of STARTTLS
    handler: _Recorder = field(default_factory=_Recorder)
    _controller: object = None

    @property
    def messages(self) -> list[dict]:
        return self.handler.messages

    def start(self) -> SmtpReceiver:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        kwargs: dict = {}
        if self.users is not None:
            users = self.users

            def authenticator(server, session, envelope, mechanism, auth_data):
                ok = users.get(auth_data.login.decode()) == auth_data.password.decode()
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=self.tls_files is not None and not self.implicit_tls)
        if self.tls_files is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(self.tls_files[0]), str(self.tls_files[1]))
            if self.implicit_tls:
                kwargs.update(ssl_context=ctx)
            else:
                kwargs.update(tls_context=ctx, require_starttls=True)
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (the certificate doubles as the CA file)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Trickler:
    """A TCP server on 127.0.0.1 that answers every connection one byte per ``delay`` seconds.

    ``reply`` is what it trickles: an HTTP answer (after reading the request: ``http=True``) or
    an SMTP greeting (sent at once on connect). ``connections`` counts the callers, ``cut``
    counts those that hung up before the whole reply was sent.
    """

    reply: bytes
    delay: float = 1.0
    http: bool = True
    port: int = field(default_factory=free_port)
    connections: int = 0
    cut: int = 0
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Trickler:
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if self.http:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                for i in range(len(self.reply)):
                    if self._stop.wait(self.delay if i else 0):
                        return
                    conn.sendall(self.reply[i:i + 1])
            except OSError:
                self.cut += 1

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


#: A complete HTTP answer of 40-odd bytes: trickled, it takes 40 s at one byte a second.
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: An SMTP greeting of 40-odd bytes.
SMTP_GREETING = b"220 trickle.example.com ESMTP ready now\r\n"
