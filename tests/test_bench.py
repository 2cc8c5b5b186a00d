"""End to end: the README's main command path, through asv, in fresh processes as asv runs them.

The run is also given credentials the ways users give them (a Spark key, a JVM option, PREPBENCH_CONF, a URL
with a password, an environment variable); every file it wrote is then searched for each secret.
"""

import json
import os
import subprocess
import sys

import pytest

from harness import REPO_ROOT, analysis, results

# One per family, a Python UDF, the user SQL example, frame forms for the dataframe engines: the full library
# runs in `tox -e bench`.
CHOSEN = "standardize_clip_udf,groupby_sum_mean,join_medium_left_str,top_keys_by_value"
ENGINES = "cpu,comet,gpu,pandas,dask"

GIVEN = [  # (how it is given, the secret in it)
    (["--conf", "spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net=AzureS3cretValue1"], "AzureS3cretValue1"),
    (["--conf", "spark.executor.extraJavaOptions=-Dlog4j.debug=false -Daws.secretKey=JvmS3cretValue2"], "JvmS3cretValue2"),
    (["--conf", "spark.hadoop.fs.s3a.endpoint=https://someone:UrlS3cretValue3@s3.example.invalid"], "UrlS3cretValue3"),
]
IN_CONF_ENV = ("spark.hadoop.fs.s3a.secret.key=ConfEnvS3cretValue4", "ConfEnvS3cretValue4")
IN_ENVIRONMENT = ("AWS_SECRET_ACCESS_KEY", "EnvS3cretValue5")
SECRETS = [secret for _, secret in GIVEN] + [IN_CONF_ENV[1], IN_ENVIRONMENT[1]]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, settings):
    results_dir = tmp_path_factory.mktemp("smoke")
    asv_results = REPO_ROOT / "results" / "asv"
    before = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    env = {**os.environ, "PREPBENCH_DATA_DIR": str(settings.data_dir), "PREPBENCH_CONF": json.dumps([IN_CONF_ENV[0]]),
           IN_ENVIRONMENT[0]: IN_ENVIRONMENT[1]}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--smoke", "--results-dir", str(results_dir), "--workloads", CHOSEN,
         "--engines", ENGINES, *[a for given, _ in GIVEN for a in given]],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env,
    )
    after = sorted(asv_results.rglob("*.json")) if asv_results.exists() else []
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert after == before, "a smoke run must leave results/asv alone"
    return done, results.latest_run(results_dir)


def test_a_smoke_run_records_every_engine_and_they_agree(smoke):
    done, run_dir = smoke
    run = results.load(run_dir)
    assert run.info.state == "complete"
    status = {(r.workload, r.engine): r.status for r in run.records}
    assert {name for name, _ in status} == set(CHOSEN.split(","))
    for name in CHOSEN.split(","):
        assert status[(name, "cpu")] == "ok" and status[(name, "comet")] == "ok"
        assert status[(name, "gpu")] == "skipped"
    assert status[("groupby_sum_mean", "pandas")] == status[("groupby_sum_mean", "dask")] == "ok"
    assert status[("standardize_clip_udf", "dask")] == "undefined"  # a Python UDF has no dataframe form
    assert all(len(r.samples_s) == 1 for r in run.records if r.status == "ok")
    for case in analysis.cases([run]):  # every engine that finished agrees with CPU Spark
        assert case.outputs_agree is not False, (case.workload, [e.problems for e in case.engines])
    summary = (run_dir / "summary.txt").read_text()
    assert "skipped" in summary and summary in done.stdout
    assert (run_dir / "asv" / "benchmarks.json").is_file()
    site = run_dir / "site" / "index.html"  # the README's main command ends with the run's comparison site
    assert site.is_file() and f"comparison site written to {site}" in done.stdout
    leftover = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    assert not leftover.strip(), "a service of the run outlived it"


def test_no_secret_reaches_any_file_of_the_run(smoke):
    done, run_dir = smoke
    record = next(r for r in results.load(run_dir).records if r.engine == "cpu" and r.status == "ok")
    assert "spark.hadoop.fs.s3a.secret.key" in record.config  # the settings were used and recorded, values hidden
    assert "-Dlog4j.debug=false" in record.config["spark.executor.extraJavaOptions"]["value"]
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "index.html" for p in written) and any(p.suffix == ".log" for p in written)
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked into {path.relative_to(run_dir)}"
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
