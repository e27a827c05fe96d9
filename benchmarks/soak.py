"""Soak run: the FastAPI example under uvicorn, a steady load, and an upstream that misbehaves.

Three kinds of process, all on 127.0.0.1:

- the app: ``docs/examples/fastapi_app.py`` as it ships (one :class:`KodMobiClient` for
  the app's lifetime, a 3 s deadline and 2 attempts a lookup), served by ``python -W
  default -W error::ResourceWarning -m uvicorn fastapi_app:app`` with
  ``KODMOBI_BASE_URL`` pointing at
- the upstream: ``benchmarks/soak_upstream.py``, a fake kod.mobi that drops the
  connection, answers 503 or an nginx HTML 502 page, or answers slowly, for about 1 % of
  the requests it gets; this script kills it (SIGTERM and SIGKILL in turn) and starts it
  again on the same port a few times during the run;
- this process: the load generator (aiohttp, a steady request rate with a bound on the
  requests in flight), and the observer that reads the app's resident memory and open
  file descriptors from ``/proc`` every second.

It warms up (an upstream restart included), takes a quiet checkpoint of the app's
footprint, sends load for ``--duration`` seconds, takes a second checkpoint, stops the
app with SIGTERM (its lifespan closes the client) and reports: requests sent, the app's
answers by status and problem code (its mapping of the SDK's errors), latency
percentiles, the SDK errors and retries the app logged, and the app's memory and
descriptors at both checkpoints and under load. The exit status is 1 when descriptors or
memory grew past their margin, the app wrote a warning or any line it should not have,
answered 500 or left a request unanswered, or did not shut down cleanly. Linux only (it
reads ``/proc``)::

    python benchmarks/soak.py                # 60 s of load after a 10 s warm-up
    python benchmarks/soak.py --quick        # a smoke test, about 10 s in all
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp
import attrs
from soak_report import LOGGING, Observed, Sample, Settings, Tally, build_report, print_report
from workload import session_ids

from kodmobi_async.testing import FakeKodMobi

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_SCRIPT = Path(__file__).resolve().parent / "soak_upstream.py"
EXAMPLES = ROOT / "docs" / "examples"

# The first outages take the app's memory up in steps until it settles (see RSS_MARGIN_KIB
# in soak_report.py): the warm-up has its own restarts, so most steps come before the
# first checkpoint.
WARMUP_RESTARTS = 4

# What a caller asks the app for, and how often. Unknown and malformed ids exercise the
# 404 and 422 mappings; the batch endpoint makes several upstream calls per request.
MIX = (("known", 0.90), ("unknown", 0.04), ("malformed", 0.01), ("batch", 0.05))
BATCH_KNOWN = 4  # plus one unknown id per batch request
KNOWN_SESSIONS = 500
REQUEST_TIMEOUT = 10.0  # the app's own deadline is 3 s a lookup; this is far beyond it
STARTUP_TIMEOUT = 30.0
SAMPLE_EVERY = 1.0
PR_SET_PDEATHSIG = 1


def sample(pid: int, at: float) -> Sample:
    """Read a process's resident memory, descriptors and threads from ``/proc``.

    Args:
        pid: The process.
        at: The time to stamp the sample with.

    Returns:
        The sample.

    Raises:
        OSError: The process is gone.
    """
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")

    def field(name: str) -> int:
        match = re.search(rf"^{name}:\s+(\d+)", status, re.MULTILINE)
        return int(match.group(1)) if match else 0

    return Sample(
        at=round(at, 2),
        rss_kib=field("VmRSS"),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=field("Threads"),
    )


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if this script is killed outright
    # (SIGKILL, a test's timeout), the kernel sends uvicorn SIGTERM instead of leaving it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def wait_listening(port: int, process: asyncio.subprocess.Process, name: str) -> None:
    """Wait until something accepts connections on ``port``.

    Args:
        port: The loopback port.
        process: The process expected to listen there.
        name: Its name, for the error message.

    Raises:
        RuntimeError: The process exited, or did not listen within the startup timeout.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.returncode is not None:
            msg = f"the {name} exited with status {process.returncode} while starting"
            raise RuntimeError(msg)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    msg = f"the {name} did not listen on port {port} within {STARTUP_TIMEOUT:g} s"
    raise RuntimeError(msg)


async def stop(process: asyncio.subprocess.Process, signum: int, grace: float) -> int:
    """Send a signal and wait for the exit; SIGKILL after ``grace`` seconds.

    Args:
        process: The child.
        signum: The signal to send first.
        grace: Seconds to wait for it to exit.

    Returns:
        The exit status (negative for a signal).
    """
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return await process.wait()


@attrs.define
class Upstream:
    """The fake kod.mobi process, restartable on one port.

    Attributes:
        port: The loopback port it serves on, in every life.
        workdir: Where each life's stats file and output go.
        fault_rate: The share of requests that get a fault.
        max_seconds: How long any life may run at most.
        lives: The stats file of every life started so far.
        process: The running process, if any.
    """

    port: int
    workdir: Path
    fault_rate: float
    max_seconds: float
    lives: list[Path] = attrs.Factory(list)
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start a new life and wait until it listens."""
        life = len(self.lives) + 1
        stats = self.workdir / f"upstream-{life}.json"
        self.lives.append(stats)
        log = self.workdir / f"upstream-{life}.log"
        with log.open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(UPSTREAM_SCRIPT),
                "--port",
                str(self.port),
                "--sessions",
                str(KNOWN_SESSIONS),
                "--stats",
                str(stats),
                "--fault-rate",
                str(self.fault_rate),
                "--seed",
                str(life),
                "--max-seconds",
                str(self.max_seconds),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            await wait_listening(self.port, self.process, "upstream")
        except RuntimeError as exc:
            output_tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            msg = f"{exc}; its output:\n{output_tail}"
            raise RuntimeError(msg) from None

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        """End the current life with ``signum`` (SIGKILL: no goodbye to its clients)."""
        if self.process is not None:
            await stop(self.process, signum, grace=5.0)
            self.process = None

    def totals(self) -> tuple[int, Counter[str]]:
        """Requests served and faults scripted, summed over every life so far."""
        requests = 0
        faults: Counter[str] = Counter()
        for path in self.lives:
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(path.read_text(encoding="utf-8"))
                requests += document["requests"]
                faults.update(document["faults"])
        return requests, faults


@contextlib.asynccontextmanager
async def running_app(
    port: int, upstream_url: str, workdir: Path, stderr: IO[bytes]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Serve the FastAPI example with uvicorn in a child process, for the block.

    Args:
        port: The loopback port to serve on.
        upstream_url: The fake kod.mobi's URL, given to the app as ``KODMOBI_BASE_URL``.
        workdir: Where to write the app's logging configuration.
        stderr: Where the app's stderr (and stdout) go.

    Yields:
        The uvicorn process, listening.
    """
    log_config = workdir / "logging.json"
    log_config.write_text(json.dumps(LOGGING), encoding="utf-8")
    env = {
        **os.environ,
        "KODMOBI_API_KEY": FakeKodMobi.DEFAULT_API_KEY,
        "KODMOBI_BASE_URL": upstream_url,
        "PYTHONUNBUFFERED": "1",
    }
    # Only safe before any thread exists: preexec_fn runs between fork and exec.
    preexec = (
        _die_with_parent if sys.platform == "linux" and threading.active_count() == 1 else None
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        # Every warning once per place, and a ResourceWarning as an error: a leaked socket
        # or session then shows as "Exception ignored ... ResourceWarning" on stderr.
        "-W",
        "default",
        "-W",
        "error::ResourceWarning",
        "-m",
        "uvicorn",
        "fastapi_app:app",
        "--app-dir",
        str(EXAMPLES),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-config",
        str(log_config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stderr,
        stderr=stderr,
        env=env,
        cwd=ROOT,
        preexec_fn=preexec,
    )
    try:
        await wait_listening(port, process, "app")
        yield process
    finally:
        await stop(process, signal.SIGTERM, grace=10.0)


# -- load --------------------------------------------------------------------------------


@attrs.define
class Load:
    """A steady stream of requests to the app, with a bound on those in flight.

    Attributes:
        http: The load generator's session.
        rate: Requests a second.
        concurrency: Requests in flight at most; a tick that finds the bound reached
            sends nothing and is counted as skipped.
        rng: Picks each request.
        tally: Where the results go; None during the warm-up.
    """

    http: aiohttp.ClientSession
    rate: float
    concurrency: int
    rng: random.Random
    tally: Tally | None = None
    _in_flight: set[asyncio.Task[None]] = attrs.Factory(set)
    _known: list[str] = attrs.Factory(lambda: list(session_ids(KNOWN_SESSIONS)))

    async def run(self, seconds: float) -> None:
        """Send requests at the configured rate for ``seconds``."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in range(round(seconds * self.rate)):
            delay = start + tick / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self._in_flight) >= self.concurrency:
                if self.tally is not None:
                    self.tally.skipped += 1
                continue
            task = asyncio.create_task(self._one())
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def drain(self) -> None:
        """Wait for the requests in flight."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    def _request(self) -> tuple[str, str, Any]:
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        if kind == "known":
            return "GET", f"/sessions/{self.rng.choice(self._known)}/channels", None
        if kind == "unknown":
            return "GET", f"/sessions/{_unknown_id(self.rng)}/channels", None
        if kind == "malformed":
            return "GET", "/sessions/not-a-session-id/channels", None
        ids = [*self.rng.sample(self._known, BATCH_KNOWN), _unknown_id(self.rng)]
        return "POST", "/sessions/check", {"session_ids": ids}

    async def _one(self) -> None:
        tally = self.tally
        method, path, payload = self._request()
        started = time.perf_counter()
        try:
            async with self.http.request(method, path, json=payload) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            if tally is not None:
                tally.sent += 1
                tally.transport_errors[type(exc).__name__] += 1
            return
        if tally is None:
            return
        tally.sent += 1
        tally.latencies.append(time.perf_counter() - started)
        tally.statuses[status] += 1
        tally.problems.update(_problem_codes(status, body))


def _unknown_id(rng: random.Random) -> str:
    # Drawn from another sequence than the known ids: valid, and unknown to the upstream.
    return "7" + "".join(rng.choices("0123456789ABCDEFGHJKMNPQRSTVWXYZ", k=25))


def _problem_codes(status: int, body: bytes) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return [f"unparsable {status} body"]
    if status == 200 and isinstance(document, dict) and "results" in document:
        return [
            result["problem"]["code"]
            for result in document["results"].values()
            if result.get("problem") is not None
        ]
    if isinstance(document, dict) and isinstance(document.get("code"), str):
        return [document["code"]]
    if status != 200:
        return [f"no code in a {status} body"]
    return []


# -- the run -----------------------------------------------------------------------------


async def _sample_every(pid: int, start: float, samples: list[Sample]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        samples.append(sample(pid, loop.time() - start))
        await asyncio.sleep(SAMPLE_EVERY)


async def _restart(upstream: Upstream, signum: int, start: float, log: list[str]) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    await upstream.stop(signum)
    await upstream.start()
    name = signal.Signals(signum).name
    log.append(f"{began - start:5.1f} s: {name}, back in {loop.time() - began:.2f} s")


async def _restart_during(
    upstream: Upstream, seconds: float, count: int, origin: float, log: list[str]
) -> None:
    # Spread evenly over the next `seconds`, never in their last tenth, so the app has
    # reconnected before the load stops. SIGTERM and SIGKILL take turns.
    loop = asyncio.get_running_loop()
    begin = loop.time()
    for n in range(1, count + 1):
        at = seconds * 0.9 * n / (count + 1)
        await asyncio.sleep(max(0.0, begin + at - loop.time()))
        await _restart(upstream, signal.SIGTERM if n % 2 else signal.SIGKILL, origin, log)


async def _load_with_restarts(
    load: Load, upstream: Upstream, seconds: float, restarts: int, origin: float, log: list[str]
) -> None:
    restarter = asyncio.create_task(_restart_during(upstream, seconds, restarts, origin, log))
    try:
        await load.run(seconds)
        await load.drain()
        await restarter
    finally:
        restarter.cancel()
        await asyncio.gather(restarter, return_exceptions=True)


async def _quiet_sample(pid: int, upstream: Upstream, *, restart: bool) -> Sample:
    # Called with no request in flight and the load generator's connections closed.
    # Stopping the upstream (SIGTERM) closes the app's pooled connections; then wait
    # until the count has not moved for half a second, as the app handles the closes.
    await upstream.stop(signal.SIGTERM)
    if restart:
        await upstream.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    last, steady = sample(pid, loop.time()), 0
    while steady < 5 and loop.time() < deadline:
        await asyncio.sleep(0.1)
        now = sample(pid, loop.time())
        steady = steady + 1 if now.fds == last.fds else 0
        last = now
    return last


def _http(app_port: int, concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        f"http://127.0.0.1:{app_port}",
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def soak(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Run the app, the upstream and the load; return the report.

    Args:
        settings: The run's parameters.
        workdir: A directory for the children's logs and stats.

    Returns:
        The report, as :func:`print_report` and ``--json`` show it.
    """
    upstream_port, app_port = free_port(), free_port()
    upstream = Upstream(
        port=upstream_port,
        workdir=workdir,
        fault_rate=settings.fault_rate,
        max_seconds=settings.warmup + settings.duration + 120,
    )
    app_log = workdir / "app.log"
    rng = random.Random(settings.seed)
    samples: list[Sample] = []
    log: list[str] = []
    tally = Tally()
    loop = asyncio.get_running_loop()
    # The two start side by side: the app asks the upstream nothing before the load.
    starting = asyncio.create_task(upstream.start())
    try:
        with app_log.open("wb") as app_stderr:
            upstream_url = f"http://127.0.0.1:{upstream_port}"
            async with running_app(app_port, upstream_url, workdir, app_stderr) as app:
                await starting
                async with _http(app_port, settings.concurrency) as http:
                    warmup = Load(http, settings.rate, settings.concurrency, rng)
                    origin = loop.time() + settings.warmup
                    await _load_with_restarts(
                        warmup, upstream, settings.warmup, settings.warmup_restarts, origin, log
                    )
                first = await _quiet_sample(app.pid, upstream, restart=True)
                # The report counts from here: the warm-up's requests, faults and log
                # lines are left out (its warnings are not: they fail the run).
                measured_from = app_log.stat().st_size
                warmup_requests, warmup_faults = upstream.totals()
                start = loop.time()
                sampler = asyncio.create_task(_sample_every(app.pid, start, samples))
                try:
                    async with _http(app_port, settings.concurrency) as http:
                        load = Load(http, settings.rate, settings.concurrency, rng, tally)
                        await _load_with_restarts(
                            load, upstream, settings.duration, settings.restarts, start, log
                        )
                    measured = loop.time() - start
                finally:
                    sampler.cancel()
                    await asyncio.gather(sampler, return_exceptions=True)
                last = await _quiet_sample(app.pid, upstream, restart=False)
                first, last = (attrs.evolve(s, at=round(s.at - start, 2)) for s in (first, last))
                # Leaving the block stops the app with SIGTERM: its lifespan closes the client.
            app_exit = app.returncode
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await upstream.stop()
    upstream_requests, faults = upstream.totals()
    upstream_requests -= warmup_requests
    faults -= warmup_faults
    return build_report(
        settings,
        Observed(
            measured=measured,
            tally=tally,
            checkpoints=(first, last),
            samples=samples,
            restarts=log,
            app_exit=app_exit,
            app_lines=app_log.read_text(encoding="utf-8", errors="replace").splitlines(),
            measured_lines=app_log.read_bytes()[measured_from:]
            .decode("utf-8", errors="replace")
            .splitlines(),
            upstream_requests=upstream_requests,
            faults=faults,
        ),
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, str | None]:
    """Read the command line.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The settings, and the path for ``--json`` (None when not given).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of load before it")
    parser.add_argument("--rate", type=float, default=150.0, help="requests a second")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    parser.add_argument("--restarts", type=int, default=4, help="upstream restarts under load")
    parser.add_argument("--fault-rate", type=float, default=0.01, help="upstream fault share")
    parser.add_argument("--seed", type=int, default=1, help="seed of the request mix")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 3 s after a 1 s warm-up, 1 restart, memory not judged",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.restarts = 3.0, 1.0, 1
    if args.duration <= 0 or args.warmup < 0 or args.rate <= 0 or args.concurrency < 1:
        parser.error("--duration, --rate and --concurrency must be positive, --warmup >= 0")
    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        rate=args.rate,
        concurrency=args.concurrency,
        restarts=args.restarts,
        fault_rate=args.fault_rate,
        seed=args.seed,
        warmup_restarts=0 if args.quick else WARMUP_RESTARTS,
        # Seconds of load are too few for the allocator to settle: --quick checks the
        # harness and the descriptors, not memory.
        judge_memory=not args.quick,
    )
    return settings, args.json


async def _main(settings: Settings, workdir: Path) -> dict[str, Any]:
    # SIGTERM to this script cancels the run like Ctrl-C does, so the `finally` blocks
    # stop the app and the upstream either way.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await soak(settings, workdir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak and print the report.

    Args:
        argv: The arguments, without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The exit status: 0 when the run passed, 1 when a check failed, 130 when
        interrupted.
    """
    settings, json_path = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kodmobi-soak-") as workdir:
        try:
            report = asyncio.run(_main(settings, Path(workdir)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            print("soak: interrupted; the app and the upstream were stopped", file=sys.stderr)
            return 130
    print_report(report)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
