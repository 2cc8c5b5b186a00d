"""End to end: the README's main command path, in the one `bench --smoke` run the tests share (tests/e2e_run.py):
every workload under every engine in fresh processes as asv runs them, what a team meets first. Here:

* every engine that can run here runs (the GPU ones skipped where there is no GPU, and run where there is one)
  and agrees with CPU Spark; engines that cannot run are listed once;
* user SQL workloads as teams write them: multi-statement SQL with a temporary and a permanent view, a header
  setting and tolerance, a query Spark refuses (one line, never asv's traceback), their own Parquet dataset
  run once at scale as-is;
* QualX's prediction at the end of the run, with no network at all (the run is in a network namespace with only
  loopback where this machine allows it) and the tools' cache folder left empty;
* eleven kinds of credential given the ways users give them, and the run's own secrets (the Connect servers'
  tokens, the Dask cluster's TLS key): every file the run wrote, Spark's event logs included, and its console,
  are searched for each.
"""

import json
import re
import subprocess

import pytest

from harness import gpu, results, services

from e2e_run import GIVEN, IN_CONF_ENV, IN_ENVIRONMENT, MY_EVENTS_ROWS

pytestmark = pytest.mark.slow

BUILT_IN = "standardize_clip_udf,groupby_sum_mean,join_medium_left_str,top_keys_by_value"
SECRETS = [secret for _, secret in GIVEN] + [IN_CONF_ENV[1], IN_ENVIRONMENT[1]]
RUN_SECRETS = [re.compile(services.TOKEN_PREFIX + r"[A-Za-z0-9_-]{20,}"), re.compile(r"BEGIN (RSA )?PRIVATE KEY")]


def records_by(found):
    return {(r.workload, r.engine, r.scale): r for run in found.runs for r in run.records}


def unpack(e2e):
    return e2e.done, e2e.run_dir, e2e.found


def test_every_engine_that_can_run_here_runs_and_agrees_with_cpu_spark(e2e):
    done, run_dir, found = unpack(e2e)
    run = found.runs[0]
    assert run.info.state == "complete"
    got = records_by(found)
    gpus, _ = gpu.probe()
    for name in BUILT_IN.split(","):
        assert got[(name, "cpu", "1e4")].status == got[(name, "comet", "1e4")].status == "ok"
        assert got[(name, "gpu", "1e4")].status == ("ok" if gpus else "skipped")  # what this host can know
    assert got[("groupby_sum_mean", "pandas", "1e4")].status == got[("groupby_sum_mean", "dask", "1e4")].status == "ok"
    assert got[("standardize_clip_udf", "dask", "1e4")].status == "undefined"  # a Python UDF has no dataframe form
    assert all(len(r.samples_s) == 1 for r in got.values() if r.status == "ok")
    assert all(c.outputs_agree is not False for c in found.cases), [(c.workload, c.engines) for c in found.cases
                                                                    if c.outputs_agree is False]
    summary = (run_dir / "summary.txt").read_text()
    assert summary in done.stdout and "the answer" in summary and "wall time" in summary
    if not gpus:  # engines that cannot run are listed once, with why, not per workload
        assert summary.count("not run here: gpu (gpu)") == 1 and "no GPU ran here" in summary
    assert (run_dir / "asv" / "benchmarks.json").is_file() and (run_dir / "logs" / "asv.log").is_file()
    site = run_dir / "site" / "index.html"  # the README's main command ends with the run's comparison site
    assert site.is_file() and f"comparison site written to {site}" in done.stdout
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    assert not leftover.strip(), "a service of the run outlived it"


def test_user_sql_workloads_as_teams_write_them(e2e):
    done, _, found = unpack(e2e)
    got = records_by(found)
    view = got[("q_view", "cpu", "1e4")]
    assert view.status == "ok" and view.output_rows and view.figures["timed"] == \
        "the statement at line 5, after 1 set-up statement(s), before 1 tear-down statement(s)"
    assert got[("q_permanent_view", "cpu", "1e4")].status == "ok"  # the datasets are tables: a permanent view works
    assert got[("q_permanent_view", "comet", "1e4")].status == "ok"
    off, on = got[("q_ratio_ansi_off", "cpu", "1e4")], got[("q_ratio_ansi_on", "cpu", "1e4")]
    assert off.status == "ok" and off.sql_conf == {"spark.sql.ansi.enabled": "false"} and on.sql_conf == {}
    assert (off.tolerance.rel, off.tolerance.abs) == (1e-6, 1e-12)
    assert on.status == "failed" and "DIVIDE_BY_ZERO" in on.reason  # Spark 4's default, untouched
    bad = got[("q_syntax_error", "cpu", "1e4")]
    assert bad.status == "failed" and "PARSE_SYNTAX_ERROR" in bad.reason
    assert done.returncode != 0 and "q_ratio_ansi_on" in done.stderr  # a failed benchmark fails the command
    assert "Traceback" not in done.stdout + done.stderr  # failures are one line each; asv's output is in its log
    assert sum("q_syntax_error under cpu at 1e4: failed" in line for line in done.stdout.splitlines()) == 1
    assert [scale for (name, engine, scale) in got if name == "q_own_data" and engine == "cpu"] == ["as-is"]
    assert got[("q_own_data", "cpu", "as-is")].rows == MY_EVENTS_ROWS
    assert got[("q_own_data", "cpu", "as-is")].output_rows == 7
    coverage = found.runs[0].coverage["workloads"]
    assert set(coverage) == {name for name, _, _ in got} and coverage["q_syntax_error"].get("error")


def test_qualx_predicts_the_cpu_spark_queries_offline(e2e):
    """The run's own qualification at its end: with no network at all where this machine allows it (the whole
    run is in a network namespace with only loopback), and in any case with the tools' cache folder left empty:
    nothing is downloaded."""
    _, run_dir, found = unpack(e2e)
    qualification = json.loads((run_dir / results.QUALIFICATION_FILE).read_text())
    assert qualification["state"] == "ok" and qualification["tools"]["version"] == "26.8.4"
    assert "sha256" in qualification["tools"]["model"] and qualification["applications"][0]["autotuner"]
    predicted = {name: p for name, p in qualification["records"].items() if p.get("speedup")}
    assert len(predicted) >= 30 and all(name.split(".")[1] == "cpu" for name in qualification["records"])
    case = next(c for c in found.cases if c.workload == "groupby_sum_mean" and c.scale == "1e4")
    assert case.prediction.speedup > 0 and case.verdict.basis == "predicted"
    assert not any((run_dir / "qualx" / ".tools-cache").rglob("*"))
    print(f"the run was {'offline (a network namespace)' if e2e.offline else 'not in a network namespace here'}")


def test_no_secret_reaches_any_file_of_the_run(e2e):
    done, run_dir, found = unpack(e2e)
    record = records_by(found)[("groupby_sum_mean", "cpu", "1e4")]
    assert "spark.hadoop.fs.s3a.secret.key" in record.config  # the settings were used and recorded, values hidden
    assert "-Dlog4j.debug=false" in record.config["spark.executor.extraJavaOptions"]["value"]
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "index.html" for p in written) and any(p.suffix == ".log" for p in written)
    assert any(p.parent.name == "cpu" and p.parent.parent.name == "eventlogs" for p in written)
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace")
        if path.suffix == ".zstd":  # Spark's event logs, compressed
            import zstandard

            text = zstandard.ZstdDecompressor().stream_reader(open(path, "rb")).read().decode("utf-8", "replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {path.relative_to(run_dir)}"
        for pattern in RUN_SECRETS:
            assert not pattern.search(text), f"a secret of the run's own services leaked into {path.relative_to(run_dir)}"
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    assert not any(p.search(done.stdout + done.stderr) for p in RUN_SECRETS)
