# Everything the project needs is installed here; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench bench-deps lint model clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Simulate three seeded runs the shipped model never saw, replay them, print the table.
demo: $(STAMP)
	rm -rf demo_out
	$(VENV)/bin/tactile-estimator simulate --out demo_out/bags --runs 3 --steps 300 --seed 1000 --object rect,disc,ellipse
	$(VENV)/bin/tactile-estimator replay demo_out/bags --out demo_out/replay
	$(VENV)/bin/tactile-estimator simulate --out demo_out/camera_bags --runs 1 --steps 300 --seed 1001 --object disc --no-detections
	$(VENV)/bin/tactile-estimator replay demo_out/camera_bags --out demo_out/camera_replay

test: $(STAMP)
	$(PY) -m pytest -q test

lint: $(STAMP)
	$(VENV)/bin/ruff check tactile_estimator test benchmarks launch setup.py

bench: bench-deps
	$(PY) -m benchmarks.accuracy
	$(PY) -m benchmarks.latency
	$(PY) -m benchmarks.tactile_ceiling
	$(PY) -m benchmarks.solver --scale
	$(PY) -m benchmarks.dds_latency
	$(PY) -m benchmarks.jacobians
	$(PY) -m benchmarks.leo_navigation
	$(PY) -m benchmarks.leo_regression

# Theseus is the benchmarks' side-by-side peer only, never a dependency of the package.
bench-deps: $(STAMP)
	$(PY) -c "import theseus" 2>/dev/null || ( \
	  $(PY) -m pip install --quiet --no-build-isolation --no-deps theseus-ai==0.2.3 && \
	  $(PY) -m pip install --quiet torchlie torchkin scipy semantic-version differentiable-robot-model )

# Remake the shipped model in models/ (see models/model.yaml for what it was made from). Two threads:
# the shipped weights were trained with two, and float sums come out in another order with another count.
model: $(STAMP)
	rm -rf build/train_bags
	$(VENV)/bin/tactile-estimator simulate --out build/train_bags --runs 60 --steps 300 --seed 0 --object rect,disc,ellipse
	$(VENV)/bin/tactile-estimator pretrain build/train_bags --out models --epochs 10 --threads 2

clean:
	rm -rf build demo_out .pytest_cache
