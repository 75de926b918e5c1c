# The project's entry points. `make test` is what CI runs.
.PHONY: test demo interop dist

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

# The release artifacts in dist/: the Python wheel and sdist, the npm packages
# (shmsock and the prebuilt shmsock-linux-x64-gnu), the C, C++ and CLI tarballs,
# stripped, with their sizes (dist/SIZES.txt). DIST_ONLY="python node" for a part.
dist:
	scripts/dist.sh
