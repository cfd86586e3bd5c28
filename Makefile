# The two commands a newcomer needs: `make plan STACK=dev` and `make test`.
# make plan STACK=dev FORMAT=markdown|mermaid|json [BASE=origin/main]
PYTHON ?= python3
VENV   := venv
STACK  ?= dev
FORMAT ?= json
BASE   ?=
READY  := $(VENV)/.requirements-installed

.PHONY: plan test clean

$(READY): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

plan: $(READY)
	@$(VENV)/bin/python -m meshops plan --config Pulumi.$(STACK).yaml --format $(FORMAT) $(if $(BASE),--base $(BASE))

test: $(READY)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
