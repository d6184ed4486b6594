#!/usr/bin/env bash
# Image-like virtual environments: the Python, numpy and pynq that each PYNQ SD image ships, so the
# board-side install (`pip install .`) and code path are tested against what a board really has.
# Built once into $1 (default .venv-boards) and reused: an environment is rebuilt only when its
# .ready stamp is missing (the stamp records the pins, so changing a pin here rebuilds it).
# pyenv's Pythons are required; a missing one is reported and skipped (the tests say so too).
set -euo pipefail
DEST=${1:-.venv-boards}
PYENV_VERSIONS=${PYENV_ROOT:-$HOME/.pyenv}/versions
mkdir -p "$DEST"

# name | pyenv Python | pins (the image's versions; see the README's compatibility matrix)
ENVS=(
  "py38-pynq27|3.8.18|numpy==1.20.3 pynq==2.7.0"
  # pynq 3.0.1 asks for pynqmetadata>=0.0.1 and 3.1.2 for any: pin 0.1.x as the v3.0.1/v3.1 images
  # ship it (pip would pick 0.2.0). pynq 3.1.0/3.1.1 are not installable from the index (3.1.1
  # names pynqmetadata by git URL), so 3.1.2 stands in for the v3.1 image.
  # pynqmetadata 0.1.2 imports IPython and pydantic 1 without declaring them (the image's Jupyter
  # and its 2022 pydantic provide them); 0.1.9 declares both.
  # pycparser 2.21 as the v3 images ship it: pynq.lib (loaded by every Overlay) imports
  # pycparser.plyparser, which pycparser 3 removed.
  "py310-pynq301|3.10.13|numpy==1.21.5 pynq==3.0.1 pynqmetadata==0.1.2 pydantic==1.9.1 ipython==8.6.0 pycparser==2.21"
  "py310-pynq31|3.10.13|numpy==1.21.5 pynq==3.1.2 pynqmetadata==0.1.9 pycparser==2.21"
)

for spec in "${ENVS[@]}"; do
  IFS='|' read -r name pyver pins <<<"$spec"
  env="$DEST/$name"
  if [ -f "$env/.ready" ] && [ "$(cat "$env/.ready")" = "$pins" ]; then
    continue
  fi
  python="$PYENV_VERSIONS/$pyver/bin/python"
  if [ ! -x "$python" ]; then
    echo "board-envs: skipping $name: $python not found (install Python $pyver with pyenv)" >&2
    continue
  fi
  start=$(date +%s)
  rm -rf "$env"
  "$python" -m venv "$env"
  # pip/setuptools as new as the image's Python allows (the images ship their own; this only
  # builds psqs' wheel); then the image's numpy first so that pynq cannot pull a newer one.
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
  # shellcheck disable=SC2086
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check $pins
  echo "$pins" >"$env/.ready"
  echo "board-envs: $name built in $(( $(date +%s) - start )) s, $(du -sm "$env" | cut -f1) MiB" >&2
done
