"""A small demo ML project, built without torch or scikit-learn. PLACEHOLDER."""

from __future__ import annotations

import pickle
from pathlib import Path


def build_demo_project(root: Path) -> None:
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "weights.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
