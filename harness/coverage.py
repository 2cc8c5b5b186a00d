"""GPU plan coverage, on any host: which operators the RAPIDS plugin would run on the GPU, and why not.

The real plugin answers, through its ExplainPlan API: the session has the GPU engine's configuration and
the plugin jar on its classpath, but the plugin itself disabled, so no GPU is needed. Each workload's plan is
built on tiny data and explained; every operator line carries the plugin's mark (``*`` will run on the GPU,
``!`` cannot, with the reason, ``@`` could but will not, ``#`` will be removed, ``$`` excluded by cost,
``^`` runs through the CPU bridge). Coverage is the share of the plan's operators (Exec nodes, removed ones
aside) that will run on the GPU. It sees the initial plan only, not adaptive execution's later changes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import EngineUnavailable, data, plugin, records, session, workloads
from .config import RunSettings, Setting, scale_rows
from .versions import check_installed_spark

COVERAGE_FILE = "coverage.json"
# "*Exec <ProjectExec> will run on GPU"; an operator the plugin has no rule for has no kind word:
# "! <BatchEvalPythonExec> cannot run on GPU because GPU does not currently support the operator class ..."
_LINE = re.compile(r"^(?P<indent>\s*)(?P<mark>[*!@#$^])(?P<kind>\w*) ?<(?P<op>[^>]+)> (?P<text>.*)$")


@dataclass
class Operator:
    kind: str  # Exec, Expression, Partitioning, ...
    op: str
    mark: str
    depth: int
    text: str

    @property
    def on_gpu(self) -> bool:
        return self.mark == "*"

    @property
    def reason(self) -> str | None:
        return self.text.split(" because ", 1)[1] if " because " in self.text else None


@dataclass
class Coverage:
    workload: str
    fraction: float
    on_gpu: list[str]
    on_cpu: list[str]
    fallbacks: list[dict] = field(default_factory=list)  # {"kind", "op", "reason"} for every '!' line
    plan: str = ""


def parse(workload: str, explained: str) -> Coverage:
    operators = []
    for line in explained.splitlines():
        if m := _LINE.match(line):
            kind = m["kind"] or ("Exec" if m["op"].endswith("Exec") else "Operator")
            operators.append(Operator(kind, m["op"], m["mark"], len(m["indent"]) // 2, m["text"]))
    execs = [o for o in operators if o.kind == "Exec" and o.mark != "#"]
    return Coverage(
        workload=workload,
        fraction=sum(o.on_gpu for o in execs) / len(execs) if execs else 0.0,
        on_gpu=[o.op for o in execs if o.on_gpu],
        on_cpu=[o.op for o in execs if not o.on_gpu],
        fallbacks=[{"kind": o.kind, "op": o.op, "reason": o.reason} for o in operators if o.mark == "!"],
        plan=explained,
    )


def explain(spark, df) -> str:
    return spark._jvm.com.nvidia.spark.rapids.ExplainPlan.explainPotentialGpuPlan(df._jdf, "ALL")


def coverage_conf(settings: RunSettings, engine: str = "gpu") -> dict:
    """The GPU engine's configuration with the plugin jar on the classpath and the plugin itself off."""
    conf = settings.spark_conf(engine)
    jar = plugin.find_jar(conf.get("spark.jars", Setting("", "")).value)
    plugin.check_jar(jar, check_installed_spark(), gpus=[])
    conf = {k: v for k, v in conf.items() if k != "spark.plugins" and ".resource.gpu." not in k}
    conf["spark.jars"] = Setting(str(jar), "harness (plan coverage: the plugin jar, plugin disabled)")
    return session.preflight("cpu", conf)


def measure(settings: RunSettings, scale: str, engine: str = "gpu", progress=print) -> dict[str, dict]:
    """Coverage of every selected workload at `scale`; needs a fresh process (it starts its own session)."""
    spark = session.start("cpu", settings, conf=coverage_conf(settings, engine)).spark
    rows = scale_rows(scale)
    found = {}
    for name in workloads.selected(settings.workloads):
        workload = workloads.get(name)
        for table in workload.tables:
            if table in data.TABLES:
                data.ensure(table, rows, settings.seed, settings.data_dir, progress)
        tables = {t: spark.read.parquet(data.table_path(t, rows, settings.seed, settings.data_dir))
                  for t in workload.tables}
        with workloads.sql_settings(spark, workload):
            result = parse(name, explain(spark, workload.build(tables)))
        progress(f"{name}: {result.fraction:.0%} of operators on the GPU plan")
        found[name] = asdict(result)
    return found


def write(run_dir: Path, settings: RunSettings, scale: str, engine: str = "gpu", progress=print) -> Path:
    """coverage.json in the run directory: the coverage of every workload, or why it could not be measured."""
    try:
        payload = {"engine": engine, "scale": scale, "workloads": measure(settings, scale, engine, progress)}
    except EngineUnavailable as err:
        payload = {"engine": engine, "scale": scale, "unavailable": str(err), "workloads": {}}
    path = Path(run_dir) / COVERAGE_FILE
    records.write_json(path, payload)
    return path


# Wrappers, row/column transitions and the noop sink that forces a workload: work on neither device.
_NOT_WORK = {"AdaptiveSparkPlan", "ColumnarToRow", "RowToColumnar", "InputAdapter", "WholeStageCodegen",
             "AQEShuffleRead", "ShuffleQueryStage", "BroadcastQueryStage", "ReusedExchange", "Subquery",
             "SubqueryBroadcast", "TableCacheQueryStage", "ResultQueryStage", "OverwriteByExpression"}
# "+- * HashAggregate (7)" in a formatted plan: tree marks, the codegen star, then the operator's name.
_PLAN_NODE = re.compile(r"^[\s:|+\-]*(?:\*\s*)?([A-Z][A-Za-z0-9]*)")


def executed_fallback(planned: dict | None) -> float | None:
    """The share of the operators that ran which are not the plugin's; None without an executed plan."""
    count = len(planned["gpu"]) + len(planned["cpu"]) if planned else 0
    return len(planned["cpu"]) / count if count else None


def executed_operators(plans: list[str]) -> dict:
    """Operators of the plans Spark ran (formatted, as its SQL status store keeps them): which are the
    plugin's (Gpu...) and which are not. With adaptive execution only the final plan counts."""
    names = []
    for plan in plans:
        tree = plan.split("\n\n", 1)[0].split("== Initial Plan ==", 1)[0]  # the tree, then node details
        names += [m.group(1) for line in tree.splitlines()[1:] if (m := _PLAN_NODE.match(line))]
    work = [n for n in names if n not in _NOT_WORK and not n.startswith(("GpuColumnarToRow", "GpuRowToColumnar"))]
    return {"gpu": [n for n in work if n.startswith("Gpu")], "cpu": [n for n in work if not n.startswith("Gpu")]}
