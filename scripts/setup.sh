#!/usr/bin/env bash
# Set up laionet-bench for development, CI and the demo: Debian packages, a virtualenv in .venv,
# and the package with every extra the test suite exercises. Safe to run again (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  wordnet-base            # WordNet 3.0, for scripts/build_catalog.py
  tesseract-ocr           # the offline OCR engine of 'rebuild ocr'
  tuxpaint-stamps-default # demo images (GPL: built locally, never committed)
  gcompris-qt-data        # demo photos
  openclipart-svg         # demo clipart
  librsvg2-bin            # rsvg-convert renders the clipart
  fonts-noto-color-emoji  # demo emoji
  chromium                # headless browser for tests/test_leaderboard_browser.py (the HTML page's sorting)
  chromium-driver         # chromedriver, which selenium drives
  strace                  # scripts/check_egress.py: the Ray tests' system calls, read for any address off loopback
  iproute2                # ip: the sealed, routed network namespace of scripts/check_egress.py
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins torch/torchvision to the builds used here; the package itself accepts a range.
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
# img2dataset (the optional '--engine img2dataset') pins old pandas/webdataset: it gets a venv of its own.
[ -x .venv-img2dataset/bin/img2dataset ] || {
  "$PYTHON" -m venv .venv-img2dataset && .venv-img2dataset/bin/python -m pip install -q img2dataset
}
