"""The configuration sweep, opt-in (`bench --sweep`): one setting from conf/sweep.conf varied at a time, per
engine and workload, at the run's smallest scale, so the best configuration per workload and host is
measured rather than guessed. Records carry the setting as their variant."""

from harness import config, session, workloads

from . import workloads as suite

SWEEP_WORKLOADS = ["standardize_clip", "groupby_stats_n100_keys", "join_big_shuffle_int", "sort_global"]


def _swept(settings):
    if not settings.sweep:
        return []
    chosen = workloads.selected(settings.workloads)
    return [w for w in SWEEP_WORKLOADS if w in chosen] if settings.workloads == ("*",) else chosen


if _swept(suite.SETTINGS):
    class ConfigSweep(suite.Workloads):
        params = (list(suite.SETTINGS.engines), _swept(suite.SETTINGS), config.sweep_points())
        param_names = ("engine", "workload", "setting")

        def setup(self, run_dir, engine, workload, setting):
            conf = suite.SETTINGS.spark_conf(engine)
            if config.engine_facts(engine, conf)[1] != "spark":
                raise NotImplementedError(f"the sweep varies Spark settings; the {engine} engine does not run Spark")
            if setting.startswith("spark.rapids.") and not session.uses_plugin(conf):
                raise NotImplementedError(f"{setting} does nothing under the {engine} engine (no RAPIDS plugin)")
            smallest = min((s for s in suite.SETTINGS.scales if s != config.AS_IS), key=config.scale_rows)
            self._prepare(run_dir, engine, workload, smallest, variant=setting)
