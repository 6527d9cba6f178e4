# greenloop: make install | make demo | make test | make bench
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml constraints/cpu.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints/cpu.txt -e '.[dev,data,train,export,loop,kernels]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/greenloop demo

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/verify_throughput.py
	$(PY) benchmarks/funnel_savings.py
	$(PY) benchmarks/mbpp_references.py
	$(PY) benchmarks/kernel_timing.py
	$(PY) benchmarks/data_throughput.py
	$(PY) benchmarks/tokenize_throughput.py
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs
