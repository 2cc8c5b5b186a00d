"""Plan coverage: which operators an accelerator runs, predicted before a run and read from the plan that ran.

**Predicted, for the RAPIDS Accelerator, on any host.** The real plugin answers through its ExplainPlan API:
a classic session has the GPU engine's configuration and the plugin jar on its classpath, but the plugin
itself disabled, so no GPU is needed. Each workload's plan is built on tiny data in a fresh session (its
own temporary views and SQL settings) and explained; a workload that fails (a query that does not parse, a
table it forgot to list) is recorded with its error and the others go on. Every line of the explanation
carries the plugin's mark (``*`` will run on the GPU, ``!`` cannot, with the reason, ``@`` could but will
not, ``#`` will be removed, ``$`` excluded by cost, ``^`` runs through the CPU bridge); the expressions that
stop an operator are listed with it. Subqueries are explained too (the plugin's explanation leaves them out).
Coverage is the share of the plan's operators (Exec nodes, removed ones aside, those of subqueries included)
that will run on the GPU. It sees the initial plan only.

**Executed, for any accelerated engine (RAPIDS, Comet).** After an instrumented run, the final plan Spark
ran (from the monitoring REST API) is split into the accelerator's operators (``Gpu...``, ``Comet...``) and
the others, wrappers and row/column transitions aside.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import EngineUnavailable, comet, data, jars, plugin, records, session, workloads
from .config import RunSettings, Setting, SparkConf, scale_rows
from .versions import check_installed_spark

COVERAGE_FILE = "coverage.json"
# "*Exec <ProjectExec> will run on GPU"; an operator the plugin has no rule for has no kind word:
# "! <BatchEvalPythonExec> cannot run on GPU because GPU does not currently support the operator class ..."
_LINE = re.compile(r"^(?P<indent>\s*)(?P<mark>[*!@#$^])(?P<kind>\w*) ?<(?P<op>[^>]+)> (?P<text>.*)$")
# plugin class -> (accelerator's name, prefix of its operators)
ACCELERATORS = {session.PLUGIN_CLASS: ("RAPIDS Accelerator", "Gpu"), comet.PLUGIN_CLASS: ("Comet", "Comet")}


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
    fallbacks: list[dict] = field(default_factory=list)  # {"kind", "op", "reason", "expressions"} per '!' line
    plan: str = ""


def parse(workload: str, explained: str) -> Coverage:
    operators = []
    for line in explained.splitlines():
        if m := _LINE.match(line):
            kind = m["kind"] or ("Exec" if m["op"].endswith("Exec") else "Expression")
            operators.append(Operator(kind, m["op"], m["mark"], len(m["indent"]) // 2, m["text"]))
    execs = [o for o in operators if o.kind == "Exec" and o.mark != "#"]
    fallbacks, current = [], None
    for o in operators:
        if o.kind == "Exec":
            current = {"kind": o.kind, "op": o.op, "reason": o.reason, "expressions": []} if o.mark == "!" else None
            if current:
                fallbacks.append(current)
        elif o.mark == "!":
            if current is not None and o.kind == "Expression":
                if o.op not in current["expressions"]:
                    current["expressions"].append(o.op)  # the expression that keeps its operator on the CPU
            else:
                fallbacks.append({"kind": o.kind, "op": o.op, "reason": o.reason, "expressions": []})
    return Coverage(
        workload=workload,
        fraction=sum(o.on_gpu for o in execs) / len(execs) if execs else 0.0,
        on_gpu=[o.op for o in execs if o.on_gpu],
        on_cpu=[o.op for o in execs if not o.on_gpu],
        fallbacks=fallbacks,
        plan=explained,
    )


def explain(spark, df) -> str:
    """The plugin's explanation of the plan and of every subquery in it (which its own output leaves out)."""
    explain_plan = spark._jvm.com.nvidia.spark.rapids.ExplainPlan.explainPotentialGpuPlan
    parts = [explain_plan(df._jdf, "ALL")]
    subqueries = df._jdf.queryExecution().optimizedPlan().subqueriesAll()
    for i in range(subqueries.size()):
        plan = spark._jvm.org.apache.spark.sql.classic.Dataset.ofRows(spark._jsparkSession, subqueries.apply(i))
        parts.append(f"== subquery {i + 1} ==\n" + explain_plan(plan, "ALL"))
    return "\n".join(parts)


def coverage_conf(settings: RunSettings, engine: str = "gpu") -> SparkConf:
    """The GPU engine's configuration with the plugin jar on the classpath and the plugin itself off."""
    conf = settings.spark_conf(engine)
    jar = jars.find("rapids", conf.get("spark.jars", Setting("", "")).value)
    plugin.check_jar(jar, check_installed_spark(), gpus=[])
    conf = {k: v for k, v in conf.items() if k != "spark.plugins" and ".resource.gpu." not in k}
    conf["spark.jars"] = Setting(str(jar), "harness (plan coverage: the plugin jar, plugin disabled)")
    return session.preflight("cpu", conf)


def measure(settings: RunSettings, scale: str, engine: str = "gpu", progress=print) -> dict[str, dict]:
    """Coverage of every selected workload at `scale`; needs a fresh process (it starts its own session)."""
    base = session.classic("coverage", coverage_conf(settings, engine), monitored=False)
    found = {}
    for name in workloads.selected(settings.workloads):
        try:
            result = asdict(_explain_one(base.newSession(), workloads.get(name), scale, settings, progress))
            progress(f"{name}: {result['fraction']:.0%} of operators on the GPU plan")
        except Exception as err:  # one bad workload (a parse error, a missing table) must not lose the others
            result = {"workload": name, "error": f"{type(err).__name__}: {first_line(err)}"}
            progress(f"{name}: could not be explained: {result['error']}")
        found[name] = result
    return found


def first_line(err: BaseException) -> str:
    """The first line of an error that says something (Spark's parse errors start with an empty one)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:2000] if lines else type(err).__name__


def _explain_one(spark, workload, scale: str, settings: RunSettings, progress) -> Coverage:
    """One workload's plan in a fresh session, at the scale its data has (a user dataset's own)."""
    rows = None if workload.on_user_data else scale_rows(scale)
    for table in workload.tables:
        if table in data.TABLES:
            data.ensure(table, rows, settings.seed, settings.data_dir, progress)
        elif table in data.derived_tables():
            data.ensure_derived(table, rows, settings.seed, settings.data_dir, spark, progress)
    tables = workloads.read_tables(spark, {t: data.table_path(t, rows, settings.seed, settings.data_dir) for t in workload.tables})
    with workloads.sql_settings(spark, workload):
        if workload.prepare:
            workload.prepare(spark, tables)
        try:
            return parse(workload.name, explain(spark, workload.build(tables)))
        finally:
            if workload.cleanup:
                workload.cleanup(spark)


def write(path: Path, settings: RunSettings, scale: str, engine: str = "gpu", progress=print) -> Path:
    """coverage.json at `path`: the coverage of every workload, or why it could not be measured at all, and how
    long measuring it took (a run's summary accounts for its wall time)."""
    began = time.perf_counter()
    try:
        payload = {"engine": engine, "scale": scale, "workloads": measure(settings, scale, engine, progress)}
    except EngineUnavailable as err:
        payload = {"engine": engine, "scale": scale, "unavailable": str(err), "workloads": {}}
    payload["elapsed_s"] = round(time.perf_counter() - began, 3)
    records.write_json(path, payload)
    return path


# ---------------------------------------------------------------------------------------------- executed plans

# Wrappers, query stages and the noop sink that forces a workload: work on neither device.
_NOT_WORK = {"AdaptiveSparkPlan", "ColumnarToRow", "RowToColumnar", "InputAdapter", "WholeStageCodegen",
             "AQEShuffleRead", "ShuffleQueryStage", "BroadcastQueryStage", "ReusedExchange", "Subquery",
             "SubqueryBroadcast", "TableCacheQueryStage", "ResultQueryStage", "OverwriteByExpression",
             "WriteFiles", "Execute", "CommandResult", "LocalTableScan"}
# "+- * HashAggregate (7)" in a formatted plan: tree marks, the codegen star, then the operator's name.
_PLAN_NODE = re.compile(r"^[\s:|+\-]*(?:\*\s*)?([A-Z][A-Za-z0-9]*)")


# Comet's extended explain section (spark.sql.extendedExplainProviders), which the executed plan's description
# carries: " Project [COMET: reflect is not supported]" for what it could not run natively.
_COMET_SECTION = "== Extended Information (Comet) =="
_COMET_REASON = re.compile(r"^[\s:|+\-]*(\w+)[^\n]*?\[COMET: ([^\]]+)\]", re.M)


def accelerator_of(conf: SparkConf) -> tuple[str, str] | None:
    """(name, operator prefix) of the accelerator the configuration's spark.plugins loads, if any."""
    plugins = conf.get("spark.plugins", Setting("", "")).value
    return next(((name, prefix) for cls, (name, prefix) in ACCELERATORS.items() if cls in plugins), None)


def executed_plan(conf: SparkConf, plans: list[str]) -> dict:
    """The operators of the plans Spark ran, split into the engine's accelerator's and the rest; {} for an
    engine without an accelerator. With adaptive execution only the final plan counts."""
    accelerator = accelerator_of(conf)
    if accelerator is None:
        return {}
    name, prefix = accelerator
    names = []
    for plan in plans:
        tree = plan.split("\n\n", 1)[0].split("== Initial Plan ==", 1)[0]  # the tree, then node details
        names += [m.group(1) for line in tree.splitlines()[1:] if (m := _PLAN_NODE.match(line))]
    work = [n for n in names if n not in _NOT_WORK and not _transition(n, prefix)]
    found = {"source": "executed plan", "accelerator": name, "accelerated": [n for n in work if n.startswith(prefix)],
             "other": [n for n in work if not n.startswith(prefix)]}
    reasons = [m.groups() for plan in plans for section in plan.split(_COMET_SECTION)[1:]
               for m in _COMET_REASON.finditer(section.split("\n\n", 1)[0])]
    if reasons:
        found["fallbacks"] = [{"op": op, "reason": reason} for op, reason in dict.fromkeys(reasons)]
    return found


def _transition(name: str, prefix: str) -> bool:
    """Row/column conversions at the accelerator's edges (GpuColumnarToRow, CometSparkToColumnar, ...)."""
    return name.startswith(prefix) and (name.endswith("ToRow") or name.endswith("ToColumnar"))
