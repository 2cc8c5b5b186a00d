"""Long-lived processes a run starts once per engine (a Spark Connect server, a Dask cluster), and stops.

Each runs in a process group of its own, dies with the process that started it (``PR_SET_PDEATHSIG``: even
a SIGKILLed ``bench`` leaves no server behind), and is stopped with every process below it: SIGTERM, then
SIGKILL for what is left after a grace period, until none of its descendants is alive. Its output goes to
a log file whose tail is quoted when it fails to start.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import HarnessError

SERVICES_ENV = "PREPBENCH_SERVICES"  # engine -> address, for the benchmark processes asv starts
STOP_TIMEOUT_S = 15
LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1


class ServiceError(HarnessError):
    """A service did not start; the message ends with the tail of its log."""


ERROR_LINE = re.compile(r"\b(ERROR|FATAL)\b|Exception|Error:|Caused by|# A fatal error|Could not create the Java")
TOKEN_PREFIX = "pbk_"  # a run's secrets say what they are, so a scan of the results can look for them


def new_token() -> str:
    """A fresh secret for one service of one run."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies, and a process group of its own."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux glibc: the service is still stopped by `stop`, just not on a SIGKILL of its parent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    address: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        """The log's error lines (an exception, a JVM's fatal error), or its last lines when it has none."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        errors = [line for line in text if ERROR_LINE.search(line)]
        return "\n".join(errors[-12:] if errors else text[-lines:])

    def failure(self, what: str) -> ServiceError:
        state = f"exited with status {self.popen.returncode}" if not self.alive() else "did not answer"
        crashes = sorted(self.log.parent.glob("hs_err_pid*.log"))
        crash = f" (the JVM's fatal error report: {crashes[-1]})" if crashes else ""
        return ServiceError(f"the {self.name} {state} while {what}{crash}; from its log ({self.log}):\n{self.tail()}")

    def stop(self) -> None:
        """Stop the process and everything below it, escalating to SIGKILL."""
        family = {self.pid, *descendants(self.pid)}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in family:
                _signal(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while time.monotonic() < deadline:
                self.popen.poll()
                family = {p for p in family if _alive(p)}
                if not family:
                    return
                time.sleep(0.1)
        raise ServiceError(f"processes {sorted(family)} of the {self.name} survived SIGKILL")


@dataclass
class Service:
    """What a run starts once for an engine: started from the main thread (a process dies with the thread that
    started it), waited for in any thread, stopped however the run ends."""

    name: str
    command: list[str]
    env: dict
    log: Path
    ready: object  # () -> bool
    address: object  # () -> dict, once ready
    timeout_s: float
    cleanup: object = None  # () -> None: what to remove once the service is up or stopped
    process: Process | None = None

    def start(self) -> "Service":
        self.process = start(self.name, self.command, self.env, self.log)
        return self

    def wait(self) -> dict:
        try:
            wait_for(self.process, self.ready, "it to answer", self.timeout_s)
            return {**self.address(), "pid": self.process.pid, "service": self.name, "log": str(self.process.log)}
        finally:
            self._clean()

    def stop(self) -> None:
        try:
            if self.process is not None:
                self.process.stop()
        finally:
            self._clean()

    def _clean(self) -> None:
        if self.cleanup:
            self.cleanup()
            self.cleanup = None


def start(name: str, command: list[str], env: dict, log: Path) -> Process:
    """Start a service with its log's folder as its working directory: a JVM that crashes writes its fatal error
    report (hs_err_pid*.log) there, beside the log, and a run's archive takes both."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=_die_with_parent, cwd=log.parent)
    return Process(name, popen, log)


def wait_for(process: Process, ready, what: str, timeout_s: float) -> None:
    """Poll `ready()` until it is true; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.failure(f"waiting for {what}")
        if ready():
            return
        time.sleep(0.2)
    process.stop()
    raise ServiceError(f"timed out after {timeout_s:.0f} s waiting for the {process.name} ({what}); the end of its log "
                       f"({process.log}):\n{process.tail()}")


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def not_answering(address: dict | None) -> str | None:
    """What to say when a run's service no longer accepts connections (it died, or was killed); None if it does."""
    if not address:
        return None
    endpoint = address.get("url") or address.get("scheduler") or ""
    host, _, port = endpoint.split("://", 1)[-1].split("/", 1)[0].rpartition(":")
    if not port.isdigit() or port_open(int(port), host or LOOPBACK):
        return None
    return (f"the {address.get('service', 'service')} at {endpoint} did not answer (it stopped during the run; "
            f"its log: {address.get('log', 'unknown')})")


def get_json(url: str, timeout_s: float = 10):
    """A GET of a JSON document (Spark's monitoring REST API); raises OSError or ValueError."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, from /proc (a Python worker may have moved to its own process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # already gone


def addresses(environ=os.environ) -> dict[str, dict]:
    """engine -> its service's address, as `bench` handed them to the benchmark processes."""
    raw = environ.get(SERVICES_ENV)
    if not raw:
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        raise HarnessError(f"{SERVICES_ENV} is not JSON; it is set by `python -m harness bench`: unset it") from None
    return found if isinstance(found, dict) else {}
