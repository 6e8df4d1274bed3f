# v6sentry developer entry points. `make setup` then `make test` is all CI runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Debian packages and a command each provides: tshark for the differential test, the rest
# for the namespace labs (tests/netlab.py, tests/netlab_tunnels.py): attack tools, scanners,
# and miredo for real Teredo.
APT_PACKAGES := tshark tcpdump radvd thc-ipv6 ipv6toolkit iproute2 procps nmap masscan \
                miredo miredo-server dnsmasq-base isc-dhcp-client nsd unbound dnsutils
APT_COMMANDS := tshark tcpdump radvd atk6-fake_router6 ra6 ip tc sysctl nmap nping masscan \
                miredo miredo-server suricata suricata-update dnsmasq dhclient nsd unbound dig
# Suricata 7 (rule-pack tests) comes from bookworm-backports; bookworm itself has 6.
BACKPORTS := /etc/apt/sources.list.d/bookworm-backports.sources

.PHONY: setup apt rust venv es test lint pcaps golden docs rules bench bench-compare wheel clean

setup: apt rust venv es  ## system packages (needs root or sudo), Rust check, the .venv (builds the native core), Elasticsearch

# No service may start during the install: miredo's would be a Teredo client of a real
# Internet server. A policy-rc.d that exits 101 is Debian's "do not start services" answer.
apt:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -z "$$missing" ]; then \
	  echo "apt: $(APT_PACKAGES) suricata suricata-update already installed"; \
	else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | $$SUDO debconf-set-selections; \
	  $$SUDO apt-get update -q || exit 1; \
	  rc=/usr/sbin/policy-rc.d; made=""; \
	  if [ ! -e $$rc ]; then printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$rc >/dev/null && $$SUDO chmod 755 $$rc && made=1; fi; \
	  if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then \
	    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	      | $$SUDO tee $(BACKPORTS) >/dev/null && $$SUDO apt-get update -q || exit 1; \
	  fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(APT_PACKAGES); status=$$?; \
	  if [ $$status = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports suricata suricata-update; status=$$?; \
	  fi; \
	  if [ -n "$$made" ]; then $$SUDO rm -f $$rc; fi; \
	  exit $$status; \
	fi

# rustup's toolchain, where the machine has one, even if the caller's PATH lacks it.
export PATH := $(HOME)/.cargo/bin:$(PATH)

# The native core (native/) is Rust, built by maturin during `pip install`. The machine's
# rustup toolchain is used when present; otherwise Debian's current one (bookworm's rustc-web
# and cargo-web, 1.9x; plain `rustc` there is 1.63, older than native/Cargo.toml's
# rust-version). Crates come from crates.io, pinned by native/Cargo.lock.
rust:
	@if command -v cargo >/dev/null 2>&1; then echo "rust: $$(cargo --version)"; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends cargo-web rustc-web || exit 1; \
	  command -v cargo >/dev/null 2>&1 || { echo "rust: no cargo on PATH after installing cargo-web; install Rust (rustup) and retry" >&2; exit 1; }; fi

venv:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'

# The test Elasticsearch node: the integ-test zip from Maven Central, cached between runs
# (tests/es_node.py says where). It has no bundled JDK and runs on the machine's Java.
es:
	$(PY) -c "from tests.es_node import fetch, home; fetch(); print('es:', home())"

# cargo test links libpython like any binary (PyO3 without extension-module); PYO3_PYTHON
# names the interpreter so the build finds the same Python the package runs on.
# LD_LIBRARY_PATH: the one test that embeds Python loads that interpreter's libpython.
CARGO_ENV = PYO3_PYTHON=$(abspath $(PY)) \
            LD_LIBRARY_PATH=$(shell $(PY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')

test:  ## native core tests (cargo), then behaviour tests: unit, captures, external, tshark, fuzzing, labs
	cd native && $(CARGO_ENV) cargo test --profile quick --locked
	$(PY) -m pytest -q

lint:  ## cargo fmt and clippy on the native core; ruff and mypy on the Python
	cd native && cargo fmt --check
	rustfmt --edition 2021 --check detectors/detections/*/native/*.rs  # outside cargo fmt's reach (build.rs)
	cd native && $(CARGO_ENV) cargo clippy --profile quick --locked --all-targets -- -D warnings
	$(VENV)/bin/ruff check detectors tests pcaps
	$(VENV)/bin/ruff format --check detectors tests pcaps
	$(VENV)/bin/mypy

pcaps:  ## regenerate the regression captures (deterministic)
	$(PY) pcaps/generate.py

golden:  ## regenerate the expected EVE output of every regression capture
	$(PY) -m tests.golden

docs:  ## regenerate the README's detection tables from the family specs
	$(PY) -m detectors.specdoc

rules:  ## re-render the committed Suricata and Sigma packs, rule revisions and README matrix
	$(PY) -m detectors.rules

bench:  ## replay throughput in packets/s (reported, never asserted)
	$(PY) -m tests.bench

wheel:  ## a manylinux wheel (abi3, CPython >= 3.11) with the native core, into dist/
	$(PY) -m maturin build --release --locked --out dist

# BENCH_ARGS passes options through, e.g. make bench-compare BENCH_ARGS="--packets 200000".
bench-compare:  ## v6sentry replay vs Suricata 7 single-thread on an attack-heavy capture and the office mix
	$(PY) -m tests.bench_compare --json build/bench/compare.json --plot build/bench/compare.png $(BENCH_ARGS)

clean:
	rm -rf dist native/target $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
