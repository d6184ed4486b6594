"""``make demo``: the pipeline end to end on the default data, small enough for minutes on 2 cores."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

#: A 6-bit network pruned to 50 % by lottery-ticket IMP on a subset: every QAP mechanism runs,
#: in a few minutes.
DEMO_TRAINING = dict(bits=6, pruning="imp-lt", sparsity=0.5, max_train=40000, epochs=15,
                     patience=4, test_vectors=10000)


def run(out: Path, force: bool = False, quiet: bool = False) -> int:
    from psqs.deploy.cli import summarize_model
    from psqs.qap import stage
    from psqs.qap.config import TrainConfig
    from psqs.qap.progress import epoch_bar_factory

    out.mkdir(parents=True, exist_ok=True)
    model_dir = stage.run(TrainConfig(**DEMO_TRAINING), out / "model", force=force,
                          progress_factory=epoch_bar_factory(not quiet))
    print("\n== stage 1: QAP training ==")
    print(summarize_model(model_dir.metrics, model_dir.path))
    return 0
