# hazmon: `make run` (demo) and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Compiled bytecode, pytest's rewritten test modules included, is kept under the venv (out of the
# tree): a re-run does not compile the project again. Some shells set PYTHONDONTWRITEBYTECODE, which
# would make every run pay that (about 3 s of the unit suite); empty means unset to Python.
export PYTHONPYCACHEPREFIX := $(abspath $(VENV))/pycache
export PYTHONDONTWRITEBYTECODE :=

.PHONY: run test kernels test-deep unit integration browser lint format bench bench-ingest bench-engine bench-api bench-history bench-computed bench-register bench-report bench-influx soak scenarios deps venv clean

deps:            ## Debian packages: Mosquitto, InfluxDB and Kannel (only when missing)
	bash scripts/install-system-deps.sh

$(STAMP): pyproject.toml
	bash scripts/make-venv.sh "$(PYTHON)" "$(VENV)"
	touch $(STAMP)

venv: $(STAMP)

run: deps venv   ## the demo: Mosquitto, InfluxDB, hazmon and a simulated fleet; Ctrl-C stops all
	$(VENV)/bin/hazmon demo

# integration tests mostly wait on real servers and clocks: files run side by side in workers (the
# whole suite keeps one of two cores busy on average with 3 workers; 4 end it sooner). Files go to the
# workers in collection order, longest first (tests/conftest.py): xdist's default reorder by the number
# of tests in a file would start the one-test two-minute outage files last (581 s against 424 s here)
PYTEST_WORKERS ?= 4

test: deps venv lint kernels  ## the whole suite: unit and integration tests (real servers), files in parallel; deep profile
	TEST_PROFILE=deep $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

# numba's kernels compiled into its cache once (alerts/engine/__pycache__), before the workers and the
# hazmon processes the tests start would each compile them at once on a fresh clone (~7 s of CPU each)
kernels: venv
	$(PY) -c "from alerts.engine.warm_up import warm_up_kernels as w; print(f'numba kernels ready in {w():.1f} s')"

# the unit tests are CPU-bound: one worker per core (two here); the browser plugin is not needed
UNIT_WORKERS ?= 2

# the unit tests' temporary files (SQLite stores, spools) go to RAM when /dev/shm has room: they test
# logic, not the disk, and each commit's fsync on a real disk cost 2-4 s of the suite. Only the
# directories of failed tests are kept.
UNIT_TMPDIR ?= $(shell [ -w /dev/shm ] && [ "$$(df -Pk /dev/shm | awk 'NR==2 {print $$4}')" -gt 262144 ] && echo /dev/shm || echo $${TMPDIR:-/tmp})

unit: venv  ## the unit tests, fast profile: tests marked deep left out, property tests with fewer examples
	TMPDIR=$(UNIT_TMPDIR) $(PY) -m pytest -q -n $(UNIT_WORKERS) -p no:playwright -o tmp_path_retention_policy=failed tests/unit

test-deep: venv  ## the unit tests, deep profile: every test, every property test with its full examples
	TEST_PROFILE=deep $(PY) -m pytest -q tests/unit

integration: deps venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder tests/integration

browser: deps venv  ## the console in Debian's Chromium (Playwright) against a real hazmon; screenshots in artifacts/
	$(PY) -m pytest -q tests/browser

lint: venv  ## ruff, and the import contracts of pyproject.toml (imports point inward)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .

bench: bench-ingest bench-engine bench-api bench-history bench-register bench-report

bench-computed: venv  ## tick of 100 000 sensors of which 20 000 computed, against the same fleet all measured
	$(PY) bench/computed.py

bench-register: venv  ## load and grade a 2 000-site hazard-source register (hazmon registry check) vs loading it without
	$(PY) bench/register.py

bench-influx: deps venv  ## InfluxDB at 250 000 series and 25 000 points/s, with and without the 1-minute rollup query: its RSS and CPU
	$(PY) bench/influx_memory.py $(BENCH_INFLUX_ARGS)

bench-report: venv  ## the daily report of a 200-site district in CSV, XLSX and PDF vs reading its journal rows
	$(PY) bench/report.py

bench-history: venv  ## the history guard's cost per 100 000 readings against decoding them, and its bytes per sensor
	$(PY) bench/history_guard.py

bench-ingest: deps venv  ## simulator -> Mosquitto -> hazmon -> InfluxDB vs a one-write-per-reading bridge; then a 3 M backlog drained and 25 000 readings/s offered
	$(PY) bench/ingest.py
	$(PY) bench/ingest_drain.py

# opt-in, not in CI nor in `make bench`: SOAK_ARGS="--minutes 5" or "--small --minutes 4" for a quick trial
SOAK_ARGS ?=

soak: deps venv  ## province soak, 30 min: 250 000 sensors at 0.1 Hz, incidents, SMS via Kannel, 8 API clients, 20 streams
	$(PY) bench/soak.py $(SOAK_ARGS)

bench-api: deps venv  ## API p50/p95/p99 under load from a second process, 2 000 sites / 100 000 sensors, vs /livez
	$(PY) bench/api_load.py

bench-engine: venv  ## engine tick at 10k/100k/1M sensors (learned behaviour on), replay, refit time; vs plain Python; then bench-computed
	$(PY) bench/engine.py
	$(PY) bench/computed.py

scenarios: venv  ## the scenario library through `hazmon backtest`: lead time of every incident
	$(PY) tests/scenarios/report.py

clean:
	rm -rf var .pytest_cache .ruff_cache
