"""Command line: ``python -m gradatlas.train key=value ...`` trains one configuration.

The only ``@hydra.main`` of the project. Hydra composes ``conf/train.yaml``; the result is
validated against the structured config before anything is written, so bad input exits
with status 2 and a message and leaves no run directory; so does an ``out=`` that cannot take
the record (``records.check_target``). Errors Hydra finds (an unknown key or group option,
a malformed override) exit 2 as well.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gradatlas.config import ConfigError, load_run_config

# conf/ sits at the repository root (DESIGN.md); GRADATLAS_CONF points elsewhere if needed.
CONF_DIR = Path(os.environ.get("GRADATLAS_CONF", Path(__file__).resolve().parents[2] / "conf"))
# Set when Hydra has composed the config and called ``main`` (see ``cli``).
_task_started = False


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    """Validate the composed config, train, and print a one-line summary."""
    from gradatlas.records import TargetError
    from gradatlas.runner import run  # torch import only after the config is accepted

    global _task_started
    _task_started = True
    try:
        run_cfg = load_run_config(cfg)
        info = run(run_cfg)
    except (ConfigError, TargetError) as err:
        print(f"gradatlas.train: error: {err}", file=sys.stderr)
        sys.exit(2)
    summary = f"{info['status']}: {info['metric']}={info['test_metric']}"
    if info["diverged_step"] is not None:
        summary += f" (diverged at step {info['diverged_step']})"
    print(f"{summary}; {info['wall_time_s']:.1f}s on {info['device']} -> {run_cfg.out}")


def cli() -> None:
    """``main`` with one exit status, 2, for every configuration error: Hydra exits 1 when it
    rejects the command line or cannot compose the config, before ``main`` runs."""
    try:
        main()
    except SystemExit as done:
        if done.code == 1 and not _task_started:
            sys.exit(2)
        raise


if __name__ == "__main__":
    cli()
