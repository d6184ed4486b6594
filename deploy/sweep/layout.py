"""Where a sweep keeps things: one rule for every path under a sweep directory.

Everything a status, a resume or a report needs is read from these paths, so any process (the
sweep's own, a batch job running one unit, ``psqs sweep status`` on another machine) agrees on
what is done, running, failed or still to do.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from psqs.common.artifact import MANIFEST
from psqs.common.interrupts import is_running

PLAN_FILE = "sweep.json"
SPEC_COPY = "spec.yaml"
PLAN_KIND = "psqs.sweep"
PLAN_VERSION = 1

#: Unit kinds, in the order the pipeline runs them.
KINDS = ("chain", "convert", "rtl", "build", "bench", "trial")


@dataclass(frozen=True)
class Unit:
    """One task of the sweep, as the plan stores it.

    ``outputs`` are artifact directories relative to the sweep directory (a chain has one per
    sparsity step, every other unit one); the unit is done when each holds a ``manifest.json``.
    ``deps`` are the keys of the units whose outputs it reads; ``labels`` are what the report
    groups by (method, bits, seed, randomized_labels, step, sparsity, stage); ``licences`` the
    vendor-tool licences it holds while it runs (name -> count).
    """

    key: str
    kind: str
    params: dict
    outputs: tuple[str, ...]
    deps: tuple[str, ...] = ()
    labels: dict = field(default_factory=dict)
    licences: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["outputs"], d["deps"] = list(self.outputs), list(self.deps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Unit":
        return cls(key=d["key"], kind=d["kind"], params=d["params"], outputs=tuple(d["outputs"]),
                   deps=tuple(d.get("deps", ())), labels=d.get("labels", {}), licences=d.get("licences", {}))

    def describe(self) -> str:
        """A short human label: ``chain qap-imp-lt 6b seed 0`` or ``rtl qap-imp-lt 6b s0 @80%``."""
        lab = self.labels
        parts = [self.kind]
        if "method" in lab:
            parts.append(str(lab["method"]))
        if "bits" in lab:
            parts.append(f"{lab['bits']}b")
        if "seed" in lab:
            parts.append(f"seed {lab['seed']}")
        if lab.get("randomized_labels"):
            parts.append(f"rand {lab['randomized_labels']:g}")
        if self.kind != "chain" and lab.get("sparsity") is not None:
            parts.append(f"@{100 * lab['sparsity']:.1f}%")
        if self.kind == "trial" and "trial" in lab:
            parts.append(f"#{lab['trial']}")
        return " ".join(parts)


class SweepDir:
    """The paths of one sweep directory and the state of each unit in it."""

    def __init__(self, path):
        self.path = Path(path)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def plan_file(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def state_dir(self) -> Path:
        return self.path / "state"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def search_dir(self) -> Path:
        return self.path / "search"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @staticmethod
    def artifact(kind: str, key: str) -> str:
        """The relative path of an artifact: ``artifacts/<kind>/<key>``."""
        return f"artifacts/{kind}/{key}"

    def log_file(self, key: str) -> Path:
        return self.logs_dir / f"{key}.log"

    def running_file(self, key: str) -> Path:
        return self.state_dir / f"{key}.running"

    def failed_file(self, key: str) -> Path:
        return self.state_dir / f"{key}.failed.json"

    # -- plan ----------------------------------------------------------------------------------
    def read_plan(self) -> dict:
        """``sweep.json``: ``{"kind", "format_version", "spec", "units": [unit dicts], ...}``."""
        from .spec import SpecError

        try:
            plan = json.loads(self.plan_file.read_text())
        except FileNotFoundError:
            raise SpecError(f"{self.path}: not a sweep directory (no {PLAN_FILE})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{self.plan_file}: unreadable ({exc})") from None
        if plan.get("kind") != PLAN_KIND:
            raise SpecError(f"{self.plan_file}: not a psqs sweep plan (kind {plan.get('kind')!r})")
        return plan

    @property
    def trials_file(self) -> Path:
        return self.search_dir / "trials.json"

    def units(self) -> list[Unit]:
        """The plan's units, then the search trials asked so far (the search adds them as it goes)."""
        units = [Unit.from_dict(u) for u in self.read_plan()["units"]]
        try:
            trials = json.loads(self.trials_file.read_text())["units"]
        except FileNotFoundError:
            trials = []
        return units + [Unit.from_dict(u) for u in trials]

    # -- state ---------------------------------------------------------------------------------
    def done(self, unit: Unit) -> bool:
        return all((self.path / out / MANIFEST).is_file() for out in unit.outputs)

    def failure(self, unit: Unit) -> dict | None:
        try:
            return json.loads(self.failed_file(unit.key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def running(self, unit: Unit) -> dict | None:
        """The running marker of ``unit`` if its process is alive (or on another host), else None."""
        try:
            marker = json.loads(self.running_file(unit.key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        pid = marker.get("pid")
        if marker.get("host") == socket.gethostname() and not (isinstance(pid, int) and is_running(pid)):
            return None                      # killed with its sweep (or a zombie of it): to do again
        return marker

    def state(self, unit: Unit) -> str:
        """``done``, ``running``, ``failed`` or ``todo``, from the directory alone."""
        if self.done(unit):
            return "done"
        if self.running(unit):
            return "running"
        if self.failure(unit):
            return "failed"
        return "todo"

    def mark_running(self, unit: Unit) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.running_file(unit.key),
                    {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                     "unit": unit.describe()})

    def mark_finished(self, unit: Unit, error: dict | None) -> None:
        """Clear the running marker; record ``error`` (or clear an old one when it succeeded)."""
        if error is None:
            self.failed_file(unit.key).unlink(missing_ok=True)
        else:
            _write_json(self.failed_file(unit.key), error)
        self.running_file(unit.key).unlink(missing_ok=True)


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
