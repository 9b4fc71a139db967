"""Steps per second of `rlprims.train` on N processes (one per GPU) with the per-GPU batch fixed.

A randomly initialised model of a given config (SmolLM2-135M's by default) in bf16; every completion runs to
`--max-new-tokens` (EOS is banned until then), so the work per step is the same at any process count. Launch:

    python benchmarks/bench_distributed.py --config DIR                                  # 1 GPU
    accelerate launch --multi_gpu --num_processes 2 benchmarks/bench_distributed.py --config DIR   # 2 GPUs
    torchrun --nproc_per_node 2 benchmarks/bench_distributed.py --config DIR                     # the same, torchrun

Rank 0 prints one JSON line (and appends it to --json): steps/s over the timed steps, after --warmup steps.
"""
import argparse, functools, json, tempfile, time
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="folder with config.json and the tokenizer files")
    ap.add_argument("--prompts-per-gpu", type=int, default=8)
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--micro-batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--distributed", default="auto")
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--generator", default="default", choices=["default", "plain", "fast", "fast-bf16"],
                    help="the sampler: train's default, generate_batch (plain), generate_batch_fast (fast), or it with compute_dtype=bf16 (fast-bf16: under FSDP2, bf16 copies of the fp32 weights)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM
    from rlprims.core import GenerationConfig, RunConfig, Hooks
    from rlprims.generation import load_tokenizer, generate_batch
    from rlprims.fast_decode import generate_batch_fast
    from rlprims.training import train, create_accelerator, create_addition_dataset, ADDITION_REWARDS
    acc = create_accelerator(a.distributed)                 # first: it picks this process's GPU
    world, rank = (acc.num_processes, acc.process_index) if acc is not None else (1, 0)
    dev = acc.device if acc is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.config), dtype=torch.bfloat16).to(dev)
    if a.lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    tok = load_tokenizer(a.config)
    stamps = []
    gen = GenerationConfig(max_new_tokens=a.max_new_tokens, min_new_tokens=a.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0)
    t0 = time.perf_counter()
    res = train(prompts=create_addition_dataset(4096), reward_fn=ADDITION_REWARDS, num_steps=a.warmup + a.steps,
                batch_size=a.prompts_per_gpu * world, num_generations=a.num_generations, learning_rate=1e-6, model=model,
                tokenizer=tok, gen_config=gen, output_dir=tempfile.mkdtemp(prefix="rlprims-bench-"),
                train_overrides={"micro_batch_size": a.micro_batch_size, "kl_coef": 0.0},
                run=RunConfig(progress=False, save_final=False, show_plot=False, distributed=acc),
                hooks=Hooks(log_fn=lambda m: stamps.append(time.perf_counter()),
                            generator={"default": None, "plain": generate_batch, "fast": generate_batch_fast,
                                       "fast-bf16": functools.partial(generate_batch_fast, compute_dtype=torch.bfloat16)}[a.generator]))
    if rank == 0:
        m = res.metrics
        timed = stamps[a.warmup - 1:] if a.warmup else [t0] + stamps
        sps = (len(timed) - 1) / (timed[-1] - timed[0])
        row = {"processes": world, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "engine": ("fsdp" if getattr(acc, "is_fsdp2", False) else "ddp") if acc is not None else "single",
               "lora": a.lora, "generator": a.generator, "prompts_per_gpu": a.prompts_per_gpu, "num_generations": a.num_generations,
               "max_new_tokens": a.max_new_tokens, "micro_batch_size": a.micro_batch_size, "timed_steps": len(timed) - 1,
               "steps_per_s": round(sps, 4), "rollouts_per_s": round(sps * a.prompts_per_gpu * world * a.num_generations, 1),
               "time_rollout_s": round(float(m["time_rollout"].iloc[a.warmup:].mean()), 3),
               "time_train_s": round(float(m["time_train"].iloc[a.warmup:].mean()), 3),
               **{f"{k}_s": round(float(m[k].iloc[a.warmup:].mean()), 3) for k in ("time_wait", "time_gather") if k in m},   # rank 0's, in the rollout time
               "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}
        print(json.dumps(row), flush=True)
        if a.json:
            with open(a.json, "a") as f: f.write(json.dumps(row) + "\n")
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
