#!/usr/bin/env bash
# Rota vs papermill on the same kernel: a 1-cell and a 100-cell trivial notebook.
# Usage: bench/notebook/run.sh [RUNS]   (default 5 runs per case)
set -euo pipefail

RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
# Prefer the real `rota` binary once the CLI exposes `notebook run`; else the example.
ROTA=()
if cargo build --release -q -p rota-cli 2>/dev/null \
    && "$ROOT/target/release/rota" notebook run --help >/dev/null 2>&1; then
    ROTA=("$ROOT/target/release/rota" notebook run)
else
    cargo build --release -q -p rota-notebook --example nbrun
    ROTA=("$ROOT/target/release/examples/nbrun" run)
fi

echo "creating a throwaway virtualenv with papermill and ipykernel..." >&2
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q papermill ipykernel nbformat >&2
"$WORK/venv/bin/python" -m ipykernel install --sys-prefix --name rota-bench --display-name rota-bench >/dev/null 2>&1
# Both tools find the same kernelspec (and so the same Python) through JUPYTER_PATH.
export JUPYTER_PATH="$WORK/venv/share/jupyter"
export PATH="$WORK/venv/bin:$PATH"

"$WORK/venv/bin/python" - "$WORK" <<'PY'
import sys, nbformat
work = sys.argv[1]
for n in (1, 100):
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "rota-bench", "display_name": "rota-bench", "language": "python"}
    nb.metadata.language_info = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(f"x = {i}") for i in range(n)]
    nbformat.write(nb, f"{work}/nb{n}.ipynb")
PY

now() { date +%s.%N; }
measure() { # name cells cmd...
    local name="$1" cells="$2"; shift 2
    local total=0
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(now)
        "$@" >/dev/null 2>"$WORK/err.txt" || { echo "$name failed: $*" >&2; cat "$WORK/err.txt" >&2; exit 1; }
        t1=$(now)
        total=$(echo "$total + $t1 - $t0" | bc -l)
    done
    echo "$name $cells $(echo "$total / $RUNS" | bc -l)"
}

{
    for n in 1 100; do
        measure papermill "$n" papermill --no-progress-bar "$WORK/nb$n.ipynb" "$WORK/pm$n.ipynb"
        measure rota "$n" "${ROTA[@]}" "$WORK/nb$n.ipynb" "$WORK/rota$n.ipynb"
    done
} > "$WORK/times.txt"

python3 - "$WORK/times.txt" "$RUNS" <<'PY'
import sys
t = {}
for line in open(sys.argv[1]):
    tool, cells, secs = line.split()
    t[(tool, int(cells))] = float(secs)
print(f"mean of {sys.argv[2]} runs each, same kernel (ipykernel in one venv)\n")
print(f"{'':12}{'1 cell (s)':>12}{'100 cells (s)':>15}{'per cell (ms)':>15}")
per = {}
for tool in ("papermill", "rota"):
    per[tool] = (t[(tool, 100)] - t[(tool, 1)]) / 99 * 1000
    print(f"{tool:12}{t[(tool, 1)]:>12.3f}{t[(tool, 100)]:>15.3f}{per[tool]:>15.2f}")
print()
print(f"1-cell speed-up (papermill / rota):         {t[('papermill', 1)] / t[('rota', 1)]:.1f}x  (target >= 2x)")
print(f"100-cell speed-up (papermill / rota):       {t[('papermill', 100)] / t[('rota', 100)]:.1f}x")
print(f"per-cell overhead ratio (rota / papermill): {per['rota'] / per['papermill']:.2f}  (target <= 0.20)")
PY
