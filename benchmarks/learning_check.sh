#!/bin/bash
# The learning check of the precision recipe, on a GPU: `rlprims-train` (python -m rlprims) with its defaults for each seed and
# precision, and TRL's GRPOTrainer on the same task (benchmarks/trl_main_job.py), all scored by rlprims.evaluate on the same
# 200 held-out problems. Prints one summary line per run; JSON files land in $OUT.
#   SEEDS="0 1 2" PRECISIONS="auto fp16-mixed" TRL_SEEDS="0 1 2" OUT=./learning bash benchmarks/learning_check.sh
#   EXTRA="--pack-sequences" TAG=pack SEEDS="0 1 2" bash benchmarks/learning_check.sh   # rlprims-train flags added to every run
set -o pipefail
OUT=${OUT:-./learning-check}; mkdir -p "$OUT"
SEEDS=${SEEDS:-"0 1 2"}; PRECISIONS=${PRECISIONS:-"auto"}; TRL_SEEDS=${TRL_SEEDS:-""}; EXTRA=${EXTRA:-""}; TAG=${TAG:+-$TAG}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
for p in $PRECISIONS; do for s in $SEEDS; do
  run=$OUT/rlprims$TAG-$p-$s
  python3 -m rlprims --seed $s --precision $p --out $run --checkpoint-every 0 $EXTRA > $run.log 2>&1 || { tail -20 $run.log; continue; }
  python3 -c "import json,sys; d=json.load(open('$run/summary.json')); print(f\"rlprims$TAG {d['precision']:10s} seed {d['seed']}: {d['accuracy_before']:.1%} -> {d['accuracy_after']:.1%}  ({d['accuracy_after']-d['accuracy_before']:+.1%}), {d['minutes']*60:.0f} s in all, train {d.get('train_seconds', float('nan')):.0f} s\")"
done; done
for s in $TRL_SEEDS; do
  python3 benchmarks/trl_main_job.py --seed $s --json $OUT/trl-$s.json > $OUT/trl-$s.log 2>&1 || { tail -20 $OUT/trl-$s.log; continue; }
  python3 -c "import json; d=json.load(open('$OUT/trl-$s.json')); print(f\"trl     {d.get('precision','?'):10s} seed {d['seed']}: {d['accuracy_before']:.1%} -> {d['accuracy_after']:.1%}  ({d['accuracy_after']-d['accuracy_before']:+.1%}), {d['total_seconds']:.0f} s in all, train {d['train_seconds']:.0f} s\")"
done
