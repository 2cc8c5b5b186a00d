"""The driver process of the cluster tests: trials against the master named in the PREPBENCH_* settings.

Spark allows one session per process, and the test process holds a local one, so a cluster's driver runs
here, in a classic session (a Spark Connect server would be the driver otherwise). ``python cluster_driver.py
RUN_DIR SCALE WORKLOAD... [--kill-worker PGID]`` runs one trial with one timed run per workload, as an asv
benchmark process does. With ``--kill-worker``, the first fingerprint is computed while that worker is killed (SIGKILL to its process group: the worker, its executor and their
Python workers, as if its machine died) at a moment when both executors run a task of the checksum's job.
The last line of output is JSON: the trials' statuses and when the kill landed.
"""

import argparse
import json
import os
import signal
import threading
import time

from harness import config, fingerprint
from harness.trial import Trial


def kill_when_both_executors_work(spark, pgid: int, landed: dict) -> None:
    """From a watcher thread, kill the worker at a moment when every executor runs a task: the worker's
    executor then certainly loses work in flight, besides any shuffle output it holds."""
    tracker = spark.sparkContext._jsc.sc().statusTracker()  # the JVM's: PySpark's lacks executor infos

    def watch():
        while True:
            busy = [e for e in tracker.getExecutorInfos() if e.numRunningTasks() > 0]
            if len(busy) >= 2:
                os.killpg(pgid, signal.SIGKILL)
                landed.update(busy_executors=[f"{e.host()}:{e.port()}" for e in busy],
                              stages=list(tracker.getActiveStageIds()))
                return
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("scale")
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--kill-worker", type=int, help="process group of the worker to kill mid-checksum")
    args = parser.parse_args()
    settings = config.RunSettings.from_env()
    landed: dict = {}
    if args.kill_worker:
        real_fingerprint = fingerprint.spark_fingerprint

        def fingerprint_while_a_worker_dies(df):
            fingerprint.spark_fingerprint = real_fingerprint  # the first fingerprint only
            kill_when_both_executors_work(df.sparkSession, args.kill_worker, landed)
            return real_fingerprint(df)

        fingerprint.spark_fingerprint = fingerprint_while_a_worker_dies
    statuses = {}
    for name in args.workloads:
        try:
            trial = Trial(args.run_dir, "cpu", name, args.scale, settings)
            trial.run_once()
            statuses[name] = trial.finish().status
        except Exception as err:  # the record says failed, with the reason
            statuses[name] = f"raised {type(err).__name__}"
    print(json.dumps({"statuses": statuses, "kill": landed}))


if __name__ == "__main__":
    main()
