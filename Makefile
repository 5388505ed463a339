# pyruntime: `make demo` and `make test` each do all of their own set-up on a fresh
# Debian 12 machine (as root) through `make setup`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static libcap-dev libseccomp2 iproute2 jq runc nftables iptables \
	containerd podman uidmap tmux bats gawk golang-go \
	conmon skopeo umoci debootstrap containernetworking-plugins iperf3 libseccomp-dev \
	python3.11-venv python3.11-dev catatonit
# Debian's interpreter, which every user may execute (pyenv's lives under root's home): the
# venv's scripts, /usr/local/bin/pyruntime among them, must run for unprivileged users too.
PYTHON_BASE ?= /usr/bin/python3.11

.PHONY: setup demo test unit integration lint bench bench-state conformance mutation clean

setup: $(VENV)/.installed
	@for b in pyruntime dockee-shim dockee-cni-bridge; do ln -sf "$(CURDIR)/$(VENV)/bin/$$b" /usr/local/bin/$$b; done
	@$(PY) -m compileall -q pyruntime >/dev/null

$(VENV)/.installed: pyproject.toml Makefile
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@grep -qx "home = $(patsubst %/,%,$(dir $(PYTHON_BASE)))" $(VENV)/pyvenv.cfg 2>/dev/null || rm -rf $(VENV)
	@[ -x $(PY) ] || $(PYTHON_BASE) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	$(PY) scripts/write-launcher.py
	@touch $@

demo: setup
	@bash scripts/demo.sh

unit: setup
	$(VENV)/bin/pytest -q tests

integration: setup
	$(VENV)/bin/pytest -q -m integration integration

test: setup lint
	$(VENV)/bin/pytest -q tests integration

lint: setup
	$(VENV)/bin/ruff check pyruntime tests integration
	$(VENV)/bin/mypy pyruntime

bench: setup
	$(PY) scripts/bench.py
	$(PY) scripts/bench_dockee.py
	$(PY) scripts/bench_network.py

# the check that `pyruntime state` stays within 2x of `runc state`, both measured in this run
bench-state: setup
	$(PY) scripts/bench.py --sections state --rounds 6 --strict state_median_ms

conformance: setup
	bash integration/conformance/run.sh

# each integration/mutations/*.patch removes a protection: its tests must fail (slow; not in `test`)
mutation: setup
	$(PY) scripts/mutation.py

clean:
	rm -rf $(VENV) build *.egg-info
