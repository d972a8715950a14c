#!/usr/bin/env bash
# Build the frozen Lipdub Studio folder (dist/lipdub-studio/) with PyInstaller, then smoke-test it.
#   packaging/build.sh              build + smoke test
#   packaging/build.sh --no-smoke   build only
#   packaging/build.sh --keep DIR   build + smoke test, keeping its clip, screenshots and outputs in DIR
# Uses the project's virtual environment (LIPDUB_VENV, default .venv) and installs PyInstaller into it
# when missing (the "packaging" extra of pyproject.toml). Intermediate files go to build/pyinstaller/,
# the bundle to dist/lipdub-studio/ (both ignored by git). Runs at low CPU priority (nice).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="${LIPDUB_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
smoke=1
if [ "${1:-}" = "--no-smoke" ]; then
    smoke=0
    shift
fi

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    echo "== installing PyInstaller (the packaging extra)"
    "$PY" -m pip --disable-pip-version-check -q install "pyinstaller>=6.0"
fi

echo "== building dist/lipdub-studio with $("$PY" -m PyInstaller --version) ($(date -u +%H:%M:%S) UTC)"
start=$(date +%s)
nice -n 10 "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$ROOT/build/pyinstaller" packaging/lipdub_studio.spec
end=$(date +%s)
echo "== build took $((end - start)) s; bundle size: $(du -sh dist/lipdub-studio | cut -f1)"
echo "== largest folders in the bundle:"
{ du -sh dist/lipdub-studio/_internal/* 2>/dev/null | sort -rh | head -12; } || true

if [ $smoke -eq 1 ]; then
    echo "== smoke test"
    nice -n 10 "$PY" packaging/smoke_test.py --dist "$ROOT/dist/lipdub-studio" "$@"
fi
