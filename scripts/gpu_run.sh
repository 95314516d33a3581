#!/usr/bin/env bash
# One command for a GPU machine (<= 9 minutes on one H200): prepared with scripts/gpu_prepare.sh,
# carried there as `runs/gpu`. Writes everything under OUT_DIR:
#   1. the gpu-marked tests (every backbone's CUDA bf16 forward/backward vs the fp32 CPU path; the
#      fused Mamba kernels and the Triton mLSTM kernel where installed)   -> OUT/gpu_tests.log
#   2. training tokens/s of each backbone's `small` size on CUDA, fp32 vs bf16 (the CPU figures are
#      in benchmarks/results/train_throughput.md)                           -> OUT/train_throughput_cuda.md
#   3. pretraining of the DNA causal LM starter (recipes/configs/transformer/gpu_starter_clm.yaml)
#      for MINUTES minutes on the carried store                             -> OUT/starter/{final,metrics.csv}
# Usage:
#   bash scripts/gpu_run.sh OUT_DIR [MINUTES]      # on the GPU machine (MINUTES default 5.5)
#   bash scripts/gpu_run.sh --tiny OUT_DIR         # seconds-long CPU rehearsal (CI runs it)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TINY=0
if [ "${1:-}" = "--tiny" ]; then TINY=1; shift; fi
OUT="${1:?usage: gpu_run.sh [--tiny] OUT_DIR [MINUTES]}"
MINUTES="${2:-5.5}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
if [ "$TINY" = 1 ]; then
  PY="${PYTHON:-python}"
elif [ -d runs/gpu/whl ]; then  # the GPU machine has torch but not bioseq's data-side packages
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/bioseq-site runs/gpu/whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/bioseq-site"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee "$OUT/device.txt"

echo "== 1/3 gpu tests =="
# Exit status kept (tests may fail on a new GPU stack) so the other two parts still run.
set +e
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/models/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log"
set -e

echo "== 2/3 training throughput =="
if [ "$TINY" = 1 ]; then
  "$PY" benchmarks/train_throughput.py --device cpu --sizes transformer-tiny --modes fp32 bf16 --batch 2 --length 128 \
    --steps 1 --rounds 1 --no-quality --out "$OUT/train_throughput_cuda.md"
else
  "$PY" benchmarks/train_throughput.py --device cuda --sizes transformer-small hyena-small mamba-small mamba2-small \
    xlstm-small --modes fp32 bf16 --batch 32 --length 1024 --steps 3 --rounds 2 --no-quality \
    --out "$OUT/train_throughput_cuda.md"
fi

echo "== 3/3 pretrain the DNA causal LM starter =="
if [ "$TINY" = 1 ]; then
  "$PY" recipes/pretrain.py --config recipes/configs/transformer/sanity_clm.yaml output_dir="$OUT/starter" train.max_steps=3 \
    eval.markov_baseline=false
else
  secs=$("$PY" -c "print(int(float('$MINUTES') * 60))")
  "$PY" recipes/pretrain.py --config recipes/configs/transformer/gpu_starter_clm.yaml output_dir="$OUT/starter" \
    data.store=runs/gpu/genomes.zarr train.time_limit_s="$secs" eval.markov_baseline=false
fi
rm -rf "$OUT/starter/checkpoints"   # optimizer state never leaves the machine; final/ holds the weights
ls -l "$OUT/starter/final"
echo "done: $OUT"
