# Operator commands. Each target calls a script or module, the same ones CI and the Dockerfile use.
VENV       ?= .venv
PY         := $(VENV)/bin/python
DATA_DIR   ?= data/embedded
MANIFEST   ?= $(DATA_DIR)/manifest.csv
RUN        ?= artifacts/latest
MODEL_DIR  ?= artifacts/default
# The shipped model's recipe: a head on two frozen pretrained encoders, trained on their cached output.
RECIPE     ?= --architecture whisper_pitch_probe --members 1 --epochs 30 --patience 30
STORE      ?= model-store
SETUP_STAMP := $(VENV)/.installed

RUN_DIR    ?= runs/serve
KSERVE_BUNDLE ?= runs/kserve-bundle

.PHONY: setup data train train-cnn train-baseline evaluate heldout archive kserve-bundle serve stop demo test bench load gpu-check lint format clean

setup:                      ## install Debian packages and the .venv (idempotent)
	bash scripts/setup.sh

$(SETUP_STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

data: $(SETUP_STAMP)        ## build the embedded real/fake speech dataset
	$(PY) -m training.build_dataset --out $(DATA_DIR)

train: $(SETUP_STAMP)       ## train the shipped recipe (Whisper + CREPE probe, docs/training.md) on the manifest
	$(PY) -m training.train --manifest $(MANIFEST) --out $(RUN) $(RECIPE)

train-cnn: $(SETUP_STAMP)   ## train v4.1's recipe, one log-mel CNN, the same way
	$(PY) -m training.train --manifest $(MANIFEST) --out artifacts/cnn --members 1 --epochs 16 --patience 16

train-baseline: $(SETUP_STAMP)  ## train the seed's ImprovedDetector the same way
	$(PY) -m training.train --manifest $(MANIFEST) --architecture improved --members 1 --out artifacts/baseline

evaluate: $(SETUP_STAMP)    ## evaluate a run on the test split (+ MP3 re-encoded copy)
	$(PY) -m training.evaluate --checkpoint $(RUN) --manifest $(MANIFEST)

heldout: $(SETUP_STAMP)     ## EER on synthesis families and real sources each fold never saw (recipe vs baseline)
	$(PY) -m training.heldout --manifest $(MANIFEST)

archive: $(SETUP_STAMP)     ## package $(MODEL_DIR) as $(STORE)/detector.mar (load-tested before it is stored)
	$(PY) -m scripts.archive --checkpoint $(MODEL_DIR) --store $(STORE)

kserve-bundle: $(SETUP_STAMP)  ## $(MODEL_DIR) as a KServe TorchServe bundle in $(KSERVE_BUNDLE) (config/ + model-store/)
	$(PY) -m scripts.kserve_bundle --checkpoint $(MODEL_DIR) --out $(KSERVE_BUNDLE)

serve: $(SETUP_STAMP)       ## start TorchServe (127.0.0.1:8080-8082) and the gateway (:8000); archives $(MODEL_DIR) first if $(STORE) has no detector.mar
	$(PY) -m scripts.serve start --run-dir $(RUN_DIR) --model-store $(STORE) --model-dir $(MODEL_DIR)

stop:                       ## stop exactly the processes `make serve` started
	$(PY) -m scripts.serve stop --run-dir $(RUN_DIR)

demo:                       ## the main job: setup, archive, serve, classify a real and a fake recording
	bash scripts/demo.sh

bench: $(SETUP_STAMP)       ## latency/throughput/memory of offline scoring and of the served path
	$(PY) -m scripts.bench

load: $(SETUP_STAMP)        ## load test: 5,000 mixed requests at concurrency 32 against a fresh stack
	$(PY) -m scripts.load_test

gpu-check: $(SETUP_STAMP)   ## on a CUDA machine: train, reload and serve on the GPU, compare with the CPU
	$(PY) -m scripts.gpu_check --report runs/gpu_check.json

lint: $(SETUP_STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(SETUP_STAMP)
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

test: $(SETUP_STAMP)        ## the whole suite (CI runs exactly this)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

clean:
	rm -rf runs .pytest_cache .ruff_cache
