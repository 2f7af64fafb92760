"""Command line: ``python -m gradatlas.run.train key=value ...`` trains one configuration.

The only ``@hydra.main`` of the project. Hydra composes ``conf/train.yaml``; the result is
validated against the structured config before anything is written, so bad input exits
with status 2 and a message and leaves no run directory; so does an ``out=`` that cannot take
the record (``records.check_target``). Errors Hydra finds (an unknown key or group option,
a malformed override) exit 2 as well. A run that fails to write its record (a full disk)
exits 1 with a one-line message, and no record is left (``records.write_run_record``);
``core.exit_status`` has the convention. A multirun (``-m``) writes each job's record to
``<out>/<key>=<value>/...``, one level per swept key. The design: ``docs/design.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED
from gradatlas.core.layout import CONF_DIR
from gradatlas.run.config import ConfigError, load_run_config, register_schema

# Set when Hydra has composed the config and called ``main`` (see ``cli``).
_task_started = False


def config_groups(conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """The config groups of ``train.yaml``'s defaults list, each with its options.

    Hydra's ``--help`` would list every folder of ``conf/`` as a group, the workflow's
    ``studies`` too; these are the groups a run can choose from.
    """
    defaults = yaml.safe_load((conf_dir / "train.yaml").read_text())["defaults"]
    names = [next(iter(entry)) for entry in defaults if isinstance(entry, dict)]
    return {name: sorted(p.stem for p in (conf_dir / name).glob("*.yaml"))
            for name in names if not name.startswith("override ")}


def _groups_help() -> str:
    return "\n".join(f"{name}: {', '.join(options)}" for name, options in config_groups().items())


OmegaConf.register_new_resolver("gradatlas_groups", _groups_help, replace=True)
register_schema()  # before @hydra.main composes train.yaml onto it


def swept_keys(args: list[str]) -> list[str]:
    """Keys that a multirun command line sweeps (``key=a,b``, ``key=range(3)``...), in order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keys = []
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            override = parser.parse_override(arg)
        except Exception:  # Hydra itself reports a malformed override
            continue
        if override.is_sweep_override() and not override.is_hydra_override() and override.key_or_group != "out":
            keys.append(override.key_or_group)
    return keys


def record_dir(out: str, args: list[str] | None = None) -> str:
    """The run-record directory: ``out``, and in a multirun ``out/<key>=<value>/...`` for each
    key the command line sweeps, so that every job keeps its own record."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return out
    swept = swept_keys(sys.argv[1:] if args is None else args)
    chosen = {entry.split("=", 1)[0].lstrip("+~"): entry.lstrip("+~") for entry in hydra_cfg.overrides.task}
    parts = [chosen[key] for key in swept if key in chosen]
    # Without a sweep on the command line (e.g. a sweeper plugin's), all the job's overrides.
    subdir = "/".join(parts) if parts else hydra_cfg.job.override_dirname
    return str(Path(out) / subdir) if subdir else out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    """Validate the composed config, train, and print a one-line summary."""
    from gradatlas.run.records import TargetError
    from gradatlas.run.runner import run  # torch import only after the config is accepted

    global _task_started
    _task_started = True
    try:
        run_cfg = load_run_config(cfg)
        run_cfg.out = record_dir(run_cfg.out)
    except ConfigError as err:
        print(f"gradatlas.run.train: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        info = run(run_cfg)
    except (ConfigError, TargetError) as err:
        print(f"gradatlas.run.train: error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as err:  # a full disk, say: no record is left (records.write_run_record)
        print(f"gradatlas.run.train: error: run {run_cfg.out} failed: {err}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
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
            sys.exit(EXIT_BAD_INPUT)
        raise


if __name__ == "__main__":
    cli()
