"""One cached training run per JSON file, shared by the reproduce_* scripts (so they can resume)."""
from __future__ import annotations

import json
import os
import time

from minidin.train import TrainConfig, train


def cached_run(path, data, config: dict, label: str):
    """The summary of ``train(data, TrainConfig(**config))``, read from ``path`` if it is there, else run and saved."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    t = time.time()
    summary, _ = train(data, TrainConfig(**config), log=lambda *a: None, progress=None)
    summary["wall_seconds"] = time.time() - t
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f)
    os.replace(path + ".tmp", path)
    print(f"{label}: valid GAUC {summary['valid']['gauc']:.4f} test GAUC {summary['test']['gauc']:.4f} "
          f"(best epoch {summary['best_epoch']}, {summary['wall_seconds']:.0f}s)", flush=True)
    return summary
