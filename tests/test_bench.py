"""End to end: the README's main command path, through asv, in fresh processes as asv runs them."""

import os
import subprocess
import sys

from harness import REPO_ROOT, report, workloads


def test_smoke_run_through_asv_records_every_workload(tmp_path, settings):
    asv_results = REPO_ROOT / "results" / "asv"
    before = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    env_overrides = {"PREPBENCH_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--smoke", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, **env_overrides},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = report.latest_run(tmp_path)
    run = report.load(run_dir)
    statuses = {(r["workload"], r["engine"]): r["status"] for r in run.records}
    for name in workloads.registry():
        assert statuses[(name, "cpu")] == "ok"
        assert statuses[(name, "gpu")] == "skipped"
    assert all(len(r["samples_s"]) == 1 for r in run.records if r["engine"] == "cpu")
    summary = (run_dir / "summary.txt").read_text()
    assert "note: engine gpu skipped:" in summary and summary in done.stdout
    after = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    assert after == before, "a smoke run must leave results/asv alone"
    assert (run_dir / "asv" / "benchmarks.json").is_file()
