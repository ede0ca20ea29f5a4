"""Network calls of the alert channels, each bounded by one total deadline, and their errors named.

A socket timeout bounds each read, not a call: a receiver that answers one byte a second keeps a
call alive for as long as it likes. Here every call (connect, TLS handshake, send, reading the
answer) runs under a :class:`Watchdog` that shuts the call's socket down when the channel's
``timeout`` has passed, so the call ends within the deadline plus a few milliseconds whatever the
receiver does. Name resolution happens before a socket exists and is bounded by the system
resolver's own timeout.

Failures become a :class:`SendError` with a ``kind``:

``timeout``        the call did not finish within the deadline (retried by a later run);
``unavailable``    the receiver is down, refused the connection or answered 5xx/429 (retried);
``rejected``       the receiver refused this alert (HTTP 4xx, SMTP 5xx on the message);
``configuration``  the channel cannot work as configured: unknown host, malformed URL, TLS
                   required but not offered, an untrusted certificate, login refused, a secret
                   not set. Never retried as an outage: fix the channel, then
                   ``workbench alerts retry``.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

__all__ = ["SendError", "Watchdog", "post", "BoundedSMTP", "BoundedSMTPSSL", "ERROR_KINDS", "dns_failure",
           "webhook_error", "http_status_error", "smtp_error", "reply_text", "refusals_text"]

log = logging.getLogger(__name__)

#: The kinds of :class:`SendError`, from "try again later" to "fix the channel".
ERROR_KINDS = ("timeout", "unavailable", "rejected", "configuration")
_RETRYABLE = {"timeout", "unavailable"}
#: HTTP answers that say the channel points at the wrong place or holds the wrong credentials.
_CONFIG_HTTP = {401, 403, 404, 405, 410}


class SendError(RuntimeError):
    """One attempt to send failed.

    Attributes
    ----------
    kind : str
        One of :data:`ERROR_KINDS`.
    retryable : bool
        Whether trying again may help (``timeout`` and ``unavailable``).
    retry_after : float or None
        Seconds the receiver asked to wait (HTTP ``Retry-After``).
    refused : dict
        Recipients the server refused, ``{address: (code, reply)}`` (e-mail only).
    """

    def __init__(self, message: str, *, retryable: bool | None = None, retry_after: float | None = None,
                 kind: str | None = None, refused: dict[str, tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        if kind is None:
            kind = "unavailable" if retryable is None or retryable else "rejected"
        if kind not in ERROR_KINDS:
            raise ValueError(f"SendError kind must be one of {ERROR_KINDS}, got {kind!r}")
        self.kind = kind
        self.retryable = kind in _RETRYABLE
        self.retry_after = retry_after
        self.refused = dict(refused or {})

    @property
    def configuration(self) -> bool:
        """Whether the channel is misconfigured (nothing it sends can arrive until it is fixed)."""
        return self.kind == "configuration"


class Watchdog:
    """Shuts down the sockets it watches once ``seconds`` have passed since it was entered.

    Each watched socket is duplicated, so the shutdown reaches the connection whatever wraps it
    later (TLS, STARTTLS) and never touches a descriptor the call has closed and the process
    reused. Use as a context manager around one call; :attr:`fired` says whether it cut the call.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = max(float(seconds), 0.0)
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False
        self._start = time.monotonic()
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._start = time.monotonic()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()

    def remaining(self) -> float:
        """Seconds left before the deadline (at least 1 ms, so a socket timeout stays valid)."""
        return max(self.seconds - (time.monotonic() - self._start), 0.001)

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock``'s connection at the deadline (at once when it has passed)."""
        dup = sock.dup()
        with self._lock:
            if self._done:
                dup.close()
                return
            self._sockets.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def cancel(self) -> None:
        """Stop watching (the call has ended) and release the duplicates."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer: nothing to cut
        pass


# ---------------------------------------------------------------- HTTP
class _DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections (direct or through an HTTP proxy) report their sockets."""

    def __init__(self, dog: Watchdog) -> None:
        self._dog = dog
        super().__init__(max_retries=0)

    def _pools(self) -> dict[str, type[HTTPConnectionPool]]:
        dog = self._dog

        class Plain(HTTPConnection):
            def _new_conn(self) -> socket.socket:
                sock = super()._new_conn()
                dog.watch(sock)
                return sock

        class Secure(HTTPSConnection):
            def _new_conn(self) -> socket.socket:
                sock = super()._new_conn()
                dog.watch(sock)
                return sock

        return {"http": type("PlainPool", (HTTPConnectionPool,), {"ConnectionCls": Plain}),
                "https": type("SecurePool", (HTTPSConnectionPool,), {"ConnectionCls": Secure})}

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools()

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = self._pools()
        return manager


def post(url: str, *, data: bytes, headers: dict[str, str], timeout: float, where: str) -> requests.Response:
    """POST ``data`` and return the answer's status and headers within ``timeout`` seconds in total.

    The body of the answer is not read. Raises :class:`SendError` (kind ``timeout`` when the
    deadline cut the call; see :func:`webhook_error` for the others).
    """
    dog = Watchdog(timeout)
    session = requests.Session()
    adapter = _DeadlineAdapter(dog)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    with dog, session:
        try:
            resp = session.post(url, data=data, headers=headers, timeout=(dog.remaining(), dog.remaining()),
                                allow_redirects=False, stream=True)
            resp.close()
            return resp
        except requests.RequestException as exc:
            if dog.fired or isinstance(exc, requests.Timeout):
                raise SendError(f"{where}: no complete answer within {timeout:g} s (total deadline)",
                                kind="timeout") from None
            raise webhook_error(exc, where) from None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, arguments)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        linked = [cur.__cause__, cur.__context__, getattr(cur, "reason", None), *getattr(cur, "args", ())]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def dns_failure(exc: BaseException) -> socket.gaierror | None:
    """The resolver's answer inside ``exc`` when it says the host does not exist (not "try again")."""
    for e in _chain(exc):
        if isinstance(e, socket.gaierror) and e.errno != socket.EAI_AGAIN:
            return e
    return None


def _cert_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    return next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)


def webhook_error(exc: BaseException, where: str) -> SendError:
    """The :class:`SendError` of a failed HTTP call (configuration errors named as such)."""
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.URLRequired, ValueError)):
        return SendError(f"{where}: malformed webhook URL ({type(exc).__name__})", kind="configuration")
    if (dns := dns_failure(exc)) is not None:
        return SendError(f"{where}: unknown host ({dns.strerror or dns})", kind="configuration")
    if (cert := _cert_failure(exc)) is not None:
        return SendError(f"{where}: TLS certificate not trusted ({cert.verify_message}); trust its CA "
                         "(REQUESTS_CA_BUNDLE) or fix the URL", kind="configuration")
    return SendError(f"{where}: {type(exc).__name__} (receiver unreachable)", kind="unavailable")


def http_status_error(status: int, where: str, retry_after: float | None) -> SendError:
    """The :class:`SendError` of a non-2xx answer."""
    if status in _CONFIG_HTTP:
        return SendError(f"{where}: HTTP {status} (wrong URL or credentials)", kind="configuration")
    if status in (408, 425, 429) or status >= 500:
        return SendError(f"{where}: HTTP {status}", kind="unavailable", retry_after=retry_after)
    return SendError(f"{where}: HTTP {status}", kind="rejected", retry_after=retry_after)


# ---------------------------------------------------------------- SMTP
class BoundedSMTP(smtplib.SMTP):
    """:class:`smtplib.SMTP` whose connection is watched by a :class:`Watchdog` (given as ``watchdog``)."""

    def __init__(self, host: str = "", port: int = 0, *, watchdog: Watchdog, **kwargs) -> None:
        self._watchdog = watchdog
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout, self.source_address)
        self._watchdog.watch(sock)
        return sock


class BoundedSMTPSSL(smtplib.SMTP_SSL):
    """:class:`smtplib.SMTP_SSL` (TLS from the first byte) watched by a :class:`Watchdog`."""

    def __init__(self, host: str = "", port: int = 0, *, watchdog: Watchdog, **kwargs) -> None:
        self._watchdog = watchdog
        super().__init__(host, port, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout, self.source_address)
        self._watchdog.watch(sock)  # before the handshake: a stalled handshake is cut too
        return self.context.wrap_socket(sock, server_hostname=self._host)


def smtp_error(exc: BaseException, *, where: str, host: str, port: int, sender: str, fired: bool,
           limit: float) -> SendError:
    """The :class:`SendError` of a failed SMTP session (``fired``: the watchdog cut it), configuration
    errors named as such."""
    if fired or isinstance(exc, (TimeoutError, socket.timeout)):
        return SendError(f"{where}: session not finished within {limit:g} s (total deadline)", kind="timeout")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        what = "STARTTLS (the channel has starttls: true)" if "STARTTLS" in str(exc) else "login (AUTH)"
        return SendError(f"{where}: the server does not offer {what}", kind="configuration")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendError(f"{where}: login refused (SMTP {exc.smtp_code})", kind="configuration")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = {str(a): (int(c), reply_text(t)) for a, (c, t) in exc.recipients.items()}
        permanent = all(code >= 500 for code, _ in refused.values())
        return SendError(f"{where}: every recipient refused ({refusals_text(refused)})",
                         kind="rejected" if permanent else "unavailable", refused=refused)
    if isinstance(exc, smtplib.SMTPSenderRefused) and exc.smtp_code >= 500:
        return SendError(f"{where}: sender {sender} refused (SMTP {exc.smtp_code})", kind="configuration")
    if isinstance(exc, smtplib.SMTPResponseException):
        if exc.smtp_code == 530:
            return SendError(f"{where}: the server requires a login (SMTP 530)", kind="configuration")
        return SendError(f"{where}: SMTP {exc.smtp_code}", kind="rejected" if exc.smtp_code >= 500 else "unavailable")
    if (dns := dns_failure(exc)) is not None:
        return SendError(f"{where}: unknown host {host} ({dns.strerror or dns})", kind="configuration")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendError(f"{where}: TLS certificate not trusted ({exc.verify_message}); set ca_file",
                         kind="configuration")
    if isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(exc):
        return SendError(f"{where}: the server does not speak TLS on port {port} (check ssl/starttls)",
                         kind="configuration")
    return SendError(f"{where}: {type(exc).__name__} (server unreachable or refused)", kind="unavailable")


def reply_text(text: object) -> str:
    """An SMTP reply (bytes from smtplib) as text."""
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def refusals_text(refused: dict[str, tuple[int, str]]) -> str:
    """``a@x 550 no such user; b@x 451 try later``."""
    return "; ".join(f"{addr} {code} {text}".strip() for addr, (code, text) in refused.items())
