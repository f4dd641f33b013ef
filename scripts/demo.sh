#!/usr/bin/env bash
# The main job from a fresh machine: set up, archive the shipped model (training one first only
# if none is present), serve it, and classify a real and a fake recording through the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
GATEWAY=${GATEWAY:-http://127.0.0.1:8000}
MODEL_DIR=${MODEL_DIR:-artifacts/default}
DEMO_DIR=runs/demo

make setup
if [ ! -f "$MODEL_DIR/weights.pt" ]; then
  echo "demo: no model in $MODEL_DIR; building the dataset and training one (about 30 min on 2 cores)"
  make data
  make train RUN="$MODEL_DIR"
fi
make archive MODEL_DIR="$MODEL_DIR"
make stop >/dev/null 2>&1 || true
make serve
.venv/bin/python -m scripts.demo_samples --out "$DEMO_DIR"

for sample in "$DEMO_DIR"/real.* "$DEMO_DIR"/fake.wav; do
  echo
  echo "\$ curl -X POST \"$GATEWAY/predict-file/\" -F \"file=@$sample\""
  curl -sS -X POST "$GATEWAY/predict-file/" -F "file=@$sample" \
    | .venv/bin/python -c 'import json, sys; a = json.load(sys.stdin); a.pop("segments", None); print(json.dumps(a, indent=2))'
done
cat <<EOM

The service keeps running: $GATEWAY/ui (upload page), $GATEWAY/docs (API). Stop it with: make stop
EOM
