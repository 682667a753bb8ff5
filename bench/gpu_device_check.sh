#!/usr/bin/env bash
# The device checks of train.cuda_graphs in one command, for a machine with one CUDA card and a bare
# Python that has torch and pytest (no install of this project, no ray/mlflow/pydantic needed):
#
#     bash bench/gpu_device_check.sh           # writes under $OUT (default bench/results)
#     bash bench/gpu_device_check.sh --smoke   # the same code path on a CPU: gpu tests skipped, tiny bench
#
#  1. the CUDA tests: tests/test_graphed_step.py's gpu tests (captured vs eager step within bf16
#     tolerance, a new capture for a new locality width, the graph updating the optimizer state
#     loaded by a rollback) and every other test marked gpu -> gpu_tests.log, gpu_tests.xml;
#  2. bench/gpu_bench.py on cifar10-v2: baseline, bf16 eager, torch.compile and CUDA-graph steps side
#     by side (speedup of the best mode over the baseline, MFU of each), generation throughput,
#     XL-preset memory -> gpu_bench_<card>.json, gpu_bench.log.
# About 5 minutes on an H100/H200, most of it torch.compile's first steps and the 50k-image
# generation; each part has its own time limit (4 + 8 minutes at most). Exit status 0 only when
# the tests passed and the benchmark recorded no error.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/bench/results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
cd "$REPO" || exit 2

# transgan_lab.* without an install: src/ holds the import root (a namespace package) and a scratch
# folder adds the trainers/ portion, as pyproject's package-dir maps it (only torch is needed there).
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/transgan_lab"
ln -s "$REPO/trainers" "$SHIM/transgan_lab/trainers"
export PYTHONPATH="$REPO/src:$SHIM:$REPO/bench${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

"$PY" -c 'import torch, transgan_lab.trainers.graphed as g
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device:",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", "|", g.__file__)' || exit 2

status=0
if "$PY" -c 'import pytest' 2>/dev/null; then
    # --noconftest: tests/conftest.py sets up Ray and MLflow, which the gpu tests do not use
    timeout 240 "$PY" -m pytest tests/test_graphed_step.py tests/test_attention.py -m gpu --noconftest \
        -p no:cacheprovider -rA --junitxml "$OUT/gpu_tests.xml" 2>&1 | tee "$OUT/gpu_tests.log" || status=1
else
    echo "pytest is not installed on this machine: the CUDA tests did not run" | tee "$OUT/gpu_tests.log"
    status=1
fi

timeout 480 "$PY" bench/gpu_bench.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_bench.log" || status=1
ls -l "$OUT"
exit $status
