# Gofer: the two commands are `make run` and `make test`. Everything else here serves them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GOFER_BIND ?= 127.0.0.1:8080
export GOFER_BIND

.PHONY: run test lint migrations-check test-sqlite test-postgres bench clean

$(BIN)/.runtime: requirements.txt cli/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	@# The gofer command line (cli/): .venv/bin/gofer, editable so a change in cli/src needs no reinstall.
	@$(BIN)/pip install -q --disable-pip-version-check -e ./cli
	@touch $@

$(BIN)/.dev: $(BIN)/.runtime requirements-dev.txt
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## make run: install, migrate, then serve the API (daphne, through manage.py serve: HTTPS when GOFER_TLS_CERT and
## GOFER_TLS_KEY are set; slow-request limits in kernel/api/daphne_streaming.py) and run the workers (django-q2).
run: $(BIN)/.runtime
	@$(BIN)/python manage.py migrate --noinput -v 0
	@url=$${GOFER_TLS_CERT:+https}; url=$${url:-http}://$$GOFER_BIND; curl=curl; \
	if [ -n "$$GOFER_TLS_CERT" ]; then curl="curl --cacert $$(dirname "$$GOFER_TLS_CERT")/ca.pem"; fi; \
	echo ""; \
	echo "Gofer is starting on $$url  (admin: $$url/admin/, API docs: $$url/api/docs/)"; \
	echo "First token (works once):  $$curl -s -X POST $$url/api/tokens/bootstrap"; \
	echo "Admin console login:       $(BIN)/python manage.py createsuperuser"; \
	echo "HTTPS in development:      $(BIN)/python manage.py dev_certificate (then GOFER_TLS_CERT/GOFER_TLS_KEY)"; \
	echo "Ctrl-C stops the server and the workers."; \
	echo ""; \
	trap 'kill 0' INT TERM EXIT; \
	$(BIN)/python manage.py qcluster & \
	$(BIN)/python manage.py serve

## make test: lint, migrations check and the whole suite. Locally: SQLite and the database as the queue. Under CI=true:
## the whole suite on PostgreSQL with Redis as broker and Channels layer, then the service-free part on SQLite.
test: lint migrations-check
ifeq ($(CI),true)
	@$(MAKE) --no-print-directory test-postgres
	@$(MAKE) --no-print-directory test-sqlite PYTEST_ARGS="-m 'not docker and not vault and not browser'"
else
	@$(MAKE) --no-print-directory test-sqlite
endif

# Parallel test processes (pytest-xdist). Each has its own database, queue, Channels prefix and $GOFER_HOME
# (tests/settings.py); most tests wait on containers and sockets, so more processes than cores pays. 0: serial.
PYTEST_WORKERS ?= 4
PYTEST_PARALLEL = $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS))

test-sqlite: $(BIN)/.dev
	GOFER_TEST_DB=sqlite $(BIN)/pytest $(PYTEST_PARALLEL) $(PYTEST_ARGS)

test-postgres: $(BIN)/.dev
	GOFER_TEST_DB=postgres GOFER_TEST_REDIS=1 $(BIN)/pytest $(PYTEST_PARALLEL) --durations=25 $(PYTEST_ARGS)

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrations-check: $(BIN)/.dev
	GOFER_HOME=$$(mktemp -d) $(BIN)/python manage.py makemigrations --check --dry-run

bench: $(BIN)/.dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
