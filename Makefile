# The project's entry points. `make test` is what CI runs.
.PHONY: test demo

test:
	scripts/test-all.sh

demo:
	cargo run --release -p shmsock-examples --bin demo
