"""End to end: one real `bench --smoke` run, in fresh processes as asv runs them, that checks at once what a team
meets first. One run, not several, because each costs a minute of server starts on this machine:

* built-in workloads of each family under every engine (the GPU ones skipped where there is no GPU, and run
  where there is one), every output agreeing with CPU Spark's;
* user SQL workloads as teams write them: multi-statement SQL with a temporary and a permanent view, a header
  setting and tolerance, a query Spark refuses (one line, never asv's traceback), their own Parquet dataset
  run once at scale as-is; `--workloads` running only what it names;
* the Dask engine on a cluster the test runs itself, behind TLS (`--dask-scheduler`), as a team's would be;
* QualX's prediction at the end, offline (`--offline`: only what is cached), then the same qualification
  again in a network namespace with no network at all, with the tools' cache folder left empty;
* eleven kinds of credential given the ways users give them, and the run's own secrets (the Connect server's
  token, the Dask cluster's TLS key): every file the run wrote, and its console, are searched for each.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness import REPO_ROOT, analysis, gpu, results, services

pytestmark = pytest.mark.slow

BUILT_IN = "standardize_clip_udf,groupby_sum_mean,join_medium_left_str,top_keys_by_value"
ENGINES = "cpu,comet,gpu,pandas,dask"
USER_SQL = {
    "q_view.sql": """-- family: shuffle
-- tables: groupby
-- description: a view as set-up, the select timed, the view dropped after
CREATE OR REPLACE TEMP VIEW big_v3 AS SELECT id1, v3 FROM groupby WHERE v3 > 50;
SELECT id1, count(*) AS n, sum(v3) AS total FROM big_v3 GROUP BY id1;
DROP VIEW big_v3
""",
    "q_permanent_view.sql": """-- family: shuffle
-- tables: groupby
create view if not exists pv_small as select id1, v1 from groupby where v1 < 3;
select id1, sum(v1) as s from pv_small group by id1;
drop view pv_small
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
    "q_syntax_error.sql": """-- family: shuffle
-- tables: groupby
SELEC id1 FROM groupby
""",
    "q_own_data.sql": """-- family: shuffle
-- tables: my_events
SELECT kind, count(*) AS n, sum(amount) AS total FROM my_events GROUP BY kind
""",
}
MY_EVENTS_ROWS = 1234

GIVEN = [  # (how it is given, the secret in it): the kinds of credential teams' storage connectors take
    (["--conf", "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net=AzureS3cretValue1"], "AzureS3cretValue1"),
    (["--conf", "spark.executor.extraJavaOptions=-Dlog4j.debug=false -Daws.secretKey=JvmS3cretValue2"], "JvmS3cretValue2"),
    (["--conf", "spark.hadoop.fs.s3a.endpoint=https://someone:UrlS3cretValue3@s3.example.invalid"], "UrlS3cretValue3"),
    (["--conf", "spark.hadoop.fs.azure.sas.box.acct.blob.core.windows.net=sv=2022-11-02&ss=b&sig=SasS3cretValue6"],
     "SasS3cretValue6"),
    (["--conf", "spark.hadoop.fs.azure.account.oauth2.client.secret.acct.dfs.core.windows.net=OAuthS3cretValue7"],
     "OAuthS3cretValue7"),
    (["--conf", "spark.hadoop.fs.s3a.session.token=S3aToken8"], "S3aToken8"),
    (["--conf", "spark.hadoop.fs.s3a.bucket.lake.secret.key=BucketS3cretValue9"], "BucketS3cretValue9"),
    (["--conf", "spark.hadoop.fs.gs.auth.service.account.private.key=GcsPrivateKey10"], "GcsPrivateKey10"),
    (["--conf", "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:postgresql://db/meta?user=u&password=JdbcPass11"],
     "JdbcPass11"),
]
IN_CONF_ENV = ("spark.hadoop.fs.s3a.secret.key=ConfEnvS3cretValue4", "ConfEnvS3cretValue4")
IN_ENVIRONMENT = ("AWS_SECRET_ACCESS_KEY", "EnvS3cretValue5")
SECRETS = [secret for _, secret in GIVEN] + [IN_CONF_ENV[1], IN_ENVIRONMENT[1]]
RUN_SECRETS = [re.compile(services.TOKEN_PREFIX + r"[A-Za-z0-9_-]{20,}"), re.compile(r"BEGIN (RSA )?PRIVATE KEY")]


@pytest.fixture(scope="module")
def team_dask(tmp_path_factory):
    """A Dask cluster a team runs: a scheduler and two workers on loopback behind TLS; its credentials in files
    only its user reads, named in Dask's configuration (the environment) as a team's client would have them."""
    from distributed import LocalCluster
    from distributed.security import Security

    security = Security.temporary()
    folder = tmp_path_factory.mktemp("dask-tls")
    os.chmod(folder, 0o700)
    files = {}
    for name, value in (("ca", security.tls_ca_file), ("cert", security.tls_client_cert), ("key", security.tls_client_key)):
        files[name] = folder / f"{name}.pem"
        files[name].write_text(value)
        os.chmod(files[name], 0o600)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", protocol="tls",
                      security=security, dashboard_address=None) as cluster:
        yield cluster.scheduler_address, {
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(files["ca"]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(files["cert"]),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(files["key"]),
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, settings, team_dask):
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(REPO_ROOT / "workloads", root / "workloads")  # the example beside the test's own
    for name, text in USER_SQL.items():
        (root / "workloads" / name).write_text(text)
    events = pa.table({"kind": [f"k{i % 7}" for i in range(MY_EVENTS_ROWS)],
                       "amount": [i * 0.5 for i in range(MY_EVENTS_ROWS)]})
    pq.write_table(events, root / "my_events.parquet")
    (root / "datasets.conf").write_text(f"my_events    {root / 'my_events.parquet'}\n")
    scheduler, dask_env = team_dask
    env = {**os.environ, **dask_env, "PREPBENCH_DATA_DIR": str(settings.data_dir),
           "PREPBENCH_WORKLOADS_DIR": str(root / "workloads"), "PREPBENCH_DATASETS": str(root / "datasets.conf"),
           "PREPBENCH_CONF": json.dumps([IN_CONF_ENV[0]]), IN_ENVIRONMENT[0]: IN_ENVIRONMENT[1]}
    env.pop(services.SERVICES_ENV, None)
    asv_results = REPO_ROOT / "results" / "asv"
    before = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--smoke", "--offline", "--results-dir", str(root / "results"),
         "--workloads", f"{BUILT_IN},q_*", "--scales", "1e4,as-is", "--engines", ENGINES, "--dask-scheduler", scheduler,
         *[a for given, _ in GIVEN for a in given]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env)
    after = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    assert after == before, "a smoke run must leave results/asv alone"
    assert (root / "results").is_dir(), done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = results.latest_run(root / "results")
    return done, run_dir, analysis.analyze_dirs([run_dir])


def records_by(found):
    return {(r.workload, r.engine, r.scale): r for run in found.runs for r in run.records}


def test_every_engine_that_can_run_here_runs_and_agrees_with_cpu_spark(e2e):
    done, run_dir, found = e2e
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


def test_the_dask_engine_ran_on_the_teams_tls_cluster(e2e, team_dask):
    _, run_dir, found = e2e
    record = records_by(found)[("groupby_sum_mean", "dask", "1e4")]
    assert record.session["mode"] == "existing cluster" and record.session["endpoint"] == team_dask[0]
    assert record.session["workers"] == 2 and all(w["threads"] == 1 for w in record.session["worker_resources"])
    assert not (run_dir / "logs" / "dask-dask.log").exists()  # nothing started for it


def test_user_sql_workloads_as_teams_write_them(e2e):
    done, _, found = e2e
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
    names = {name for name, _, _ in got}
    assert names == set(BUILT_IN.split(",")) | {n.removesuffix(".sql") for n in USER_SQL}  # only what --workloads names
    coverage = found.runs[0].coverage["workloads"]
    assert set(coverage) == names and coverage["q_syntax_error"].get("error")


def test_qualx_predicts_the_cpu_spark_queries_offline(e2e, tmp_path):
    """The run's own qualification at its end, then the same one again with no network at all (a network
    namespace with only loopback), the tools' cache folder staying empty: nothing is downloaded."""
    _, run_dir, found = e2e
    first = json.loads((run_dir / results.QUALIFICATION_FILE).read_text())
    assert first["state"] == "ok" and first["tools"]["version"] == "26.8.4"
    predicted = {name: p for name, p in first["records"].items() if p.get("speedup")}
    assert predicted and all(name.split(".")[1] == "cpu" for name in first["records"])
    case = next(c for c in found.cases if c.workload == "groupby_sum_mean" and c.scale == "1e4")
    assert case.prediction.speedup > 0 and case.verdict.basis == "predicted"
    assert not any((run_dir / "qualx" / ".tools-cache").rglob("*"))
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("a network namespace needs root, unshare and ip: the empty cache folder above is the proof here")
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("qualx", results.QUALIFICATION_FILE))
    done = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m",
                           "harness", "qualify", str(copy)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]  # 1: the failed user queries
    again = json.loads((copy / results.QUALIFICATION_FILE).read_text())
    assert again["state"] == "ok" and again["records"] == first["records"]  # the same answer with no network
    assert not any((copy / "qualx" / ".tools-cache").rglob("*"))


def test_no_secret_reaches_any_file_of_the_run(e2e):
    done, run_dir, found = e2e
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
