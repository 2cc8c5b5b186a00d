"""The one end-to-end run the tests share (a session fixture in conftest): `bench --smoke` of every workload under
every engine, as the README's main command runs it, plus user SQL workloads as teams write them and the ways
credentials are given, with no network at all where this machine can take it away (a network namespace with
only loopback: root, unshare and ip), so that everything it does, QualX's prediction included, is shown offline.
test_bench, test_workloads and test_coverage read what it wrote; a run takes minutes on this machine, so one
run checks all of it.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from harness import REPO_ROOT, analysis, results, services

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
    "q_corr_per_key.sql": "-- family: shuffle\n-- tables: groupby\nSELECT id1, corr(v1, v3) AS c FROM groupby GROUP BY id1",
    "q_above_average.sql": "-- family: shuffle\n-- tables: groupby\n"
                           "SELECT id1, v3 FROM groupby WHERE v3 > (SELECT avg(v3) FROM groupby WHERE id2 = 'id001')",
    "q_forgot_a_table.sql": "-- family: join\n-- tables: groupby\nSELECT * FROM groupby JOIN join_small USING (id1)",
    "q_uses_a_view.sql": "-- family: join\n-- tables: groupby, join_small\nSELECT * FROM groupby JOIN join_small USING (id1)",
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




@dataclass
class E2E:
    done: subprocess.CompletedProcess
    run_dir: Path
    found: analysis.Analysis
    offline: bool  # run in a network namespace with no network


def offline_prefix() -> list[str]:
    """A command prefix that runs what follows with no network but loopback, where this machine allows it."""
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return []


class Started:
    """The run, started in the background when the session begins (it takes minutes; the other tests run
    meanwhile, on the other core), and waited for by the first test that reads it."""

    def __init__(self, root: Path):
        self.root = root
        shutil.copytree(REPO_ROOT / "workloads", root / "workloads")  # the example beside the test's own
        for name, text in USER_SQL.items():
            (root / "workloads" / name).write_text(text)
        events = pa.table({"kind": [f"k{i % 7}" for i in range(MY_EVENTS_ROWS)],
                           "amount": [i * 0.5 for i in range(MY_EVENTS_ROWS)]})
        pq.write_table(events, root / "my_events.parquet")
        (root / "datasets.conf").write_text(f"my_events    {root / 'my_events.parquet'}\n")
        env = {**os.environ, "PREPBENCH_DATA_DIR": str(root / "data"), "PREPBENCH_WORKLOADS_DIR": str(root / "workloads"),
               "PREPBENCH_DATASETS": str(root / "datasets.conf"), "PREPBENCH_CONF": json.dumps([IN_CONF_ENV[0]]),
               IN_ENVIRONMENT[0]: IN_ENVIRONMENT[1]}
        env.pop(services.SERVICES_ENV, None)
        self.prefix = offline_prefix()
        self.output, self.errors = open(root / "console.txt", "w+"), open(root / "errors.txt", "w+")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "harness", "bench", "--smoke", "--offline", "--results-dir",
             str(root / "results"), "--scales", "1e4,as-is", "--engines", ENGINES, *[a for given, _ in GIVEN for a in given]],
            cwd=REPO_ROOT, stdout=self.output, stderr=self.errors, text=True, env=env, start_new_session=True)
        self.found = None

    def wait(self, timeout_s: float = 1500) -> E2E:
        if self.found is None:
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 15)
                raise
            self.output.seek(0)
            self.errors.seek(0)
            done = subprocess.CompletedProcess(self.process.args, self.process.returncode, self.output.read(),
                                               self.errors.read())
            assert (self.root / "results").is_dir(), done.stdout[-3000:] + done.stderr[-3000:]
            run_dir = results.latest_run(self.root / "results")
            self.found = E2E(done, run_dir, analysis.analyze_dirs([run_dir]), bool(self.prefix))
        return self.found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=120)
        self.output.close()
        self.errors.close()
