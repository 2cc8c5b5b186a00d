"""Presets: the gpu-check preset's passes, narrowing by --scales and --workloads, and bad preset files."""

import pytest

from harness import HarnessError, bundle, presets, workloads
from harness.cli import main


def test_gpu_check_runs_one_of_each_family_and_groupby_and_join_at_two_scales():
    preset = presets.load("gpu-check")
    assert preset.smoke and preset.repeat == 2 and preset.engines == ("cpu", "comet", "gpu")
    families = {workloads.get(name).family for name in preset.workloads}
    assert {"featurize", "shuffle", "join", "handoff", "handoff_read"} <= families
    assert preset.scales == ("1e6", "1e7")
    twice = [w for w in preset.workloads if sum(w in p.workloads for p in preset.passes) == 2]
    assert twice and all(workloads.get(w).family in ("shuffle", "join") for w in twice)


def test_scales_replace_every_pass_and_nothing_runs_twice_at_one_scale():
    narrowed = presets.load("gpu-check").narrowed(("1e4",), ("groupby_sum_mean", "standardize_clip"))
    assert narrowed.passes == (presets.Pass(("1e4",), ("groupby_sum_mean", "standardize_clip")),)
    with pytest.raises(HarnessError, match="leaves none of its workloads"):
        presets.load("gpu-check").narrowed(None, ("ml_pipeline",))


@pytest.mark.parametrize("text, message", [
    ("prepbench.preset.pass.1  1e6  no_such_workload\n", "no_such_workload"),
    ("prepbench.preset.pass.1  1e400  sort_global\n", "scale '1e400'"),
    ("prepbench.preset.repeat  zero\nprepbench.preset.pass.1  1e6  sort_global\n", "repeat is a whole number"),
    ("prepbench.preset.repaet  2\nprepbench.preset.pass.1  1e6  sort_global\n", "unknown preset key"),
    ("prepbench.preset.smoke  true\n", "at least one"),
    ("prepbench.preset.engines  cpu,gpuu\nprepbench.preset.pass.1  1e6  sort_global\n", "unknown engine"),
])
def test_a_bad_preset_file_names_the_line_and_what_to_write(tmp_path, text, message):
    (tmp_path / "mine.conf").write_text(text)
    with pytest.raises(HarnessError, match=message):
        presets.load("mine", tmp_path)


def test_an_unknown_preset_lists_the_known_ones(capsys):
    assert main(["bench", "--preset", "gpu-chekc"]) == 2
    assert "no preset 'gpu-chekc' (known: gpu-check)" in capsys.readouterr().err


@pytest.mark.parametrize("text, size", [("56M", 56 << 20), ("512k", 512 << 10), ("2GiB", 2 << 30)])
def test_split_sizes(text, size):
    assert bundle.parse_size(text) == size


def test_a_bad_split_size_or_architecture_says_what_to_write(capsys):
    assert main(["bundle", "/tmp/never-built", "--split", "56 parts"]) == 2
    assert "--split 56 parts: write a size such as 48M" in capsys.readouterr().err
    assert main(["bundle", "/tmp/never-built", "--gpu-arch", "hopper"]) == 2
    assert "--gpu-arch hopper: write an architecture as sm_90" in capsys.readouterr().err
