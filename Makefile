# The project's entry points. `make test` is what CI runs.
.PHONY: test demo interop

# Every test suite, ending with "N passed, N failed".
test:
	scripts/test-all.sh

# The main job: a server in one language (SERVER=rust|c|cpp|python|node,
# default python) and clients in the four others, about half a minute once built.
demo:
	python3 tests/interop/demo.py $(if $(SERVER),--server $(SERVER))

# The 5x5 interop matrix alone.
interop:
	scripts/test-interop.sh
