"""From a spec to units of work, each addressed by a content hash of what determines its output.

A key hashes the unit's own options, its parent's key (a checkpoint's key includes the data's
sha256), and a digest of the source of the psqs stages it runs. So a rerun finds every unit
whose inputs did not change already done, and a changed spec (a new bit width, a longer
schedule, another board) recomputes only the units it changes: a checkpoint depends on the
steps up to its own, so appending steps keeps the existing checkpoints.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from psqs.qap.config import ConfigError, TrainConfig

from .layout import PLAN_KIND, PLAN_VERSION, SweepDir, Unit
from .spec import METHODS, Spec, SpecError

#: The psqs packages whose source each unit kind runs (their digest is part of its key).
CODE = {
    "chain": ("qap", "common"),
    "trial": ("qap", "common"),
    "convert": ("hls", "qap", "common", "board_configs"),
    "rtl": ("hls", "qap", "common", "board_configs"),
    "build": ("overlays", "hls", "common", "board_configs"),
    "bench": ("host", "deploy/emulator", "common", "board_configs"),
}
KEY_CHARS = 20
CODE_SUFFIXES = (".py", ".cpp", ".h", ".v", ".vh", ".tcl", ".yaml", ".xml")


def digest(value) -> str:
    """The content key of a JSON-able value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_CHARS]


@lru_cache(maxsize=None)
def code_digest(kind: str) -> str:
    """sha256 over the source files of the psqs packages a unit kind runs (module docstring)."""
    import psqs.common

    root = Path(psqs.common.__file__).resolve().parent.parent
    h = hashlib.sha256()
    for package in CODE[kind]:
        base = root / package
        for path in sorted(p for p in base.rglob("*") if p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:KEY_CHARS]


def data_identity(spec: Spec) -> tuple[str | None, str]:
    """The data file training reads (absolute) and its sha256, or OpenML's id when there is none."""
    chosen = spec.data or os.environ.get("PSQS_DATA") or None
    if chosen is None:
        return None, "openml:42468"
    path = Path(chosen).resolve()
    try:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise SpecError(f"data {chosen}: cannot read the data file ({exc.strerror})") from None
    return str(path), h.hexdigest()


def train_config(spec: Spec, method: str, bits: int, seed: int, randomized: float, data: str | None,
                 steps: tuple[float, ...]) -> TrainConfig:
    """The chain's training configuration; its ``sparsity`` is the chain's last step."""
    pruning, forced_bits = METHODS[method]
    training = {"epochs": 100, "patience": 10, **spec.training}
    try:
        return TrainConfig(bits=forced_bits or bits, widths=tuple(spec.widths), pruning=pruning,
                           sparsity=steps[-1] if pruning != "none" else 0.0, seed=seed,
                           randomized_labels=randomized, data=data, **training)
    except ConfigError as exc:
        raise SpecError(f"{method} at {bits} bits: {exc}") from None


def _key_config(config: TrainConfig) -> dict:
    """What of a training config determines the model, with the data by content, not by path."""
    d = config.to_dict()
    d.pop("data")
    return d


def _checkpoint_selection(option, steps: tuple[float, ...]) -> list[int]:
    """Indices of the chain steps a stage runs at: ``all``, ``last`` or listed sparsities."""
    if option in (None, "last"):
        return [len(steps) - 1]
    if option == "all":
        return list(range(len(steps)))
    chosen = [k for k, s in enumerate(steps) if any(abs(s - want) < 1e-6 for want in option)]
    return chosen


def build(spec: Spec, data: str | None, data_sha: str) -> list[Unit]:
    """Every unit of ``spec``, in an order where each unit comes after the units it reads."""
    units: dict[str, Unit] = {}
    stage_units: list[Unit] = []
    for method in spec.methods:
        pruning, forced_bits = METHODS[method]
        for bits in ([forced_bits] if forced_bits else spec.bits):
            for seed in spec.seeds:
                for randomized in spec.randomized_labels:
                    steps = tuple(spec.sparsity_steps) if pruning != "none" else (0.0,)
                    config = train_config(spec, method, bits, seed, randomized, data, steps)
                    # the chain's sparsity is its last step: each checkpoint's key has its own steps instead
                    chain_config = {k: v for k, v in _key_config(config).items() if k != "sparsity"}
                    base = {"config": chain_config, "data": data_sha, "code": code_digest("chain")}
                    ckpt_keys = [digest({**base, "kind": "model", "steps": list(steps[:k + 1])})
                                 for k in range(len(steps))]
                    key = digest(ckpt_keys)
                    labels = {"method": method, "bits": config.bits, "seed": seed, "randomized_labels": randomized}
                    if key in units:
                        continue              # e.g. qap-imp-ft at 32 bits is prune-float
                    units[key] = Unit(key, "chain", {"config": config.to_dict(), "steps": list(steps)},
                                      tuple(SweepDir.artifact("model", k) for k in ckpt_keys), labels=labels)
                    if config.quantized:      # hls4ml, RTL and the board compute fixed point only
                        stage_units += _stage_units(spec, units[key], ckpt_keys, steps)
    return [*units.values(), *_unique(stage_units)]


def _unique(units: list[Unit]) -> list[Unit]:
    seen, out = set(), []
    for u in units:
        if u.key not in seen:
            seen.add(u.key)
            out.append(u)
    return out


def _stage_units(spec: Spec, chain: Unit, ckpt_keys: list[str], steps: tuple[float, ...]) -> list[Unit]:
    """convert / rtl / build / bench units of one chain's selected checkpoints."""
    from psqs.board_configs import DEFAULT_BOARD

    stages = spec.stages
    wanted = {name: set(_checkpoint_selection(stages[name].get("checkpoints"), steps))
              for name in stages}
    # rtl, build and bench read the HLS directory: a checkpoint any of them runs at is converted
    convert_at = set().union(*wanted.values()) if wanted else set()
    bench_at = wanted.get("bench", set())
    build_at = wanted.get("build", set()) | bench_at
    board = stages.get("convert", {}).get("board", DEFAULT_BOARD)
    out = []
    for k in sorted(convert_at):
        labels = {**chain.labels, "step": k, "sparsity": steps[k]}
        source = chain.outputs[k]
        convert_opts = {"board": board, **{o: v for o, v in stages.get("convert", {}).items()
                                           if o not in ("checkpoints", "board")}}
        convert = _unit("convert", "hls", {"source": source, "options": convert_opts},
                        ckpt_keys[k], chain.key, {**labels, "stage": "convert"})
        out.append(convert)
        hls = convert.outputs[0]
        if k in wanted.get("rtl", ()):
            rtl_opts = {o: v for o, v in stages["rtl"].items() if o != "checkpoints"}
            out.append(_unit("rtl", "rtl", {"source": hls, "options": rtl_opts}, convert.key, convert.key,
                             {**labels, "stage": "rtl"}))
        if k in build_at:
            vivado = bool(stages.get("build", {}).get("vivado", False))
            build = _unit("build", "overlay", {"source": hls, "board": board, "vivado": vivado},
                          convert.key, convert.key, {**labels, "stage": "build"},
                          licences={"vivado": 1} if vivado else {})
            out.append(build)
            if k in bench_at:
                bench_opts = {o: v for o, v in stages["bench"].items() if o != "checkpoints"}
                out.append(_unit("bench", "bench", {"source": build.outputs[0], "options": bench_opts},
                                 build.key, build.key, {**labels, "stage": "bench"}))
    return out


def _unit(kind: str, artifact_kind: str, params: dict, parent_key: str, dep: str, labels: dict,
          licences: dict | None = None) -> Unit:
    key = digest({"kind": kind, "parent": parent_key, "params": {k: v for k, v in params.items() if k != "source"},
                  "code": code_digest(kind)})
    return Unit(key, kind, params, (SweepDir.artifact(artifact_kind, key),), (dep,), labels, licences or {})


def write(sweep: SweepDir, spec: Spec, spec_text: str, units: list[Unit], data: str | None, data_sha: str) -> None:
    """Write ``sweep.json`` and the spec copy atomically; artifacts of units no longer planned stay."""
    from .layout import SPEC_COPY, _write_json

    sweep.path.mkdir(parents=True, exist_ok=True)
    _write_json(sweep.plan_file, {
        "kind": PLAN_KIND, "format_version": PLAN_VERSION, "spec": spec.to_dict(),
        "data": {"path": data, "sha256": data_sha}, "units": [u.to_dict() for u in units]})
    tmp = sweep.path / f".{SPEC_COPY}.tmp"
    tmp.write_text(spec_text)
    os.replace(tmp, sweep.path / SPEC_COPY)
