# The two commands a newcomer needs: `make plan STACK=dev` and `make test`.
# make plan STACK=dev FORMAT=markdown|mermaid|json [BASE=origin/main]
# Set-up output goes to stderr, so `make plan STACK=dev > plan.json` is valid JSON.
PYTHON ?= python3
VENV   := venv
STACK  ?= dev
FORMAT ?= json
BASE   ?=
FROM   ?= rapid
SEED   ?=
RUNTIME := $(VENV)/.runtime-installed
DEV     := $(VENV)/.dev-installed

.PHONY: plan test e2e testbed rehearse clean policy-venv

$(RUNTIME): requirements.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) >&2
	@echo "installing requirements.txt into $(VENV) (first run: about a minute)" >&2
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
	@touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
	@touch $@

# The policy pack's own venv (policy/PulumiPolicy.yaml names it): needed by
# `pulumi preview --policy-pack policy`, CI and `meshops rollout`.
policy-venv: policy/venv/.installed

policy/venv/.installed: policy/requirements.txt
	@test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv >&2
	@policy/venv/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt >&2
	@touch $@

plan: $(RUNTIME)
	@$(VENV)/bin/python -m meshops plan --config Pulumi.$(STACK).yaml --format $(FORMAT) $(if $(BASE),--base $(BASE))

# -n auto: one pytest-xdist worker per core (2 on CI); worksteal: an idle worker takes
# half of a busy one's queue (durations vary from ms to a minute: tests/conftest.py).
# The e2e tests start real servers and stay serial (`make e2e`).
test: $(DEV)
	$(VENV)/bin/python -m pytest -m "not e2e" -n auto --dist worksteal

# The real Pulumi engine (CLI built from Go modules) with our stand-in command provider,
# and a real kube-apiserver; cached under ~/.cache/gke-mesh-testbed, rebuilt only when a
# pin changes (testbed/*.sh). build_pulumi.sh exits 3 when the proxy refuses the language
# host / pulumi-command (expected: see testbed/ENGINE_RULES.md); the CLI is built either way.
testbed:
	bash testbed/build_pulumi.sh || test $$? -eq 3
	bash testbed/build_command_provider.sh
	bash testbed/build_kube.sh

e2e: $(DEV) testbed
	$(VENV)/bin/python -m pytest -m e2e -rs

# Rehearse STACK's channel change (from FROM) on an emulated copy of its clusters, under the
# real engine; SEED= a `kubectl get ... -A -o json` of a real cluster's Istio objects.
rehearse: $(DEV) testbed
	$(VENV)/bin/python -m testbed.rehearse --config Pulumi.$(STACK).yaml --from $(FROM) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) .pytest_cache
