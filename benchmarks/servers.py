"""The server the benchmark clients talk to, in a process of its own.

nginx (Debian's ``nginx-light`` or ``nginx``) serves the canned channel list on
loopback: one worker, no access log, keep-alive for the whole run, so it answers far
faster than one Python client can ask and the client's CPU is what gets measured.
Without nginx the harness falls back to :class:`kodmobi_async.testing.FakeKodMobi`,
run by this module as a child process (``python benchmarks/servers.py fake ...``);
it is written in Python, so it competes with the client for the machine's cores and
its numbers are only indicative.

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
from workload import API_KEY, CHANNELS_PATH, SEED, canned_channels_body, session_ids

__all__ = ["NGINX_INSTALL_HINT", "Server", "find_nginx", "run_fake", "run_nginx"]

NGINX_INSTALL_HINT = "apt-get install -y nginx-light"
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
        listen 127.0.0.1:{port};
        location = {path} {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path | None) -> None:
    probe = f"{url}{CHANNELS_PATH}?session_id={next(session_ids(1))}"
    request = urllib.request.Request(probe, headers={"x-api-key": API_KEY})  # noqa: S310
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log.read_text() if log is not None and log.exists() else ""
            msg = f"the server exited with status {process.returncode} while starting\n{detail}"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:  # noqa: S310 -- loopback
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


@contextlib.contextmanager
def run_nginx(nginx: str, *, unique: bool = False) -> Iterator[Server]:
    """Run nginx with a generated config in a temporary prefix, for the ``with`` block.

    Args:
        nginx: Path of the nginx binary (see :func:`find_nginx`).
        unique: Echo each request's session id into the answer (a channel's
            ``description``), so no two answers are byte-for-byte equal and a client
            cannot save work by recognising a body it has already decoded.

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
        conf.write_text(_NGINX_CONF.format(prefix=prefix, port=port, path=CHANNELS_PATH, body=body))
        log = Path(prefix, "error.log")
        # -e: before reading the config nginx opens its compiled-in error log
        # (/var/log/nginx/error.log), which need not exist or be writable.
        command = [nginx, "-p", prefix, "-c", str(conf), "-e", str(log)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log)
            payload = "session id echoed in each body" if unique else "one canned body"
            yield Server("nginx", url, f"{version}, 1 worker, keep-alive, {payload}")
        finally:
            _stop(process)


@contextlib.contextmanager
def run_fake(session_count: int) -> Iterator[Server]:
    """Run ``FakeKodMobi`` in a child process that knows the benchmark's session ids.

    Args:
        session_count: How many ids of :func:`workload.session_ids` to register, i.e.
            the largest batch any client will send.

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
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, None)
        yield Server("fake", url, "FakeKodMobi (Python, aiohttp) in its own process")
    finally:
        _stop(process)


async def _serve_fake(port: int, sessions: int) -> None:
    from kodmobi_async.testing import FakeKodMobi

    fake = FakeKodMobi(api_keys=[API_KEY], port=port, record_requests=False)
    for session_id in session_ids(sessions, SEED):
        fake.add_session(session_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with fake:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the fake in this process: ``python benchmarks/servers.py fake --port P``."""
    parser = argparse.ArgumentParser(description="Run the benchmark's fallback server.")
    parser.add_argument("kind", choices=["fake"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve_fake(args.port, args.sessions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
