"""Configuration layering, provenance, validation (every error path) and redaction."""

import json

import pytest

from harness import config
from harness.config import ConfigError, RunSettings, merge, redact


@pytest.fixture
def conf_dir(tmp_path):
    (tmp_path / "engines").mkdir()
    (tmp_path / "hosts").mkdir()
    (tmp_path / "base.conf").write_text(
        "# comment\nspark.master  local[*]\nspark.sql.shuffle.partitions 200\nspark.app.name=base\n")
    (tmp_path / "engines" / "cpu.conf").write_text("spark.sql.shuffle.partitions 64\n")
    (tmp_path / "engines" / "gpu.conf").write_text("spark.rapids.sql.enabled true\n")
    (tmp_path / "hosts" / "small.conf").write_text("spark.sql.shuffle.partitions: 8\nspark.driver.memory 2g\n")
    return tmp_path


def test_layers_merge_in_order_and_remember_their_source(conf_dir):
    merged = merge("cpu", "small", ("spark.driver.memory=3g",), conf_dir=conf_dir)
    assert merged["spark.master"].value == "local[*]"
    assert merged["spark.app.name"].value == "base"
    partitions = merged["spark.sql.shuffle.partitions"]
    assert partitions.value == "8"
    assert partitions.source.endswith("hosts/small.conf:1")
    assert [s.rsplit("/", 1)[-1] for s in partitions.replaced] == ["base.conf:3", "cpu.conf:1"]
    assert merged["spark.driver.memory"].value == "3g"
    assert merged["spark.driver.memory"].source == config.COMMAND_LINE


def test_engine_files_differ_only_in_their_own_lines(conf_dir):
    cpu, gpu = merge("cpu", "small", conf_dir=conf_dir), merge("gpu", "small", conf_dir=conf_dir)
    assert set(gpu) - set(cpu) == {"spark.rapids.sql.enabled"}


def test_shipped_configuration_merges_for_every_engine():
    assert config.engines() == ["comet", "cpu", "cudf", "dask", "dask-cudf", "gpu", "gpu-rapids-shuffle", "pandas"]
    for engine in config.engines():
        merged = merge(engine)
        assert merged["spark.master"].value == "local[*]"
        assert config.warnings(merged) == [], engine
    assert merge("gpu")["spark.plugins"].value == "com.nvidia.spark.SQLPlugin"
    assert merge("comet")["spark.plugins"].value == "org.apache.spark.CometPlugin"
    assert "spark.plugins" not in merge("cpu")
    facts = {e: config.engine_facts(e) for e in config.engines()}
    assert {e: f[0] for e, f in facts.items()} == {"comet": "cpu-native", "cpu": "cpu", "cudf": "gpu", "dask": "cpu",
                                                    "dask-cudf": "gpu", "gpu": "gpu", "gpu-rapids-shuffle": "gpu",
                                                    "pandas": "cpu"}
    assert facts["dask-cudf"][1] == "dask" and facts["gpu-rapids-shuffle"][2] is True  # layered; opt-in


def test_the_default_engines_put_cpu_spark_first_and_leave_opt_in_ones_out():
    assert config.default_engines() == ["cpu", "dask", "pandas", "comet", "gpu", "cudf", "dask-cudf"]


def test_unknown_rapids_key_suggests_the_nearest(conf_dir):
    with pytest.raises(ConfigError, match=r"unknown RAPIDS Accelerator key 'spark\.rapids\.sql\.concurentGpuTasks'"
                                          r".*did you mean 'spark\.rapids\.sql\.concurrentGpuTasks'"):
        merge("cpu", "small", ("spark.rapids.sql.concurentGpuTasks=2",), conf_dir=conf_dir)


def test_unknown_rapids_key_in_a_file_names_file_and_line(conf_dir):
    (conf_dir / "hosts" / "small.conf").write_text("\n\nspark.rapids.memory.pinnedPool.sizee 1g\n")
    with pytest.raises(ConfigError, match=r"small\.conf:3: .*did you mean 'spark\.rapids\.memory\.pinnedPool\.size'"):
        merge("cpu", "small", conf_dir=conf_dir)


def test_operator_switches_built_at_run_time_are_accepted_but_typed():
    config.validate("spark.rapids.sql.exec.ProjectExec", "false", "test")
    config.validate("spark.rapids.sql.expression.Upper", "true", "test")
    with pytest.raises(ConfigError, match="true or false"):
        config.validate("spark.rapids.sql.exec.ProjectExec", "off", "test")


@pytest.mark.parametrize("key, value, expected", [
    ("spark.sql.shuffle.partitions", "many", "a whole number"),
    ("spark.sql.adaptive.enabled", "yes", "true or false"),
    ("spark.driver.memory", "lots", "a size such as 512m"),
    ("spark.task.resource.gpu.amount", "a quarter", "a number"),
    ("spark.rapids.sql.concurrentGpuTasks", "2.5", "a whole number"),
    ("spark.rapids.memory.pinnedPool.size", "8 gigs", "a size"),
])
def test_values_of_the_wrong_type_are_rejected(key, value, expected):
    with pytest.raises(ConfigError, match=rf"command line: {key} must be {expected}"):
        merge("cpu", "local", (f"{key}={value}",))


@pytest.mark.parametrize("key, value", [
    ("spark.driver.memory", "512m"), ("spark.driver.memory", "4G"), ("spark.sql.autoBroadcastJoinThreshold", "-1"),
    ("spark.task.resource.gpu.amount", "0.25"), ("spark.rapids.sql.enabled", "FALSE"),
    ("spark.some.key.spark.does.not.know", "anything"),
])
def test_values_of_the_right_type_pass(key, value):
    assert merge("cpu", "local", (f"{key}={value}",))[key].value == value


def test_missing_files_say_what_exists(conf_dir):
    with pytest.raises(ConfigError, match=r"no host named 'big'.*known: small"):
        merge("cpu", "big", conf_dir=conf_dir)
    with pytest.raises(ConfigError, match=r"no engine named 'tpu'.*known: cpu, gpu"):
        merge("tpu", "small", conf_dir=conf_dir)
    (conf_dir / "base.conf").unlink()
    with pytest.raises(ConfigError, match=r"configuration file not found: .*base\.conf"):
        merge("cpu", "small", conf_dir=conf_dir)


def test_a_key_without_a_value_is_an_error(conf_dir):
    (conf_dir / "engines" / "cpu.conf").write_text("spark.sql.shuffle.partitions\n")
    with pytest.raises(ConfigError, match=r"cpu\.conf:1: 'spark\.sql\.shuffle\.partitions' has no value"):
        merge("cpu", "small", conf_dir=conf_dir)


@pytest.mark.parametrize("override", ["spark.sql.shuffle.partitions", "=4", "spark.x="])
def test_malformed_overrides_are_rejected(override):
    with pytest.raises(ConfigError, match="must look like key=value"):
        merge("cpu", "local", (override,))


@pytest.mark.parametrize("key, value, hidden", [
    ("spark.hadoop.fs.s3a.secret.key", "hunter2", "hunter2"),
    ("spark.hadoop.fs.s3a.access.key", "AKIAEXAMPLE", "AKIAEXAMPLE"),
    ("spark.ssl.keyPassword", "pw1", "pw1"),
    ("spark.authenticate.secret", "s3cr3t", "s3cr3t"),
    ("spark.eventLog.dir", "s3a://alice:topsecret@bucket/logs", "topsecret"),
    ("spark.jars", "https://repo/x.jar?token=abc123", "abc123"),
    ("spark.kubernetes.driverEnv.API_TOKEN", "tok", "tok"),
])
def test_secrets_are_redacted(key, value, hidden):
    shown = redact(key, value)
    assert hidden not in shown
    assert config.REDACTED in shown


def test_plain_values_are_kept():
    assert redact("spark.eventLog.dir", "s3a://bucket/logs") == "s3a://bucket/logs"
    assert redact("spark.sql.shuffle.partitions", "8") == "8"


def test_recorded_configuration_is_redacted_and_keeps_sources():
    merged = merge("cpu", "local", ("spark.hadoop.fs.s3a.secret.key=hunter2",))
    recorded = config.recorded(merged)
    assert "hunter2" not in json.dumps(recorded)
    assert recorded["spark.sql.shuffle.partitions"]["source"].endswith("hosts/local.conf:4")


def test_run_settings_travel_through_the_environment(tmp_path):
    settings = RunSettings(host="local", engines=("cpu", "comet"), scales=("1e4", "2e5", "as-is"), overrides=("a.b=c d",),
                           seed=7, workloads=("join_*", "ml_pipeline"), session="classic", remote="sc://h:1",
                           data_dir=tmp_path / "d", results_dir=tmp_path / "r")
    assert RunSettings.from_env(settings.to_env()) == settings
    assert RunSettings.from_env({}) == RunSettings()


@pytest.mark.parametrize("scale, rows", [("1e4", 10_000), ("250000", 250_000), ("1e8", 100_000_000)])
def test_scales(scale, rows):
    assert config.scale_rows(scale) == rows


@pytest.mark.parametrize("scale", ["tiny", "1e2", "0", "-5", "1.5e6", "1e10", "1e400"])
def test_bad_scales_are_rejected(scale):
    with pytest.raises(ConfigError, match="scale"):
        RunSettings(scales=(scale,))


def test_engine_variants_layer_over_their_parent():
    files = [p.name for p in config.layer_files("gpu-rapids-shuffle", "local")]
    assert files == ["base.conf", "gpu.conf", "gpu-rapids-shuffle.conf", "local.conf"]
    merged = merge("gpu-rapids-shuffle")
    assert merged["spark.plugins"].value == "com.nvidia.spark.SQLPlugin"
    assert merged["spark.rapids.shuffle.mode"].value == "MULTITHREADED"


def test_gpu_task_share_is_derived_from_executor_cores():
    merged = merge("gpu", "gpu-standalone", ("spark.executor.cores=4",))
    assert merged["spark.task.resource.gpu.amount"].value == "0.25"
    assert merged["spark.task.resource.gpu.amount"].source.startswith("derived")
    assert merged["spark.executor.resource.gpu.discoveryScript"].value.endswith("conf/gpu-discovery.sh")
    explicit = merge("gpu", "gpu-standalone", ("spark.task.resource.gpu.amount=0.5",))
    assert explicit["spark.task.resource.gpu.amount"].value == "0.5"


def test_pinned_pool_is_capped_by_host_memory_in_local_mode_only(monkeypatch):
    monkeypatch.setattr(config, "host_memory_bytes", lambda: 16 * 2**30)
    local = merge("gpu", "gpu-local", ("spark.rapids.memory.pinnedPool.size=8g",))
    assert local["spark.rapids.memory.pinnedPool.size"].value == "4096m"
    assert "quarter of host memory" in local["spark.rapids.memory.pinnedPool.size"].source
    cluster = merge("gpu", "gpu-standalone", ("spark.rapids.memory.pinnedPool.size=8g",))
    assert cluster["spark.rapids.memory.pinnedPool.size"].value == "8g"


def test_unknown_engines_are_refused():
    with pytest.raises(ConfigError, match=r"unknown engine\(s\) \['tpu'\]"):
        RunSettings(engines=("cpu", "tpu"))


def test_the_suites_own_keys_are_checked_like_spark_keys():
    with pytest.raises(ConfigError, match="unknown prepbench key 'prepbench.cost.gpu_instanc': did you mean "
                                          "'prepbench.cost.gpu_instance'"):
        merge("cpu", overrides=("prepbench.cost.gpu_instanc=g6.xlarge",))
    with pytest.raises(ConfigError, match="prepbench.cost.nodes must be a whole number"):
        merge("cpu", overrides=("prepbench.cost.nodes=two",))
    with pytest.raises(ConfigError, match="prepbench.price.g6.xlarge must be a number"):
        merge("cpu", overrides=("prepbench.price.g6.xlarge=cheap",))
    conf = merge("cpu", "gpu-local", ("prepbench.price.p5.48xlarge/8=9.5",))
    assert conf["prepbench.cost.gpu_instance"].source == "conf/hosts/gpu-local.conf:15"
    assert conf["prepbench.price.p5.48xlarge/8"].value == "9.5"


def test_the_suites_own_keys_never_reach_spark(spark):
    from harness import connect

    conf = merge("cpu")
    properties = connect.properties(conf, 1, 2, "pbk_test")
    assert "prepbench.cost.nodes" in conf and not any(k.startswith("prepbench.") for k in properties)
    assert spark.conf.get("prepbench.cost.nodes", None) is None


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("environ, message", [
    ({"PREPBENCH_SEED": "abc"}, "PREPBENCH_SEED='abc': the data seed must be a whole number of 0 or more"),
    ({"PREPBENCH_CONF": "spark.x=1"}, "PREPBENCH_CONF must be a JSON list of \"key=value\" strings"),
    ({"PREPBENCH_CONF": '{"a": 1}'}, "PREPBENCH_CONF must be a JSON list of \"key=value\" strings, got dict"),
    ({"PREPBENCH_SCALES": "1e400"}, "scale '1e400' is out of range: use 1e3 to 1e9 rows"),
    ({"PREPBENCH_ENGINES": "cpu,tpu"}, r"unknown engine\(s\) \['tpu'\]"),
    ({"PREPBENCH_SESSION": "fast"}, "session mode 'fast' must be one of connect, classic"),
    ({"PREPBENCH_REMOTE": "http://x"}, "must be a Spark Connect URL such as sc://host:15002"),
])
def test_bad_settings_in_the_environment_get_one_line(environ, message):
    with pytest.raises(ConfigError, match=message) as err:
        RunSettings.from_env(environ)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("spark.rapids.sql.concurrentGpuTasks=-1", "spark.rapids.sql.concurrentGpuTasks must be at least 1, got '-1'"),
    ("spark.sql.shuffle.partitions=-5", "spark.sql.shuffle.partitions must be at least 1, got '-5'"),
    ("prepbench.verdict.max_fallback_fraction=7", "prepbench.verdict.max_fallback_fraction must be from 0 to 1, got '7'"),
    ("prepbench.cost.nodes=0", "prepbench.cost.nodes must be at least 1, got '0'"),
    ("spark.executor.cores=0", "spark.executor.cores must be at least 1, got '0'"),
    ("spark.network.timeout=soon", "spark.network.timeout must be a duration such as 500ms"),
])
def test_values_out_of_range_are_refused_before_any_jvm(override, message):
    with pytest.raises(ConfigError, match=message):
        merge("cpu", "local", (override,))


def test_executor_cores_of_zero_with_a_gpu_is_a_message_not_a_division_by_zero():
    with pytest.raises(ConfigError, match="command line: spark.executor.cores must be at least 1"):
        merge("gpu", "gpu-standalone", ("spark.executor.cores=0", "spark.executor.resource.gpu.amount=1"))


def test_a_misspelled_spark_key_is_warned_about_with_the_nearest_key():
    conf = merge("cpu", "local", ("spark.sql.shufle.partitions=8", "spark.executor.memry=4g", "spark.comet.exec.enabld=true"))
    found = config.warnings(conf)
    assert "command line: Spark SQL declares no key 'spark.sql.shufle.partitions', so it would do nothing: did you " \
           "mean 'spark.sql.shuffle.partitions'?" in found
    assert any("'spark.executor.memry'" in w and "did you mean 'spark.executor.memory'" in w for w in found)
    assert any("Comet declares no key 'spark.comet.exec.enabld'" in w for w in found)
    assert config.warnings(merge("cpu", "local", ("spark.executor.resource.gpu.amount=1",))) == []


def test_a_conf_file_with_a_byte_that_is_not_utf8_names_the_file_and_line(conf_dir):
    (conf_dir / "hosts" / "small.conf").write_bytes(b"spark.driver.memory 2g\nspark.app.name caf\xe9\n")
    with pytest.raises(ConfigError, match=r"small\.conf:2: byte 0xe9 at column 19 is not UTF-8: save the file as UTF-8"):
        merge("cpu", "small", conf_dir=conf_dir)


def test_a_byte_order_mark_is_refused(conf_dir):
    (conf_dir / "hosts" / "small.conf").write_bytes(b"\xef\xbb\xbfspark.driver.memory 2g\n")
    with pytest.raises(ConfigError, match=r"small\.conf:1: the file starts with a UTF-8 byte-order mark"):
        merge("cpu", "small", conf_dir=conf_dir)


def test_a_comment_after_a_value_is_refused_because_spark_submit_would_keep_it(conf_dir):
    (conf_dir / "hosts" / "small.conf").write_text("spark.eventLog.dir /tmp/logs # where logs go\n")
    with pytest.raises(ConfigError, match=r"small\.conf:1: 'spark.eventLog.dir' has '#' after its value"):
        merge("cpu", "small", conf_dir=conf_dir)
    (conf_dir / "hosts" / "small.conf").write_text("spark.archives env.tar.gz#environment\n")
    assert merge("cpu", "small", conf_dir=conf_dir)["spark.archives"].value == "env.tar.gz#environment"


@pytest.mark.parametrize("key, value, hidden", [
    ("spark.hadoop.fs.azure.account.key.acct.blob.core.windows.net", "AZUREKEY==", "AZUREKEY=="),
    ("spark.executor.extraJavaOptions", "-Xmx1g -Daws.secretKey=sk-123 -Dx=y", "sk-123"),
    ("spark.driver.extraJavaOptions", "-Dfs.azure.sas.token=sv=2020&sig=abc", "sig=abc"),
])
def test_secrets_inside_values_are_redacted(key, value, hidden):
    shown = redact(key, value)
    assert hidden not in shown and config.REDACTED in shown
    if "extraJavaOptions" in key:
        assert "-Xmx1g" in shown or "-Dfs.azure" in shown


def test_recorded_settings_never_hold_the_raw_overrides():
    settings = RunSettings(overrides=("spark.hadoop.fs.s3a.secret.key=hunter2", "spark.x=s3a://a:pw@b/c"))
    described = json.dumps(settings.described())
    assert "hunter2" not in described and "pw@" not in described
    assert "spark.hadoop.fs.s3a.secret.key" in described
