# lendfusion — common tasks. `make help` lists them.
.PHONY: help demo test lint fmt ci

help: ## list the targets
	@awk -F':.*## ' '/^[a-z]+:.*## / {printf "  %-6s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

demo: ## the main job: `lendfusion demo` (demo panel, embedded cluster, factor reports, Flight SQL)
	scripts/demo.sh

test: ## every test, installing what they need (Garage S3 server)
	scripts/test.sh

lint: ## formatting, clippy (warnings are errors), generated proto code up to date
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	scripts/regen-proto.sh --check

fmt: ## format the code
	cargo fmt --all

ci: lint test ## what CI runs
