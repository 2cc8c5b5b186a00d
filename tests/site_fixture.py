"""A results tree for the site's tests, written by the real writer (``records.new_run``, ``Record.save``,
``analysis.write_comparison``) so that it cannot drift from what runs write.

* ``runs/20261120T100000Z-gpubox``: CPU Spark, Comet and the RAPIDS Accelerator on an L4 host (GPU metrics and
  timelines, an executed plan with a fallback), a case within noise, and a record that is not JSON;
* ``runs/20261121T090000Z-cpubox``: CPU Spark with the GPU skipped, a workload name and configuration values
  that are HTML, and plan coverage;
* ``smoke/20261122T080000Z-laptop``: no run.json and a benchmark that never finished;
* ``comparisons/cpubox--gpubox``: a case pairing the two hosts' runs, each priced as its own cluster.
"""

from pathlib import Path

from harness import analysis, records, results
from harness.config import RunSettings
from harness.results import Price, Record

EVIL = "<script>document.title='pwned'</script>"
M7I, L4 = Price("m7i.xlarge", 0.2016, 1, "2025-05", "catalog"), Price("g6.xlarge", 0.8048, 1, "2025-05", "catalog")
FP = {"version": 3, "rows": 10, "exact_columns": ["k"], "hash_lo": 1, "hash_hi": 2, "floats": {}}


def _run(root: Path, kind: str, stamp: str, hostname: str, profile: str, gpus: list, commit: str) -> Path:
    settings = RunSettings(host=profile, engines=("cpu",), scales=("1e6",), results_dir=root / kind,
                           overrides=("spark.rapids.sql.concurrentGpuTasks=2",) if gpus else ())
    environment = {"hostname": hostname, "cores": 4, "cpu": "Intel Xeon Platinum 8488C", "gpus": gpus,
                   "commit": commit, "worktree_dirty": False, "spark": "4.1.3", "rapids_plugin": "26.08.1", "comet": "1.2.0"}
    made = records.new_run(settings, environment_=environment)
    run_dir = made.with_name(f"{stamp}-{hostname}")
    made.rename(run_dir)
    records.update_run(run_dir, state="complete", started=f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:00:00+00:00")
    return run_dir


def _gpu(util: float, peak: int) -> dict:
    timeline = [[round(i * 0.1, 1), util + (i % 3) - 1] for i in range(12)]
    return {"available": True, "util_mean_pct": util, "util_p95_pct": util + 1, "memory_peak_bytes": peak,
            "energy_per_mrows_j": 40.0, "gpus": [{"index": 0, "name": "NVIDIA L4", "timeline": timeline,
                                                  "util_mean_pct": util, "util_p95_pct": util + 1}]}


def record(run_dir: Path, workload: str, engine: str, role: str, samples, price: Price, **fields) -> Record:
    r = Record(engine=engine, workload=workload, scale="1e6", role=role, family=fields.pop("family", "shuffle"),
               status=fields.pop("status", "ok"), samples_s=list(samples), rows=1_000_000,
               fingerprint=fields.pop("fingerprint", FP), price=price,
               config={"spark.master": {"value": "local[*]", "source": "conf/base.conf:7"}}, **fields)
    r.save(run_dir)
    return r


def build(root: Path) -> Path:
    gpubox = _run(root, "runs", "20261120T100000Z", "gpubox", "gpu-local",
                  [{"index": 0, "memory_bytes": 24152899584, "name": "NVIDIA L4"}], "a1b2c3d4e5f60718293a4b5c6d7e8f90")
    record(gpubox, "groupby_sum_mean", "cpu", "cpu", [0.45, 0.468, 0.49], M7I)
    record(gpubox, "groupby_sum_mean", "comet", "cpu-native", [0.30, 0.31, 0.33], M7I)
    record(gpubox, "groupby_sum_mean", "gpu", "gpu", [0.1, 0.104, 0.11], L4, gpu_metrics=_gpu(71.2, 3758096384),
           plan={"source": "executed plan", "accelerator": "RAPIDS Accelerator", "accelerated": ["GpuHashAggregate"] * 4,
                 "other": []})
    record(gpubox, "join_medium_inner_int", "cpu", "cpu", [0.40, 0.45, 0.50], M7I, family="join")
    record(gpubox, "join_medium_inner_int", "gpu", "gpu", [0.39, 0.41, 0.43], L4, family="join",
           gpu_metrics=_gpu(55.0, 2 * 2**30))
    record(gpubox, "standardize_clip_udf", "cpu", "cpu", [1.0, 1.2, 1.4], M7I, family="featurize")
    record(gpubox, "standardize_clip_udf", "gpu", "gpu", [1.4, 1.5, 1.6], L4, family="featurize",
           gpu_metrics=_gpu(12.0, 2**30),
           plan={"source": "executed plan", "accelerator": "RAPIDS Accelerator",
                 "accelerated": ["GpuProject", "GpuFileGpuScan"], "other": ["BatchEvalPython"],
                 "fallbacks": [{"op": "BatchEvalPython", "reason": "<b>Python UDFs</b> run on the CPU & are not columnar"}]})
    (gpubox / "broken.gpu.1e6.json").write_text("{half a rec")
    analysis.write_comparison(analysis.analyze_dirs([gpubox]), gpubox / results.COMPARISON_FILE)

    cpubox = _run(root, "runs", "20261121T090000Z", "cpubox", "local", [], "b2c3d4e5f60718293a4b5c6d7e8f9012")
    record(cpubox, "groupby_sum_mean", "cpu", "cpu", [0.30, 0.31, 0.32], M7I)
    record(cpubox, "groupby_sum_mean", "gpu", "gpu", [], L4, status="skipped", reason="no GPU on this host")
    evil = Record(engine="cpu", workload=EVIL, scale="1e6", samples_s=[1.0, 1.1, 1.2], rows=1_000_000, price=M7I,
                  config={"spark.evil": {"value": EVIL, "source": "\"><img src=x onerror=\"document.title='pwned'\">"}})
    records.write_json(cpubox / "evil.cpu.1e6.json", evil.to_json())  # a hostile name: not one a file may carry
    records.write_json(cpubox / results.COVERAGE_FILE, {"engine": "gpu", "scale": "1e4", "workloads": {
        "groupby_sum_mean": {"fraction": 0.8, "on_gpu": ["A"] * 4, "on_cpu": ["SortExec"],
                             "fallbacks": [{"kind": "Exec", "op": "SortExec", "reason": "<i>sorts</i>", "expressions": []}]}}})

    laptop = root / "smoke" / "20261122T080000Z-laptop"
    laptop.mkdir(parents=True)
    record(laptop, "sort_global", "cpu", "cpu", [], M7I, status="running")

    pairing = root / "comparisons" / "cpubox--gpubox"
    pairing.mkdir(parents=True)
    records.write_json(pairing / "runs.json", {"runs": [str(cpubox), str(gpubox)]})
    return root
