# ccproxy: one entry point for set-up, lint, tests and the local demo.
# `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_DISABLE_PIP_VERSION_CHECK := 1

PLAYBOOKS := site.yml $(wildcard playbooks/*.yml)
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The venv is rebuilt only when the pinned requirements change.
$(VENV)/.stamp: requirements-dev.txt scripts/venv.sh
	PYTHON=$(PYTHON) scripts/venv.sh

.PHONY: venv
venv: $(VENV)/.stamp ## Create or refresh the pinned tool venv in .venv/

.PHONY: image
image: ## Build (or reuse) the Debian 12 systemd test image
	@scripts/build-test-image.sh

MIRROR := .cache/mirror

.PHONY: mirror
mirror: venv ## Build the local release mirror (Ollama test double, Traefik, LiteLLM wheels)
	python tests/mirror/build_mirror.py $(MIRROR)

.PHONY: lint
lint: venv ## The pre-commit hooks (yamllint, ansible-lint, workflow schemas, detect-secrets), syntax check of every playbook
	PRE_COMMIT_HOME=$(CURDIR)/.cache/pre-commit pre-commit run --all-files --show-diff-on-failure
	@for p in $(PLAYBOOKS); do \
	  ansible-playbook --syntax-check -i localhost, "$$p" >/dev/null || exit 1; \
	  echo "syntax ok: $$p"; \
	done

PLUGIN_MODULES := $(wildcard roles/traefik/files/plugins-local/src/github.com/ccproxy/*)
export GOPATH := $(CURDIR)/.cache/go
export GOCACHE := $(CURDIR)/.cache/go-build

.PHONY: litellm-venv
litellm-venv: ## The pinned LiteLLM and pytest in .cache/litellm-venv, for tests/litellm
	@scripts/litellm-venv.sh >/dev/null

.PHONY: claude-code
claude-code: ## The pinned Claude Code CLI (tests/claude-code) in .cache/claude-code
	@scripts/claude-code.sh >/dev/null

.PHONY: unit
unit: venv litellm-venv ## pytest: unit tests, Ollama test double, edge plugins in real Traefik, ccproxy_litellm in the pinned LiteLLM; go test of the plugins (no containers)
	pytest -q tests/unit tests/plugin
	$$(scripts/litellm-venv.sh) -m pytest -q -p no:cacheprovider tests/litellm
	@scripts/apt-install.sh go=golang-go
	@unformatted=$$(gofmt -l $(PLUGIN_MODULES)); \
	  if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	@for m in $(PLUGIN_MODULES); do (cd $$m && go vet ./... && go test ./...) || exit 1; done

.PHONY: molecule
molecule: venv mirror claude-code ## Every Molecule scenario: create, converge, idempotence, verify, destroy
	@scripts/apt-install.sh ssh=openssh-client sudo
	@image=$$(scripts/build-test-image.sh); \
	export CCPROXY_CLAUDE_CODE=$$(scripts/claude-code.sh); \
	for s in $(SCENARIOS); do \
	  echo "== molecule scenario $$s (image $$image)"; \
	  state=$(CURDIR)/.cache/molecule/$$s; rm -rf "$$state"; \
	  scripts/new-vault-password.sh "$$state/vault-password"; \
	  scripts/new-ssh-key.sh "$$state"; \
	  CCPROXY_TEST_IMAGE=$$image CCPROXY_STATE_DIR=$$state CCPROXY_PUBLISHED_PORT=$${CCPROXY_TEST_PORT:-18443} \
	  CCPROXY_SSH_PORT=$${CCPROXY_TEST_SSH_PORT:-18422} \
	    molecule test -s $$s || exit 1; \
	done

.PHONY: test
test: lint unit molecule ## Everything CI checks

.PHONY: clean
clean: ## Remove generated files (keeps the venv and the image)
	rm -rf build .pytest_cache

.PHONY: demo
demo: venv mirror ## Provision the whole stack into the long-lived container ccproxy-demo
	@scripts/apt-install.sh ssh=openssh-client sudo
	scripts/demo.sh up

.PHONY: bench
bench: venv ## Measure the gateway on the demo (make demo first): build/bench/report.md and charts
	python scripts/bench.py $(BENCH_ARGS)

.PHONY: demo-destroy
demo-destroy: ## Remove the ccproxy-demo container
	scripts/demo.sh destroy

.PHONY: render-macos
render-macos: venv ## Render every macOS artifact (plists, newsyslog, configs) into build/macos/ through the roles
	ansible-playbook -i localhost, tests/playbooks/render-macos.yml
