#!/usr/bin/env bash
# End-to-end demo on the bundled genomes: build a Zarr genome store, pretrain a tiny DNA language
# model for about a minute, save it, and show what it learned. Installs what it needs first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
RUN=runs/demo
echo "== 1/4 build the genome store =="
python -m bioseq zarr build data/genomes/ecoli_K12_MG1655.fa.gz data/genomes/lambda_NC_001416.fa.gz -o "$RUN/genomes.zarr"
python -m bioseq zarr info "$RUN/genomes.zarr"
echo "== 2/4 pretrain (about a minute; E. coli trains, phage lambda is held out) =="
rm -rf "$RUN/checkpoints" "$RUN/final" "$RUN/metrics.csv"
python recipes/pretrain.py --config recipes/configs/demo.yaml "$@"
echo "== 3/4 saved model =="
ls -l "$RUN/final"
echo "== 4/4 what it learned =="
python recipes/show_pretrained.py "$RUN"
