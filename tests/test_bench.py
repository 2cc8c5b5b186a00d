"""End to end: the README's main command path, through asv, in fresh processes as asv runs them."""

import os
import subprocess
import sys

from harness import REPO_ROOT, report


# One per family, a Python UDF, and the user SQL example: the full library runs in `tox -e bench`.
CHOSEN = "standardize_clip_udf,groupby_sum_mean,join_medium_left_str,handoff_shards_4,top_keys_by_value"


def test_smoke_run_through_asv_records_the_chosen_workloads(tmp_path, settings):
    asv_results = REPO_ROOT / "results" / "asv"
    before = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    env_overrides = {"PREPBENCH_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--smoke", "--results-dir", str(tmp_path), "--workloads", CHOSEN],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, **env_overrides},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = report.latest_run(tmp_path)
    run = report.load(run_dir)
    statuses = {(r["workload"], r["engine"]): r["status"] for r in run.records}
    assert {name for name, _ in statuses} == set(CHOSEN.split(","))
    for name in CHOSEN.split(","):
        assert statuses[(name, "cpu")] == "ok"
        assert statuses[(name, "gpu")] == "skipped"
    assert all(len(r["samples_s"]) == 1 for r in run.records if r["engine"] == "cpu")
    summary = (run_dir / "summary.txt").read_text()
    assert "note: engine gpu skipped:" in summary and summary in done.stdout
    after = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    assert after == before, "a smoke run must leave results/asv alone"
    assert (run_dir / "asv" / "benchmarks.json").is_file()
    site = run_dir / "site" / "index.html"  # the README's main command ends with the run's comparison site
    assert site.is_file() and f"comparison site written to {site}" in done.stdout
