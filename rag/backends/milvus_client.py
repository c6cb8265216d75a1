"""Connecting to Milvus for ``rag.backends.milvus``: the location, the client with a timeout on
every call, and failed calls as :class:`StoreError` naming the index and what to do."""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

from .base import IndexUnavailable, StoreError

DEFAULT_PORT = 19530
CONNECT_TIMEOUT = 5.0
# Seconds a call may take, retries included (pymilvus otherwise retries an unreachable server for
# minutes); RAG_MILVUS_TIMEOUT overrides it.
try:
    TIMEOUT = float(os.environ.get("RAG_MILVUS_TIMEOUT") or 60)
except ValueError:
    TIMEOUT = 60.0
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,200}")
INSTALL_HINT = "the milvus:// index needs the milvus extra: pip install 'persian-rag[milvus]'"


def client_errors() -> tuple:
    """The exception types of a failed Milvus call."""
    from pymilvus.exceptions import MilvusException

    errors: tuple = (MilvusException, ConnectionError, TimeoutError)
    try:
        import grpc

        errors += (grpc.RpcError,)
    except ImportError:
        pass
    return errors


def parse_location(location: str) -> tuple[str, int, str]:
    """``milvus://HOST[:PORT]/COLLECTION`` → ``(host, port, collection)``."""
    usage = "use milvus://HOST:PORT/COLLECTION (COLLECTION: letters, digits and _, not starting with a digit)"
    try:
        u = urlsplit(location)
        port = u.port or DEFAULT_PORT
    except ValueError as exc:
        raise StoreError(f"bad Milvus location {location!r} ({exc}); {usage}") from None
    name = u.path.strip("/")
    if u.scheme != "milvus" or not u.hostname or not _NAME.fullmatch(name) or u.query or u.fragment:
        raise StoreError(f"bad Milvus location {location!r}; {usage}")
    return u.hostname, port, name


def reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


# pymilvus pings every 10 s even with no call in flight; a server on gRPC's default policy (Milvus
# Lite's) answers an idle client's pings with GOAWAY "too_many_pings" after ~a minute, and the
# client's next connection to it could then fail (seen with an app idle while writers ran).
# A channel whose server went away reconnects on gRPC's backoff, which grows to 120 s by default:
# capped at 2 s, a restarted server is reached again within seconds (the app needs no restart).
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False, "grpc.initial_reconnect_backoff_ms": 500,
                "grpc.min_reconnect_backoff_ms": 500, "grpc.max_reconnect_backoff_ms": 2000}


def quiet_pymilvus() -> None:
    """pymilvus logs every failed call with its traceback at ERROR; the failure reaches the user as
    one StoreError line instead."""
    import logging

    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.decorators", "pymilvus.orm.iterator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(location: str):
    """``(client, host, port, name)`` for ``location``; a clear StoreError when Milvus is not there."""
    host, port, name = parse_location(location)
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise StoreError(INSTALL_HINT) from None
    quiet_pymilvus()
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        client = MilvusClient(uri=f"http://{netloc}", timeout=CONNECT_TIMEOUT, grpc_options=GRPC_OPTIONS)
    except client_errors() as exc:
        raise StoreError(f"cannot reach the Milvus server at {netloc} for the index {location} ({reason(exc)}); "
                         f"start Milvus there (for a local test server: milvus-lite server --data-dir DIR "
                         f"--host {host} --port {port}) or give the right --index location") from None
    return _Timed(client, TIMEOUT), host, port, name


class _Timed:
    """A MilvusClient whose calls all carry ``timeout`` (which bounds pymilvus's retries), and that
    loads a collection again when a restarted server has it released (a server comes back with its
    collections unloaded: without this, every search fails until the app is restarted)."""

    def __init__(self, client, timeout: float) -> None:
        self._client = client
        self.timeout = timeout

    def __getattr__(self, name: str):
        attr = getattr(self._client, name)
        if name == "close" or not callable(attr):
            return attr

        def call(*args, **kwargs):
            kwargs.setdefault("timeout", self.timeout)
            try:
                return attr(*args, **kwargs)
            except client_errors() as exc:
                if not (args and isinstance(args[0], str) and name != "load_collection" and released(exc)):
                    raise
            self._client.load_collection(args[0], timeout=self.timeout)
            return attr(*args, **kwargs)

        return call


def released(exc: BaseException) -> bool:
    """Whether a failed call failed because its collection is not loaded (a restarted server)."""
    text = reason(exc).lower()
    return "released" in text or "not loaded" in text


def unavailable(exc: BaseException) -> bool:
    """Whether a failed call failed because the server could not be reached (down, restarting,
    unreachable, or not answering in time), as opposed to refusing the request."""
    import grpc

    code = getattr(exc, "code", None)
    if callable(code):
        code = code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = reason(exc).lower()
    return any(w in text for w in ("unavailable", "fail connecting", "connection refused", "deadline", "timeout",
                                   "timed out", "failed to connect"))




@contextmanager
def wrap(location: str, doing: str) -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except client_errors() as exc:
        if unavailable(exc):
            raise IndexUnavailable(f"the index {location} is unavailable: its Milvus server does not answer "
                                   f"({doing}: {reason(exc)}); start it or wait for it, then try again") from None
        raise StoreError(f"Milvus index {location}: {doing} failed ({reason(exc)}); check that the Milvus server "
                         f"is running and reachable, then try again") from None
