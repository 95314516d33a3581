#!/usr/bin/env bash
# Prepare what scripts/gpu_run.sh carries to a GPU machine (which has PyTorch + CUDA but no network
# and none of bioseq's data dependencies): runs/gpu/genomes.zarr (bacteria of ../shared/data plus
# the first 40 Mb of human chrX, <= 40 MiB) and runs/gpu/whl/ (wheels of the pure data-side
# dependencies for the GPU machine's Python 3.12). Run here, then carry `runs/gpu`:
#   bash scripts/gpu_prepare.sh [SHARED_DATA_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
SHARED="${1:-../shared/data}"
G="$SHARED/genomes"
mkdir -p runs/gpu
if [ ! -d runs/gpu/genomes.zarr ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # The first 40 Mb of chrX as one contig: enough for a held-out-style human set without
  # breaking the 64 MiB the device tool carries.
  python - "$G/human_GRCh37_chrX_trunc/hs37chrXtrunc.fa.gz" "$tmp/chrX_40Mb.fa" <<'PY'
import sys
from bioseq import alphabet
from bioseq.io import read_fasta
rec = next(iter(read_fasta(sys.argv[1])))
seq = alphabet.decode(rec.codes[:40_000_000])
with open(sys.argv[2], "w") as f:
    f.write(f">{rec.name}_0_40Mb\n")
    for i in range(0, len(seq), 100):
        f.write(seq[i:i + 100] + "\n")
PY
  python -m bioseq zarr build \
    "$G/ecoli_K12_MG1655/MG1655-K12.fasta.gz" "$G/klebsiella_pneumoniae/Klebs_HS11286.fna.xz" \
    "$G/klebsiella_pneumoniae/Klebs_Kp1084.fna.xz" "$G/klebsiella_pneumoniae/NTUH-K2044.fna.xz" \
    "$G/klebsiella_pneumoniae/MGH78578.fna.xz" "$G/staphylococcus_aureus_sibelia/sibelia_Staphylococcus_4genomes.fasta.gz" \
    "$tmp/chrX_40Mb.fa" -o runs/gpu/genomes.zarr
fi
# Wheels for the GPU machine's Python 3.12 (it has torch, accelerate, safetensors, tokenizers,
# typer, rich, tqdm, yaml, scipy; not zarr/numcodecs/xlstm/biopython/pyfaidx).
if [ ! -d runs/gpu/whl ]; then
  mkdir -p runs/gpu/whl
  for spec in "zarr==3.1.6" "numcodecs==0.16.6" "donfig==0.8.1.post1" "google-crc32c==1.9.0" \
              "xlstm==2.0.6" "mlstm_kernels==2.0.6" "biopython==1.88" "pyfaidx==0.9.2.2"; do
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d runs/gpu/whl "$spec" || python -m pip download -q --no-deps -d runs/gpu/whl "$spec"
  done
fi
du -sh runs/gpu/genomes.zarr runs/gpu/whl
echo "carry: runs/gpu  (device tool: run command 'bash scripts/gpu_run.sh \$OUT' with carry=[\"runs/gpu\"])"
