"""How often a 3-value candidate list is expected to extend: ``python bench/extension_share.py``.

Re-scores the archived full-scale sweeps (``results/full/archive/tuning/*.json``, one sweep seed
per candidate, the old 4-value lists) on the studies' current lists, where the archive holds
every value of the list: p, the share of cells whose best candidate is strictly at an end (ties at an end
do not extend, ``gradatlas.workflow.tuning``), and q, for depth_activation_init's cells at the
lower end, the share whose one-step extension (0.00333, archived as 0.003) wins again. The
planner's ``costs.EXPECTED_EXTENSION_STEPS`` is p (1 + q).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "results/full/archive/tuning"
# The archived value nearest to each list's lower extension, where the archive holds one.
LOWER_EXTENSION = {"depth_activation_init": 0.003}


def scores(cell: dict) -> dict[tuple, float]:
    return {tuple(t["trial"].items()): -math.inf if t["failed"] or t["val_metric"] is None else t["val_metric"]
            for t in cell["trials"]}


def main() -> None:
    edges = cells = lower = again = 0
    for path in sorted(ARCHIVE.glob("*.json")):
        lrs = yaml.safe_load((ROOT / "conf/studies" / f"{path.stem}.yaml").read_text())["tune"]["lr"]
        archived = json.loads(path.read_text())["cells"]
        held = {t["trial"]["lr"] for cell in archived.values() for t in cell["trials"]}
        if not set(lrs) <= held:
            print(f"{path.stem}: {sorted(set(lrs) - held)} of {lrs} not in the archive: not counted")
            continue
        study_edges = 0
        for cell in archived.values():
            kept = {k: v for k, v in scores(cell).items() if dict(k)["lr"] in lrs}
            order = sorted(kept, key=lambda k: (-kept[k], lrs.index(dict(k)["lr"])))
            best = dict(order[0])["lr"]
            others = max((v for k, v in kept.items() if dict(k)["lr"] != best), default=-math.inf)
            cells += 1
            if best in (lrs[0], lrs[-1]) and kept[order[0]] > others:
                study_edges += 1
                if best == lrs[0] and path.stem in LOWER_EXTENSION:
                    lower += 1
                    beyond = {k: v for k, v in scores(cell).items() if dict(k)["lr"] == LOWER_EXTENSION[path.stem]}
                    again += max(beyond.values()) > kept[order[0]]
        edges += study_edges
        print(f"{path.stem}: {study_edges} of {len(json.loads(path.read_text())['cells'])} cells at an end of {lrs}")
    print(f"p = {edges}/{cells} = {edges / cells:.3f}; q = {again}/{lower} = {again / lower:.3f}; "
          f"p (1 + q) = {edges / cells * (1 + again / lower):.3f}")


if __name__ == "__main__":
    main()
