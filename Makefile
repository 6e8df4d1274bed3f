# v6sentry developer entry points. `make setup` then `make test` is all CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Debian packages and a command each provides: tshark for the differential test, the rest
# for the attack-tool lab (tests/netlab.py).
APT_PACKAGES := tshark tcpdump radvd thc-ipv6 ipv6toolkit iproute2 procps
APT_COMMANDS := tshark tcpdump radvd atk6-fake_router6 ra6 ip tc sysctl

.PHONY: setup apt venv test lint pcaps golden docs bench clean

setup: apt venv  ## install system packages (needs root or sudo) and the .venv

apt:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then \
	  echo "apt: $(APT_PACKAGES) already installed"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | $$SUDO debconf-set-selections; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

venv:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

test:  ## behaviour tests: unit, capture manifest, external captures, tshark differential, fuzzing
	$(PY) -m pytest -q

lint:  ## ruff and mypy
	$(VENV)/bin/ruff check detectors tests pcaps
	$(VENV)/bin/ruff format --check detectors tests pcaps
	$(VENV)/bin/mypy

pcaps:  ## regenerate the regression captures (deterministic)
	$(PY) pcaps/generate.py

golden:  ## regenerate the expected EVE output of every regression capture
	$(PY) -m tests.golden

docs:  ## regenerate the README's detection tables from the family specs
	$(PY) -m detectors.specdoc

bench:  ## replay throughput in packets/s (reported, never asserted)
	$(PY) -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
