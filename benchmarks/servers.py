"""The server the benchmark clients talk to, in a process of its own.

nginx (Debian's ``nginx-light`` or ``nginx``) serves the canned channel list on
loopback: one worker, no access log, keep-alive for the whole run, so it answers far
faster than one Python client can ask and the client's CPU is what gets measured.
Without nginx the harness falls back to :class:`kodmobi_async.testing.FakeKodMobi`,
run by this module as a child process (``python benchmarks/servers.py fake ...``);
it is written in Python, so it competes with the client for the machine's cores and
its numbers are only indicative.

With ``--tls`` both serve https (TLS 1.3 only) with a throwaway self-signed
certificate for 127.0.0.1 that :func:`make_certificate` makes with the ``openssl``
command; nginx terminates TLS itself, the fake gets a small TLS front end in its own
process (asyncio's TLS, relaying to the fake over loopback).

Nothing here installs anything: when nginx is missing the harness says how to get it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import attrs
from workload import (
    API_KEY,
    CHANNELS_PATH,
    SEED,
    canned_channels,
    canned_channels_body,
    session_ids,
)

__all__ = [
    "NGINX_INSTALL_HINT",
    "OPENSSL_INSTALL_HINT",
    "Server",
    "Tls",
    "find_nginx",
    "make_certificate",
    "run_fake",
    "run_nginx",
]

NGINX_INSTALL_HINT = "apt-get install -y nginx-light"
OPENSSL_INSTALL_HINT = "apt-get install -y openssl"
_STARTUP_TIMEOUT = 60.0

_NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    server {{
        listen 127.0.0.1:{port}{ssl};{tls}
        location = {path} {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""

# Only TLS 1.3, as kod.mobi's clients negotiate today; the session cache does not
# matter (keep-alive connections handshake once, during the warm-up).
_NGINX_TLS = """
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
"""


@attrs.frozen
class Tls:
    """A throwaway certificate and its key, for a server on 127.0.0.1.

    The certificate is self-signed, so it is also the CA clients must trust
    (``SSL_CERT_FILE``).

    Attributes:
        cert: PEM file of the certificate.
        key: PEM file of its private key.
    """

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this certificate and nothing else."""
        return ssl.create_default_context(cafile=str(self.cert))

    def server_context(self) -> ssl.SSLContext:
        """A server context with this certificate, TLS 1.3 only."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(self.cert, self.key)
        return context


@attrs.frozen
class Server:
    """A running benchmark server.

    Attributes:
        kind: ``"nginx"`` or ``"fake"``.
        url: Root URL clients send requests to.
        description: One line for the report (version, worker count).
    """

    kind: str
    url: str
    description: str


def find_nginx() -> str | None:
    """The path of the nginx binary, or ``None`` when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def make_certificate(directory: Path) -> Tls:
    """Make a self-signed P-256 certificate for ``IP:127.0.0.1``, valid for a day.

    Args:
        directory: Where to write ``cert.pem`` and ``key.pem`` (a temporary directory
            the caller deletes).

    Returns:
        The two files.

    Raises:
        RuntimeError: ``openssl`` is not installed or failed.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        msg = f"--tls needs the openssl command to make a certificate: {OPENSSL_INSTALL_HINT}"
        raise RuntimeError(msg)
    tls = Tls(cert=directory / "cert.pem", key=directory / "key.pem")
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        str(tls.key),
        "-out",
        str(tls.cert),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        msg = f"openssl could not make the certificate:\n{done.stderr.strip()}"
        raise RuntimeError(msg)
    return tls


def _tls_description(url: str, tls: Tls) -> str:
    """What a verifying client negotiates with the server, e.g. ``TLSv1.3 TLS_AES_...``."""
    port = int(url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
        tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
    ):
        cipher = wrapped.cipher()
        return f"{wrapped.version()} {cipher[0] if cipher else '?'}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(
    url: str, process: subprocess.Popen[bytes], log: Path | None, tls: Tls | None
) -> None:
    probe = f"{url}{CHANNELS_PATH}?session_id={next(session_ids(1))}"
    context = tls.client_context() if tls is not None else None
    request = urllib.request.Request(probe, headers={"x-api-key": API_KEY})  # noqa: S310
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log.read_text() if log is not None and log.exists() else ""
            msg = f"the server exited with status {process.returncode} while starting\n{detail}"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(  # noqa: S310 -- loopback
                request, timeout=1.0, context=context
            ) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    msg = f"the server at {url} did not answer within {_STARTUP_TIMEOUT:g} s"
    raise RuntimeError(msg)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _describe(kind: str, detail: str, url: str, tls: Tls | None, *, unique: bool) -> Server:
    payload = "session id echoed in each body" if unique else "one canned body"
    transport = f"https ({_tls_description(url, tls)})" if tls is not None else "http"
    return Server(kind, url, f"{detail}, {transport}, {payload}")


@contextlib.contextmanager
def run_nginx(nginx: str, *, unique: bool = False, tls: Tls | None = None) -> Iterator[Server]:
    """Run nginx with a generated config in a temporary prefix, for the ``with`` block.

    Args:
        nginx: Path of the nginx binary (see :func:`find_nginx`).
        unique: Echo each request's session id into the answer (a channel's
            ``description``), so no two answers are byte-for-byte equal and a client
            cannot save work by recognising a body it has already decoded.
        tls: Serve https (TLS 1.3 only) with this certificate; plain http when None.

    Yields:
        The running server.

    Raises:
        RuntimeError: nginx exited or did not answer while starting.
    """
    body = canned_channels_body()
    if "'" in body or "$" in body or "\\" in body:
        msg = "the canned body needs escaping for nginx's return directive"
        raise RuntimeError(msg)
    if unique:
        # nginx expands variables in `return` text.
        body = canned_channels_body("$arg_session_id")
    version = subprocess.run(  # noqa: S603 -- our own binary path, fixed arguments
        [nginx, "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    with tempfile.TemporaryDirectory(prefix="kodmobi-bench-nginx-") as prefix:
        port = _free_port()
        conf = Path(prefix, "nginx.conf")
        directives = "" if tls is None else _NGINX_TLS.format(cert=tls.cert, key=tls.key)
        conf.write_text(
            _NGINX_CONF.format(
                prefix=prefix,
                port=port,
                ssl="" if tls is None else " ssl",
                tls=directives.rstrip(),
                path=CHANNELS_PATH,
                body=body,
            )
        )
        log = Path(prefix, "error.log")
        # -e: before reading the config nginx opens its compiled-in error log
        # (/var/log/nginx/error.log), which need not exist or be writable.
        command = [nginx, "-p", prefix, "-c", str(conf), "-e", str(log)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
        try:
            url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
            _wait_ready(url, process, log, tls)
            yield _describe("nginx", f"{version}, 1 worker, keep-alive", url, tls, unique=unique)
        finally:
            _stop(process)


@contextlib.contextmanager
def run_fake(
    session_count: int, *, unique: bool = False, tls: Tls | None = None
) -> Iterator[Server]:
    """Run ``FakeKodMobi`` in a child process that knows the benchmark's session ids.

    Args:
        session_count: How many ids of :func:`workload.session_ids` to register, i.e.
            the largest batch any client will send.
        unique: Register each session with its own id as the Telegram channel's
            ``description``, as nginx's unique mode echoes it.
        tls: Serve https through a TLS front end in the fake's process; http when None.

    Yields:
        The running server.

    Raises:
        RuntimeError: The fake exited or did not answer while starting.
    """
    port = _free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "fake",
        "--port",
        str(port),
        "--sessions",
        str(session_count),
    ]
    if unique:
        command.append("--unique")
    if tls is not None:
        command += ["--cert", str(tls.cert), "--key", str(tls.key)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
    try:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        _wait_ready(url, process, None, tls)
        detail = "FakeKodMobi (Python, aiohttp) in its own process"
        if tls is not None:
            detail += " behind a Python TLS relay"
        yield _describe("fake", detail, url, tls, unique=unique)
    finally:
        _stop(process)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def _tls_front(
    upstream_port: int,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A connection handler that relays decrypted bytes to the fake on ``upstream_port``."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_relay(client_r, server_w), _relay(server_r, client_w))

    return handle


async def _serve_fake(port: int, sessions: int, *, unique: bool, tls: Tls | None) -> None:
    from kodmobi_async.testing import FakeKodMobi

    fake = FakeKodMobi(api_keys=[API_KEY], port=0 if tls else port, record_requests=False)
    channels = canned_channels()
    for session_id in session_ids(sessions, SEED):
        if unique:
            for channel in channels:
                if "description" in channel:
                    channel["description"] = session_id
            fake.add_session(session_id, channels=channels)
        else:
            fake.add_session(session_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with fake:
        if tls is None:
            await stop.wait()
            return
        upstream = int(fake.url.rsplit(":", 1)[1])
        front = await asyncio.start_server(
            _tls_front(upstream), "127.0.0.1", port, ssl=tls.server_context()
        )
        async with front:
            await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the fake in this process: ``python benchmarks/servers.py fake --port P``."""
    parser = argparse.ArgumentParser(description="Run the benchmark's fallback server.")
    parser.add_argument("kind", choices=["fake"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, required=True)
    parser.add_argument("--unique", action="store_true", help="a different body per id")
    parser.add_argument("--cert", type=Path, default=None, help="serve https with this PEM")
    parser.add_argument("--key", type=Path, default=None, help="the certificate's key")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    tls = Tls(args.cert, args.key) if args.cert is not None else None
    asyncio.run(_serve_fake(args.port, args.sessions, unique=args.unique, tls=tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
