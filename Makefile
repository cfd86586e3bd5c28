# The two commands a newcomer needs: `make plan STACK=dev` and `make test`.
PYTHON ?= python3
VENV   := venv
STACK  ?= dev
FORMAT ?= json
READY  := $(VENV)/.requirements-installed

.PHONY: plan test clean

$(READY): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

plan: $(READY)
	@$(VENV)/bin/python -m meshops plan --config Pulumi.$(STACK).yaml --format $(FORMAT)

test: $(READY)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
