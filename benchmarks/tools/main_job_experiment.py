#!/usr/bin/env python
"""The main job's settings for a few steps, one line of metrics per step: the experiment behind rlprims-train's defaults.

    python benchmarks/tools/main_job_experiment.py --seed 0 --steps 20 --scale-rewards batch          # embedded model, CPU
    python benchmarks/tools/main_job_experiment.py --device cuda --gguf-dir /root/g --format-reward 0  # weights read from a GGUF file

See benchmarks/EXPERIMENTS.md for the runs and their results.
"""
import argparse, json, re, time
import torch
from rlprims.core import GenerationConfig, RunConfig, Hooks
from rlprims.generation import load_model, load_tokenizer
from rlprims.training import create_addition_dataset, correct, train, evaluate

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="run"); p.add_argument("--device", default="cpu"); p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20); p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--scale-rewards", default="batch", choices=["group", "batch", "none"])
    p.add_argument("--format-reward", type=float, default=0.1, help="reward for an answer-only reply; 0 = correctness alone")
    p.add_argument("--mini-batch-size", type=int, help="completions per optimizer step (default: the whole batch, one update per step)")
    p.add_argument("--eval-every", type=int, default=10); p.add_argument("--threads", type=int)
    p.add_argument("--gguf-dir", help="folder with model.gguf (e.g. where there is no PyPI): load it instead of the embedded model")
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.gguf_dir:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        tok = AutoTokenizer.from_pretrained(a.gguf_dir, gguf_file="model.gguf"); tok.padding_side = "left"
        tok.pad_token = tok.pad_token or tok.eos_token
        model = AutoModelForCausalLM.from_pretrained(a.gguf_dir, gguf_file="model.gguf", dtype=torch.float32); model.hf_quantizer = None
    else:
        model, tok = load_model(), load_tokenizer()
    model = model.to(a.device)
    train_set = create_addition_dataset(5000, seed=a.seed + 1); eval_set = create_addition_dataset(200, seed=10_000 + a.seed)
    held = {x["prompt"] for x in eval_set}; train_set = [x for x in train_set if x["prompt"] not in held]   # as rlprims-train
    fmt = lambda r: a.format_reward if re.fullmatch(r"[\d\s+=]*-?\d+\s*\.?\s*", r.generation.text) else 0.0
    rewards = {"correct": correct, "format": fmt} if a.format_reward > 0 else {"correct": correct}
    keys = ["reward", "accuracy", "reward/format", "response_len_mean", "entropy", "grad_norm"]
    t0 = time.time()
    def log(m):
        d = {"name": a.name, "step": m["step"], **{k: round(float(m[k]), 4) for k in keys if k in m}, "t": round(time.time() - t0, 1)}
        if "eval_accuracy" in m: d["eval"] = m["eval_accuracy"]
        print(json.dumps(d), flush=True)
    over = {"scale_rewards": a.scale_rewards, **({"mini_batch_size": a.mini_batch_size} if a.mini_batch_size else {})}
    res = train(None, train_set, rewards, num_steps=a.steps, batch_size=8, learning_rate=a.lr, kl_coef=0.0, num_generations=8,
          gen_config=GenerationConfig(max_new_tokens=24, temperature=1.0, top_p=1.0, top_k=0), eval_dataset=eval_set, model=model, tokenizer=tok,
          output_dir=f"/tmp/rlprims-exp/{a.name}", train_overrides=over,
          run=RunConfig(eval_every=a.eval_every, progress=False, save_final=False, seed=a.seed), hooks=Hooks(log_fn=log))
    final = evaluate(res.model, tok, eval_set, rewards, GenerationConfig(max_new_tokens=24))["eval_accuracy"]
    print(json.dumps({"name": a.name, "step": a.steps - 1, "final_eval": final, "t": round(time.time() - t0, 1)}), flush=True)

if __name__ == "__main__":
    main()
