"""A Spark standalone cluster on this machine's loopback address, started from the installed PySpark's jars.

It is for the tests and for trying the cluster path on one box (``python -m harness standalone``): a master
and N workers, each its own JVM, so executors are separate processes and shuffles cross them. A real run
never starts a cluster: the suite submits to the one a team already has (README, "Clusters").

Each daemon runs in a process group of its own (its id is the daemon's pid), which also holds the executor
JVMs and Python workers it launches, so stopping the cluster reaches all of them, and killing one worker's
group takes the worker down with its executors, as if its machine died.
``stop`` waits until every process of every group is gone, escalating to SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError
from .versions import installed_scala
from .session import java_binary

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15


class ClusterError(HarnessError):
    """The loopback cluster did not come up; the message ends with the daemon's log."""


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class StandaloneCluster:
    """A master and `workers` workers on 127.0.0.1, each worker offering `cores` cores and `memory`."""

    def __init__(self, workers: int = 2, cores: int = 1, memory: str = "2g", root: Path | None = None):
        self.workers, self.cores, self.memory = workers, cores, memory
        self._own_root = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="prepbench-standalone-"))
        self.master: Daemon | None = None
        self.worker_daemons: list[Daemon] = []
        self.url = ""
        self._status_url = ""

    def __enter__(self) -> "StandaloneCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "StandaloneCluster":
        """Master first, and only once it leads: a worker that registers earlier waits 5-15 s to retry."""
        try:
            port, ui_port = _free_port(), _free_port()
            self.url, self._status_url = f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{ui_port}/json/"
            self.master = self._launch("master", "org.apache.spark.deploy.master.Master",
                                       "--port", str(port), "--webui-port", str(ui_port))
            self._wait(lambda s: s.get("status") == "ALIVE", "the master to lead", self.master)
            for i in range(self.workers):
                work = self.root / f"worker-{i}"
                self.worker_daemons.append(self._launch(
                    f"worker-{i}", "org.apache.spark.deploy.worker.Worker", "--port", str(_free_port()),
                    "--webui-port", str(_free_port()), "--cores", str(self.cores), "--memory", self.memory,
                    "--work-dir", str(work / "work"), self.url, local_dirs=work / "local"))
            self._wait(lambda s: s.get("aliveworkers") == self.workers, f"{self.workers} worker(s) to register",
                       *self.worker_daemons)
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, main_class: str, *args: str, local_dirs: Path | None = None) -> Daemon:
        import pyspark

        spark_home = Path(pyspark.__file__).parent
        env = {**os.environ, "SPARK_HOME": str(spark_home), "SPARK_SCALA_VERSION": installed_scala(),
               "SPARK_LOCAL_IP": LOOPBACK}  # SPARK_SCALA_VERSION: a worker needs it to launch executors
        if local_dirs:
            local_dirs.mkdir(parents=True, exist_ok=True)
            env["SPARK_LOCAL_DIRS"] = str(local_dirs)
        log = self.root / f"{name}.log"
        self.root.mkdir(parents=True, exist_ok=True)
        # The daemons only schedule: a small heap, and the quick compiler alone, which halves their start-up.
        # Executors are JVMs of their own, with Spark's settings.
        command = [java_binary(), "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{spark_home / 'jars'}/*",
                   main_class, "--host", LOOPBACK, *args]
        with open(log, "wb") as out:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        return Daemon(name, process, log)

    def _wait(self, ready, what: str, *daemons: Daemon) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for daemon in daemons:
                if daemon.process.poll() is not None:
                    raise ClusterError(f"the standalone {daemon.name} exited ({daemon.process.returncode}) while "
                                       f"waiting for {what}; its log ({daemon.log}):\n{daemon.tail()}")
            if ready(self.status()):
                return
            time.sleep(0.2)
        raise ClusterError(f"timed out after {START_TIMEOUT_S} s waiting for {what}; the {daemons[0].name}'s log "
                           f"({daemons[0].log}):\n{daemons[0].tail()}")

    def status(self) -> dict:
        """The master's own JSON status (workers, their state, applications); {} while it is not answering."""
        try:
            with urllib.request.urlopen(self._status_url, timeout=2) as response:
                return json.load(response)
        except (OSError, ValueError):
            return {}

    def leftovers(self) -> list[int]:
        """Processes of this cluster still alive (daemons, executors, Python workers)."""
        daemons = ([self.master] if self.master else []) + self.worker_daemons
        for daemon in daemons:
            daemon.process.poll()  # reap a daemon that has exited, so it does not count as alive
        return _group_members({d.process.pid for d in daemons})

    def stop(self) -> None:
        """Stop every process the cluster started, workers first; SIGKILL what is left after STOP_TIMEOUT_S."""
        daemons = [*self.worker_daemons, *([self.master] if self.master else [])]
        for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
            for daemon in daemons:
                _signal_group(daemon.process.pid, sig)
            deadline = time.monotonic() + grace
            while self.leftovers() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.leftovers():
                break
        if self.leftovers():
            raise ClusterError(f"processes {self.leftovers()} of the standalone cluster survived SIGKILL")
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group has already exited


def _group_members(groups: set[int]) -> list[int]:
    """Live processes (zombies excluded) in the given process groups, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) in groups and state != "Z":
            found.append(int(stat.parent.name))
    return sorted(found)
