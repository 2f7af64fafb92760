"""Rerun a recorded run into a new directory: ``python -m gradatlas.run.rerun RECORD OUT [key=value ...]``.

Every ``run.json`` stores ``command``: the Hydra overrides of ``python -m gradatlas.run.train``
that reproduce the run. Every key of the resolved config is set explicitly, so a rerun does
not depend on the defaults in ``conf/`` (nor on the study or scale that planned the run).
Left out are the keys that do not change the result (``config.fingerprint`` leaves them out
too): ``out``, ``overwrite``, ``device`` and the data cache. The rerun's record is the original's, bit for
bit, on the same device and package versions.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from gradatlas.core.exit_status import EXIT_BAD_INPUT
from gradatlas.core.names import GROUP_FACTORS
from gradatlas.run.config import RunConfig, to_container

# Keys whose value does not change a run's outcome.
NOT_REPRODUCED = frozenset({"out", "overwrite", "device", "data.cache_dir"})


def hydra_value(value: Any) -> str:
    """``value`` written so that Hydra's override parser reads it back unchanged."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    # A plain word stays plain; a string Hydra would read as a number, bool, null, list or
    # with spaces is quoted.
    try:
        if OverridesParser.create().parse_override(f"k={text}").value() == text:
            return text
    except Exception:  # not parseable unquoted
        pass
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def command(cfg: RunConfig) -> list[str]:
    """The overrides that reproduce ``cfg``: each group's choice, then every key."""
    container = to_container(cfg)
    groups = [f"{group}={container[group]['name']}" for group in dict.fromkeys(GROUP_FACTORS.values())
              if "name" in container.get(group, {})]
    keys = []

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{dotted}.")
            elif dotted not in NOT_REPRODUCED:
                keys.append(f"{dotted}={hydra_value(value)}")

    walk(container, "")
    return groups + keys


def rerun_argv(record: str | Path, out: str | Path, extra: list[str] = ()) -> list[str]:
    """The ``gradatlas.run.train`` command line that reruns ``record`` into ``out``."""
    info_path = Path(record) / "run.json"
    try:
        stored = json.loads(info_path.read_text())["command"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{info_path}: no reproducing command ({err!r}); records before 'command' was "
                         "stored rerun with --config-dir RECORD --config-name config out=NEW") from err
    return [sys.executable, "-m", "gradatlas.run.train", *stored, *extra, f"out={hydra_value(str(out))}"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status of the training (``exit_status``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", help="a run record directory (holds run.json)")
    parser.add_argument("out", help="the new record directory; must not exist")
    parser.add_argument("overrides", nargs="*", help="extra overrides, e.g. device=cpu")
    args = parser.parse_args(argv)
    out = Path(args.out)
    # A rerun never replaces a record (the original least of all).
    if out.exists():
        print(f"gradatlas.run.rerun: error: {out} exists; choose a new directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        argv_ = rerun_argv(args.record, out, args.overrides)
    except ValueError as err:
        print(f"gradatlas.run.rerun: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(shlex.join(argv_), flush=True)
    return subprocess.run(argv_).returncode


if __name__ == "__main__":
    sys.exit(main())
