#!/usr/bin/env bash
# Install everything the project needs, idempotently: Debian packages, then the .venv.
# Works as root on a fresh Debian machine; re-running only installs what is missing.
# SETUP_PROFILE=serve installs only what serving needs (the Docker image uses it).
set -euo pipefail
cd "$(dirname "$0")/.."

SERVE_PACKAGES=(ffmpeg openjdk-17-jre-headless curl)      # decoding, TorchServe's JVM, the demo's curl
DATASET_PACKAGES=(
  espeak-ng festival festvox-kallpc16k flite    # TTS engines: the dataset's fake speech
  klettres-data ktuberling-data                 # real speech: letters, syllables, words
  fillets-ng-data fillets-ng-data-nl            # real speech: Dutch dialogue and its script
  asterisk-core-sounds-{en,es,fr,it,ru}-g722    # real speech, training only: four prompt voices
)
APT_PACKAGES=("${SERVE_PACKAGES[@]}")
[ "${SETUP_PROFILE:-full}" = "serve" ] || APT_PACKAGES+=("${DATASET_PACKAGES[@]}")
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # Only the pinned dependencies: the project itself is not installed, so nothing but the
  # repo root (or an unpacked .mar) can provide model/, and a broken archive shows up.
  groups="dependencies dev"; [ "${SETUP_PROFILE:-full}" = "serve" ] && groups="dependencies"
  "$VENV/bin/python" - $groups > "$VENV/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for group in sys.argv[1:]:
    print("\n".join(project[group] if group == "dependencies" else project["optional-dependencies"][group]))
PY
  "$VENV/bin/pip" install -q -r "$VENV/requirements.txt"
  touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'))"
