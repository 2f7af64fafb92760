#!/usr/bin/env bash
# Install everything gradatlas needs on a fresh Debian machine with Python 3.11.
#   bash ci/setup.sh          # the package, its Python dependencies
#   bash ci/setup.sh --test   # also test tools and a single-node Slurm (tests run through it)
# torch is pinned first: an open range with no torch installed pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "ci/setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# LaTeX for the paper, poppler-utils for pdffonts (the paper's font check).
DEBS="latexmk lmodern texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-science texlive-fonts-recommended poppler-utils"
if ! dpkg -s $DEBS >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEBS >/dev/null
fi

python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
if [ "$want_test" = 1 ]; then
  python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
else
  python3 -m pip install --quiet --disable-pip-version-check -e .
fi

if [ "$want_test" = 1 ] && [ -x ci/slurm/setup.sh ]; then
  bash ci/slurm/setup.sh
fi
