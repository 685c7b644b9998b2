#!/usr/bin/env bash
# The image's builder stage: install gramdex from a source tree into a self-contained virtual environment,
# compiling the C core there, so the runtime stage copies one folder and needs no compiler.
# usage: docker/build.sh SRC_DIR PREFIX
set -euo pipefail
src=${1:?usage: build.sh SRC_DIR PREFIX}
prefix=${2:?usage: build.sh SRC_DIR PREFIX}
python3 -m venv "$prefix"
"$prefix/bin/python" -m pip install --quiet --disable-pip-version-check "$src"
# fail the build here, not at the first request, if the extension did not compile or the page was not packaged
"$prefix/bin/python" -c 'import native.engine, gramdex_client, service.routes.explorer as e; assert e.ASSETS'
