#!/usr/bin/env bash
# Install gradatlas into the project's virtual environment, .venv, on a fresh Debian 12 or
# Ubuntu 24.04 (or any Linux with Python >= 3.11):
#   bash ci/setup.sh          # the package and its Python dependencies, LaTeX for the paper
#   bash ci/setup.sh --test   # also test tools and a single-node Slurm (tests run through it)
# Then run everything with .venv/bin/... (or `source .venv/bin/activate`).
#
# A virtual environment because the distributions' Python is "externally managed" (PEP 668):
# `pip install` into it is refused, as root too. torch is installed first, pinned, and on a
# machine without an NVIDIA GPU from PyTorch's CPU wheel index: PyPI's Linux torch wheel is
# the multi-GB CUDA build.
#
# Environment:
#   PYTHON                 interpreter that creates .venv (default: python3)
#   GRADATLAS_TORCH_INDEX  extra index for torch (default: https://download.pytorch.org/whl/cpu
#                          on a machine without an NVIDIA GPU, none with one; "none" = never)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "ci/setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
VENV=.venv
TORCH="torch==2.13.0"
CPU_INDEX=https://download.pytorch.org/whl/cpu
log() { printf '[setup] %s\n' "$*"; }

command -v "$PYTHON" >/dev/null || { echo "ci/setup.sh: no $PYTHON on PATH (set PYTHON=...)" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "ci/setup.sh: gradatlas needs Python >= 3.11, $PYTHON is $("$PYTHON" -V 2>&1)" >&2; exit 1; }

# LaTeX for the paper, poppler-utils for pdffonts (the paper's font check); Debian and Ubuntu
# ship venv's pip bootstrap (ensurepip) in a package of its own.
DEBS="latexmk lmodern texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-science texlive-fonts-recommended poppler-utils"
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  DEBS="$DEBS python3-venv"
fi
if ! command -v dpkg >/dev/null; then
  log "note: not Debian or Ubuntu: install LaTeX (latexmk, TeX Live) and poppler-utils yourself"
# shellcheck disable=SC2086  # DEBS is a list of words
elif ! dpkg -s $DEBS >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "installing Debian packages (LaTeX, poppler-utils, venv)"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEBS >/dev/null
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  log "creating $VENV with $("$PYTHON" -V 2>&1) ($(command -v "$PYTHON"))"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# The CPU wheel index only where it is used and reachable: a set-up must not hang on an index
# the network cannot reach (pip would retry it for minutes).
has_nvidia_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }
reachable() {
  timeout 20 "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$1" \
    >/dev/null 2>&1
}
torch_index=${GRADATLAS_TORCH_INDEX:-}
if [ -z "$torch_index" ] && ! has_nvidia_gpu; then
  torch_index=$CPU_INDEX
fi
torch_args=()
if [ -n "$torch_index" ] && [ "$torch_index" != none ]; then
  if reachable "$torch_index/torch/"; then
    # torch==2.13.0 also matches 2.13.0+cpu, which pip ranks above PyPI's 2.13.0 (CUDA).
    torch_args=(--extra-index-url "$torch_index")
  else
    log "note: $torch_index is unreachable; torch comes from the configured indexes"
    log "      (on a machine without a GPU that may be the large CUDA build)"
  fi
fi
log "installing $TORCH${torch_args[*]:+ with ${torch_args[*]}}"
"${PIP[@]}" install --quiet "${torch_args[@]}" "$TORCH"

log "installing gradatlas (editable) and its dependencies"
if [ "$want_test" = 1 ]; then
  "${PIP[@]}" install --quiet -e ".[test]"
else
  "${PIP[@]}" install --quiet -e .
fi
"$VENV/bin/python" -c 'import gradatlas, torch; print("[setup] torch", torch.__version__, "CUDA", torch.version.cuda or "none", "- gradatlas ready in .venv")'

if [ "$want_test" = 1 ] && [ -x ci/slurm/setup.sh ]; then
  bash ci/slurm/setup.sh
fi
