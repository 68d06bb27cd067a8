# One entry point per task, for people and CI alike.
.PHONY: setup run test check bench clean

VENV := .venv/bin

setup:
	scripts/setup dev

run:
	scripts/setup
	scripts/run

test:
	scripts/setup dev
	scripts/test

check:
	scripts/setup dev
	$(VENV)/ruff check src tests bench
	$(VENV)/mypy --strict src

bench:
	scripts/setup dev bench
	$(VENV)/python -m bench

clean:
	rm -rf .venv data .mypy_cache .ruff_cache .pytest_cache .hypothesis
