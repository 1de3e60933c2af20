#!/usr/bin/env bash
# The CUDA checks, in one go, for a machine with an NVIDIA GPU (see README, Performance):
#   tools/cuda_check.sh [MNIST_FOLDER] [OUT_FOLDER]
# 1. the engine tests that touch a device, the CUDA-only ones included (the rest run on any CI machine);
# 2. a real training run on cuda (3 epochs = 471 steps) saved as a checkpoint, then evaluated on the CPU;
# 3. which graph capture modes let another thread use the GPU during a capture;
# 4. the training benchmark on cuda, and on this machine's CPU for scale; where a CUDA step's time goes.
# Each step runs even when an earlier one fails; the exit status says whether any failed.
set -u
data=${1:-../shared/datasets/mnist}
out=${2:-${OUT:-/tmp/cuda-check}}
mkdir -p "$out"
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
failed=0
step() {
    echo "=== $*"
    "$@" || { echo "=== FAILED ($?): $*"; failed=1; }
}

step nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step "$python" -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
step "$python" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_models.py tests/test_training.py \
    tests/test_checkpoint.py -rs
step "$python" main.py devices
step "$python" main.py train --data "$data" --device cuda --epochs 3 --out "$out/cuda.pt" --json
step "$python" main.py evaluate --checkpoint "$out/cuda.pt" --data "$data" --device cpu --json
step "$python" main.py train --resume "$out/cuda.pt" --epochs 1 --data "$data" --device cpu --out "$out/resumed-on-cpu.pt" --json
step "$python" tools/cuda_capture_modes.py
step "$python" benchmarks/bench_training.py --data "$data" --device cuda
step "$python" benchmarks/bench_training.py --data "$data" --device cpu --quick
step "$python" tools/cuda_step_profile.py --data "$data"
exit $failed
