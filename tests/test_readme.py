"""The README stands alone and stays true: its generated claim index, its commands, its links."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gradatlas.analysis import claim_index
from gradatlas.analysis.claims import CLAIMS

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def test_claim_index_is_up_to_date():
    assert claim_index.main([str(README), "--check"]) == 0, "run: python -m gradatlas.analysis.claim_index"


def test_stale_index_is_found_and_rewritten(tmp_path):
    text = README.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 5 | "))
    stale = tmp_path / "README.md"
    stale.write_text(text.replace(row + "\n", ""))
    assert claim_index.main([str(stale), "--check"]) == 1
    assert claim_index.main([str(stale)]) == 0
    assert stale.read_text() == text


def test_index_has_every_claim_and_the_studies_that_list_it():
    block = README.read_text().split(claim_index.BEGIN)[1].split(claim_index.END)[0]
    rows = {int(line.split("|")[1]): line for line in block.splitlines() if re.match(r"\| \d+ \|", line)}
    assert sorted(rows) == sorted(CLAIMS)
    for path in sorted((REPO / "conf/studies").glob("*.yaml")):
        for claim in yaml.safe_load(path.read_text()).get("claims", []):
            assert f"`{path.stem}`" in rows[claim], (path.stem, claim)
    for claim in CLAIMS.values():
        assert claim.title in rows[claim.id]


def test_ci_runs_exactly_the_readme_test_command():
    text = README.read_text()
    commands = re.findall(r"^(bash ci/setup\.sh.*)$", text.split("## The two commands")[1], re.M)
    assert len(commands) >= 2
    ci_lines = [line for line in (REPO / ".ci/run").read_text().splitlines() if line.startswith("bash ci/setup.sh")]
    assert ci_lines == [commands[1]]
    assert commands[0] == "bash ci/setup.sh && .venv/bin/snakemake --cores 2"


def test_readme_needs_nothing_outside_the_repository():
    text = README.read_text()
    assert not re.search(r"(^|[\s(`])\.\./", text)  # no path that leaves the repository
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (REPO / link).exists(), link
    for name in ("docs/design.md", "LICENSE", "CITATION.cff", "environment.yml", "ci/setup.sh",
                 "profiles/slurm/config.yaml", "conf/workflow.yaml"):
        assert name in text and (REPO / name).exists(), name
    for module in (REPO / "src/gradatlas").rglob("*.py"):
        assert "../shared" not in module.read_text(), module
