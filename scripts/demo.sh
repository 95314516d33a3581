#!/usr/bin/env bash
# End-to-end demo on the bundled genomes: build a Zarr genome store, pretrain a tiny DNA language
# model for 800 steps (about 2 minutes on 2 CPU cores), save it, show what it learned and embed a
# genome with it. Installs what it needs first (scripts/setup.sh: .venv/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
RUN=runs/demo
echo "== 1/5 build the genome store =="
python -m bioseq zarr build data/genomes/ecoli_K12_MG1655.fa.gz data/genomes/lambda_NC_001416.fa.gz -o "$RUN/genomes.zarr"
python -m bioseq zarr info "$RUN/genomes.zarr"
echo "== 2/5 pretrain 800 steps (about 2 minutes on 2 CPU cores; E. coli trains, phage lambda is held out) =="
rm -rf "$RUN/checkpoints" "$RUN/final" "$RUN/metrics.csv"
python recipes/pretrain.py --config recipes/configs/demo.yaml "$@"
echo "== 3/5 saved model =="
ls -l "$RUN/final"
echo "== 4/5 what it learned =="
python recipes/show_pretrained.py "$RUN"
echo "== 5/5 use it: one embedding per sequence =="
python -m bioseq embed -m "$RUN/final" data/genomes/lambda_NC_001416.fa.gz -o "$RUN/lambda_embedding.npy" --rc
cat <<MSG

Done. The model is in $RUN/final (config.json, model.safetensors, tokenizer.json).
To use bioseq in a new shell, first activate its environment:
    source $ROOT/.venv/bin/activate
then, for example:
    bioseq embed -m $RUN/final my_sequences.fa -o embeddings.parquet
    bioseq score bits -m $RUN/final --fasta my_genome.fa --markov-from data/genomes/ecoli_K12_MG1655.fa.gz
    python recipes/finetune.py --config recipes/configs/finetune/splice.yaml
MSG
