# Two commands matter: `make run` (the whole pipeline) and `make test` (ruff + pytest). Both create .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
THREADS = $(shell $(BIN)/python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['runtime']['threads'])")
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv dataset run rerun smoke test test-slurm lint use dry-run report plots clean-results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## use PARAMS=params/<preset>.yaml: params.yaml <- the preset merged onto it (refused over uncommitted edits)
use: venv
ifdef PARAMS
	$(BIN)/nat2 use "$(PARAMS)"
endif

## dataset: the dataset params.yaml names (found; else `apt-get install dataset-fashion-mnist` as root; else
## torchvision's download into data.root; else one line naming both ways). make run and make test call it.
dataset: venv
	$(BIN)/nat2 fetch-data --params params.yaml

## run: the whole pipeline on the current params.yaml (make run PARAMS=params/ci.yaml to switch preset first)
run: use
	$(BIN)/nat2 validate params.yaml
	$(BIN)/nat2 fetch-data --params params.yaml
	$(BIN)/snakemake --cores $(THREADS)
	$(BIN)/dvc commit -f -q

## rerun ITER=k: that iteration's four stages (fit_surrogate, search, update_archive, adapt_supernet) and everything
## downstream, with Snakemake, then `dvc commit -f` so DVC agrees
rerun: venv
	@test -n "$(ITER)" || { echo "usage: make rerun ITER=<iteration of search.iterations>" >&2; exit 2; }
	$(BIN)/nat2 rerun $(ITER) --cores $(THREADS)

## report: after a run, Snakemake's HTML report and DVC's plots page, both checked in headless Chromium
## (screenshots in results/report/screenshots; needs `apt-get install chromium`)
report: plots
	$(BIN)/snakemake --cores 1 --report results/report/report.html
	$(BIN)/nat2 check-html results/report/report.html results/report/dvc_plots/index.html

## plots: `dvc plots show` into results/report/dvc_plots/index.html, drawn offline (REVS="a b": dvc plots diff)
plots: venv
	$(BIN)/nat2 plots-html $(REVS)

## smoke: the whole chain on params/ci.yaml in a temporary copy of the repository (last line: smoke: ...)
smoke: venv
	$(BIN)/nat2 smoke --cores $(THREADS)

dry-run: venv
	$(BIN)/snakemake --cores $(THREADS) --dry-run

lint: venv
	$(BIN)/ruff check nat2 tests benchmarks
	$(BIN)/nat2 dvc-yaml --check

## test: lint + the whole test suite but the SLURM test (the command CI runs)
test: lint
	$(BIN)/nat2 fetch-data --params tests/data/params_base.yaml
	$(BIN)/python -m pytest -m "not slurm"

## test-slurm: the tiny chain on a real one-node SLURM cluster (installs slurm-wlm + munge; root), compared with
## a local run byte for byte
test-slurm: venv
	$(BIN)/python -m pytest -m slurm tests/test_pipeline.py

clean-results:
	rm -rf results/* .snakemake
