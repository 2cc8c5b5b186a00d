"""User workloads as teams write them, through the real `bench` and `coverage` commands: a view-based
multi-statement query, per-workload settings and tolerance in header lines, their own Parquet dataset run
once at scale as-is beside the generated scales, and `--workloads` running only what it names."""

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import REPO_ROOT, results

USER_SQL = {
    "q_view.sql": """-- family: shuffle
-- tables: groupby
-- description: a view as set-up, the select timed, the view dropped after
CREATE OR REPLACE TEMP VIEW big_v3 AS SELECT id1, v3 FROM groupby WHERE v3 > 50;
SELECT id1, count(*) AS n, sum(v3) AS total FROM big_v3 GROUP BY id1;
DROP VIEW big_v3
""",
    "q_ratio_ansi_off.sql": """-- family: shuffle
-- tables: groupby
-- conf: spark.sql.ansi.enabled=false
-- tolerance: rel=1e-6 abs=1e-12
SELECT id1, sum(v1) / (min(v1) - min(v1)) AS ratio, avg(v3) AS mean FROM groupby GROUP BY id1
""",
    "q_ratio_ansi_on.sql": """-- family: shuffle
-- tables: groupby
SELECT id1, sum(v1) / (min(v1) - min(v1)) AS ratio, avg(v3) AS mean FROM groupby GROUP BY id1
""",
    "q_own_data.sql": """-- family: shuffle
-- tables: my_events
SELECT kind, count(*) AS n, sum(amount) AS total FROM my_events GROUP BY kind
""",
}
MY_EVENTS_ROWS = 1234


@pytest.fixture(scope="module")
def user_run(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("user")
    (root / "workloads").mkdir()
    for name, text in USER_SQL.items():
        (root / "workloads" / name).write_text(text)
    events = pa.table({"kind": [f"k{i % 7}" for i in range(MY_EVENTS_ROWS)],
                       "amount": [i * 0.5 for i in range(MY_EVENTS_ROWS)]})
    pq.write_table(events, root / "my_events.parquet")
    (root / "datasets.conf").write_text(f"my_events    {root / 'my_events.parquet'}\n")
    env = {**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir), "PREPBENCH_WORKLOADS_DIR": str(root / "workloads"),
           "PREPBENCH_DATASETS": str(root / "datasets.conf")}
    results_dir = root / "results"
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--smoke", "--results-dir", str(results_dir), "--engines", "cpu",
         "--scales", "1e4,as-is", "--workloads", "q_*"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
    run = results.load(results.latest_run(results_dir))
    return done, {(r.workload, r.scale): r for r in run.records}, env, root


def test_a_multi_statement_query_is_timed_on_its_select(user_run):
    done, found, _, _ = user_run
    record = found[("q_view", "1e4")]
    assert record.status == "ok" and record.output_rows and len(record.samples_s) == 1
    assert record.figures["timed"] == "the statement at line 5, after 1 set-up statement(s), before 1 tear-down statement(s)"


def test_a_header_setting_changes_that_workload_only_and_is_recorded(user_run):
    done, found, _, _ = user_run
    off, on = found[("q_ratio_ansi_off", "1e4")], found[("q_ratio_ansi_on", "1e4")]
    assert off.status == "ok"
    assert off.sql_conf == {"spark.sql.ansi.enabled": "false"} and on.sql_conf == {}
    assert on.status == "failed" and "DIVIDE_BY_ZERO" in on.reason  # Spark 4's default, untouched
    assert done.returncode != 0 and "q_ratio_ansi_on" in done.stderr  # a failed benchmark fails the command


def test_a_header_tolerance_is_recorded(user_run):
    _, found, _, _ = user_run
    assert (found[("q_ratio_ansi_off", "1e4")].tolerance.rel, found[("q_ratio_ansi_off", "1e4")].tolerance.abs) \
        == (1e-6, 1e-12)


def test_a_user_dataset_runs_once_as_is_beside_the_generated_scales(user_run):
    _, found, _, _ = user_run
    assert [scale for name, scale in found if name == "q_own_data"] == ["as-is"]
    assert found[("q_own_data", "as-is")].rows == MY_EVENTS_ROWS and found[("q_own_data", "as-is")].output_rows == 7
    assert {scale for name, scale in found if name != "q_own_data"} == {"1e4"}


def test_workloads_runs_only_the_named_benchmarks(user_run):
    done, found, _, _ = user_run
    assert {name for name, _ in found} == {n.removesuffix(".sql") for n in USER_SQL}
    for suite_benchmark in ("startup.", "data.", "sampler."):
        assert f"··· {suite_benchmark}" not in done.stdout, suite_benchmark


@pytest.mark.plugin_jar
def test_coverage_leaves_no_empty_run_directory(user_run, tmp_path):
    _, _, env, root = user_run
    before = sorted(p.name for p in (root / "results").iterdir())
    done = subprocess.run([sys.executable, "-m", "harness", "coverage", "--workloads", "q_view",
                           "--results-dir", str(root / "results"), "--out", str(tmp_path / "coverage.json")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "coverage.json").is_file()
    assert sorted(p.name for p in (root / "results").iterdir()) == before
