#!/usr/bin/env python
"""The math tutorial's GPU run (nbs/09_math_tutorial.ipynb, its "The full run" cell uses the same settings):
GRPO with LoRA on the embedded SmolLM2-135M-Instruct, on rlprims' built-in word problems.

    python benchmarks/math_tutorial.py --out run-math                 # one-step problems, correctness reward: learns
    python benchmarks/math_tutorial.py --level 2 --max-new-tokens 128 [--format-reward 0.1]   # the harder runs of the tutorial

Prints held-out accuracy (200 problems, greedy) before, every 20 steps and after; writes metrics.csv, curves.png,
summary.json to --out."""
import argparse, json, time
from pathlib import Path
import rlprims
from rlprims import GenerationConfig, RunConfig, train, create_word_problems, MATH_REWARDS, load_model, load_tokenizer


def recipe(steps: int = 60, lr: float = 2e-4, G: int = 8, max_new_tokens: int = 64) -> dict:
    "The tutorial's settings (LoRA rank 16, lr 2e-4, 16 prompts x 8 samples, 64 new tokens, advantages / the batch's std)."
    return dict(num_steps=steps, batch_size=16, num_generations=G, learning_rate=lr, kl_coef=0.0,
                gen_config=GenerationConfig(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, top_k=0),
                train_overrides={"scale_rewards": "batch", "micro_batch_size": 64})


def data(seed: int = 0, level: int = 2):
    "Training and held-out problems, no prompt in both."
    held = create_word_problems(200, seed=10_000 + seed, level=level)
    seen = {p["prompt"] for p in held}
    return [p for p in create_word_problems(4000, seed=1 + seed, level=level) if p["prompt"] not in seen], held


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="run-math"); ap.add_argument("--steps", type=int, default=60); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-4); ap.add_argument("--G", type=int, default=8)
    ap.add_argument("--level", type=int, default=1, help="1: one-step problems; 2: two or three steps")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--format-reward", type=float, default=0.0, help="weight of the '#### <number>' format reward (0: correctness only)")
    a = ap.parse_args()
    t0 = time.time()
    train_set, held = data(a.seed, a.level)
    log = lambda m: print(f"held-out accuracy after {m['step']} steps: {m['eval_accuracy']:.1%}" if "eval_accuracy" in m else
                          f"step {m['step'] + 1}: reward {m['reward']:.3f}, accuracy {m.get('accuracy', 0):.3f}, length {m['response_len_mean']:.0f}", flush=True)
    rewards = MATH_REWARDS if a.format_reward else {"correct": MATH_REWARDS["correct"]}
    res = train(prompts=train_set, reward_fn=rewards, output_dir=a.out, eval_dataset=held,
                model=load_model(use_lora=True), tokenizer=load_tokenizer(),
                run=RunConfig(seed=a.seed, use_lora=True, eval_every=20, progress=False, save_final=False,
                              reward_weights={"correct": 1.0, "format": a.format_reward / 0.1} if a.format_reward else None),
                hooks=rlprims.Hooks(log_fn=log), **recipe(a.steps, a.lr, a.G, a.max_new_tokens))
    s = json.loads((Path(a.out) / "summary.json").read_text())
    print(f"math tutorial: {s['eval_before']['eval_accuracy']:.1%} -> {s['eval_after']['eval_accuracy']:.1%} held-out, "
          f"{s['train_seconds']:.0f} s of training, {time.time() - t0:.0f} s in all")
