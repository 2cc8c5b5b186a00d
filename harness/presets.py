"""Presets: a named run (`bench --preset NAME`), one file in conf/presets/NAME.conf.

A preset is a list of passes, each some workloads at some scales (asv's parameters are a product, so a
workload that should run at more scales than the others gets a pass of its own), the timed repeats per
benchmark, and whether the smoke check (harness/smoke.py) runs first. Keys, all in the file's own format:

    prepbench.preset.description   one line
    prepbench.preset.smoke         true | false
    prepbench.preset.repeat        timed repeats per benchmark (asv's repeat)
    prepbench.preset.engines       the engines it runs, unless --engines says otherwise (default: the run's)
    prepbench.preset.pass.N        SCALES WORKLOADS   (comma-separated each; N orders the passes)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import HarnessError, workloads
from .config import CONF_DIR, ConfigError, read_properties, scale_rows

PRESETS_DIR = CONF_DIR / "presets"
_PREFIX = "prepbench.preset."
_PASS = re.compile(r"pass\.(\d+)")


@dataclass(frozen=True)
class Pass:
    scales: tuple[str, ...]
    workloads: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    passes: tuple[Pass, ...]
    repeat: int | None = None
    smoke: bool = False
    engines: tuple[str, ...] = ()  # empty: the run's engines

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for p in self.passes for w in p.workloads))

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for p in self.passes for s in p.scales))

    def narrowed(self, scales: tuple[str, ...] | None, chosen: tuple[str, ...] | None) -> "Preset":
        """The preset with --scales replacing every pass's scales and --workloads narrowing its workloads."""
        passes, done = [], set()
        for p in self.passes:
            pass_scales = tuple(scales) if scales else p.scales
            names = tuple(w for w in p.workloads if (not chosen or w in workloads.selected(chosen))
                          and any((w, s) not in done for s in pass_scales))  # not again at a scale it ran at
            if names:
                passes.append(Pass(pass_scales, names))
                done |= {(w, s) for w in names for s in pass_scales}
        if not passes:
            raise HarnessError(f"preset {self.name}: --workloads {','.join(chosen or ())} leaves none of its "
                               f"workloads ({', '.join(self.workloads)})")
        return Preset(self.name, self.description, tuple(passes), self.repeat, self.smoke, self.engines)


def names(directory: Path = PRESETS_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.conf"))


def load(name: str, directory: Path = PRESETS_DIR) -> Preset:
    path = directory / f"{name}.conf"
    if not path.is_file():
        raise HarnessError(f"no preset '{name}' (known: {', '.join(names(directory)) or 'none'}): presets are files "
                           f"in {directory}")
    found: dict[str, tuple[str, str]] = {}
    for key, value, where in read_properties(path):
        if not key.startswith(_PREFIX):
            raise HarnessError(f"{where}: '{key}' is not a preset key (they start with {_PREFIX})")
        found[key.removeprefix(_PREFIX)] = (value, where)
    description, smoke, repeat, passes, engines = "", False, None, {}, ()
    for key, (value, where) in found.items():
        if key == "description":
            description = value
        elif key == "smoke":
            if value not in ("true", "false"):
                raise HarnessError(f"{where}: smoke is true or false, not '{value}'")
            smoke = value == "true"
        elif key == "repeat":
            if not value.isdigit() or int(value) < 1:
                raise HarnessError(f"{where}: repeat is a whole number of timed runs, 1 or more, not '{value}'")
            repeat = int(value)
        elif key == "engines":
            from .config import engines as known

            engines = tuple(e.strip() for e in value.split(",") if e.strip())
            unknown = [e for e in engines if e not in known()]
            if unknown:
                raise HarnessError(f"{where}: unknown engine(s) {', '.join(unknown)} (known: {', '.join(known())})")
        elif m := _PASS.fullmatch(key):
            passes[int(m.group(1))] = _pass(value, where)
        else:
            raise HarnessError(f"{where}: unknown preset key '{_PREFIX}{key}' (known: description, smoke, repeat, "
                               "engines, pass.N)")
    if not passes:
        raise HarnessError(f"{path}: a preset needs at least one '{_PREFIX}pass.1  SCALES  WORKLOADS' line")
    return Preset(name, description, tuple(passes[n] for n in sorted(passes)), repeat, smoke, engines)


def _pass(value: str, where: str) -> Pass:
    fields = value.split()
    if len(fields) != 2:
        raise HarnessError(f"{where}: a pass is 'SCALES WORKLOADS', e.g. '1e6  groupby_sum_mean,sort_global'")
    split = lambda text: tuple(s.strip() for s in text.split(",") if s.strip())
    scales, names_ = split(fields[0]), split(fields[1])
    try:
        for scale in scales:
            scale_rows(scale)
        workloads.selected(names_)
    except (ConfigError, HarnessError) as err:
        raise HarnessError(f"{where}: {str(err).splitlines()[0]}") from None
    return Pass(scales, names_)
