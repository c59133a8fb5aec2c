# The README's two commands: `make run` and `make test`. Both install what they need first.
SHELL := /bin/bash
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
TARGET ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: run test setup build e2e python fmt lint

## Run the platform: SQLite under ./data, a platform admin, a demo tenant, the seed catalog, and the fleet
## controller serving each seeded model on a simulated GPU fleet (scripts/run.sh).
run:
	@scripts/setup.sh
	@echo "==> building the release server and wasm: about 15 minutes the first time on 2 cores, seconds after"
	cargo leptos build --release
	scripts/run.sh

## Run every test: unit, storage and integration (SQLite and PostgreSQL), OIDC, and Playwright in Chromium.
test:
	@scripts/setup.sh --test
	@echo "==> building the server, wasm and tests: about 10 minutes the first time on 2 cores, a minute or two after"
	cargo leptos build
	$(MAKE) lint
	cargo test --workspace --exclude tollgate-hydrate
	$(MAKE) python
	$(MAKE) e2e

## The real `openai` Python client against the engine simulator (and, later, the gateway); the OpenAPI document.
python:
	cargo build -p tollgate-sim
	TOLLGATE_SIM_BIN=$(abspath $(TARGET))/debug/tollgate-sim TOLLGATE_BIN=$(abspath $(TARGET))/debug/tollgate \
		.venv/bin/pytest tests/python -q

e2e:
	cargo build -p tollgate-fleet-kubernetes --features testing --bin tollgate-fake-kube
	cd end2end && TOLLGATE_BIN=$(abspath $(TARGET))/debug/tollgate \
		TOLLGATE_FAKE_KUBE_BIN=$(abspath $(TARGET))/debug/tollgate-fake-kube npx playwright test

fmt:
	cargo fmt --all

## Formatting, and clippy with the workspace lints (no unwrap or expect outside tests) as errors.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --exclude tollgate-hydrate --all-targets -- -D warnings
