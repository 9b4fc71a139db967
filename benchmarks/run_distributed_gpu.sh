#!/bin/bash
# The 2-GPU measurements of benchmarks/README_distributed.md, in one go (run from the repo root on a machine with 2 GPUs).
# CONFIG: a folder with SmolLM2-135M's config.json and tokenizer files (no weights needed: the model is randomly initialised).
# Writes $OUT/bench.jsonl and $OUT/log.txt.
set -o pipefail
CONFIG=${CONFIG:-.dev/smollm2-135m-dist}
OUT=${OUT:-./distributed-results}; mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1   # no NVLink multicast on shared hosts
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore PYTHONPATH=$PWD:$PYTHONPATH TOKENIZERS_PARALLELISM=false
EQ=/tmp/rlprims-eq; rm -rf $EQ
T="tests/test_distributed.py --tokenizer $CONFIG"
run() { echo "+ $*"; "$@" 2>&1 | grep -v "^W[0-9]\|Writing model shards" ; }
{
nvidia-smi -L
python3 -c "import torch, accelerate, transformers, peft; print('torch', torch.__version__, 'accelerate', accelerate.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
# 1. equality on the GPUs (tiny fp32 model): 1 GPU vs DDP (NCCL) vs FSDP2, then resuming across process counts and engines
run torchrun --nproc_per_node 1 --master_port 29501 $T --out $EQ/one --variants full,lora,dapo
run torchrun --nproc_per_node 2 --master_port 29502 $T --out $EQ/ddp --variants full,lora,dapo
run accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29503 $T --out $EQ/fsdp --variants full,dapo --distributed fsdp
run torchrun --nproc_per_node 1 --master_port 29504 $T --out $EQ/res1 --variants full --resume-from $EQ/fsdp/full/checkpoint-1
run torchrun --nproc_per_node 2 --master_port 29505 $T --out $EQ/res2 --variants full --resume-from $EQ/ddp/full/checkpoint-1 --distributed fsdp
for v in full lora dapo; do python3 tests/test_distributed.py --compare $EQ/one/$v $EQ/ddp/$v; done
for v in full dapo; do python3 tests/test_distributed.py --compare $EQ/one/$v $EQ/fsdp/$v; done
python3 tests/test_distributed.py --compare $EQ/one/full $EQ/res1/full --compare-steps 1
python3 tests/test_distributed.py --compare $EQ/one/full $EQ/res2/full --compare-steps 1
# the same, sampling with generate_batch_fast (FSDP2's default since the tenth session): 1 GPU vs FSDP2
run torchrun --nproc_per_node 1 --master_port 29508 $T --fast --out $EQ/one-fast --variants full,dapo
run accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29509 $T --fast --out $EQ/fsdp-fast --variants full,dapo --distributed fsdp
for v in full dapo; do python3 tests/test_distributed.py --compare $EQ/one-fast/$v $EQ/fsdp-fast/$v; done
# 2. steps/s, per-GPU batch fixed: SmolLM2-135M config, random init, bf16, 8 prompts x 8 samples per GPU, 128 new tokens
B="benchmarks/bench_distributed.py --config $CONFIG --json $OUT/bench.jsonl $BENCH_ARGS"
run python3 $B
run accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29506 $B
run accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29507 $B --distributed fsdp
run accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29510 $B --distributed fsdp --generator plain
cat $OUT/bench.jsonl
} 2>&1 | tee $OUT/log.txt
