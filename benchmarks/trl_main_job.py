#!/usr/bin/env python
"""The main job's task (`python -m rlprims`) trained with TRL's GRPOTrainer, scored by rlprims' own evaluation.

Same model (the embedded SmolLM2-135M-Instruct), same training prompts in the same order (rlprims' `train` draws each
step's 8 prompts with `random.Random(seed)`; here they are laid out in that order and TRL's shuffling is off), same
held-out set (`create_addition_dataset(eval_size, seed=10_000 + seed)`, excluded from the training set), same rewards
(`ADDITION_REWARDS`: `correct` + `format`, weights 1), same chat prompts, and the same settings as `rlprims-train`'s
defaults: 8 prompts x 8 generations per step, 24 new tokens, temperature 1, top-p 1, no top-k, AdamW lr 1e-5 constant,
no weight decay, clipping at 1.0, micro-batches of 32 completions, advantages divided by the batch's reward std, token-mean
loss over the whole batch (TRL `loss_type="dapo"`), no KL (beta 0, no reference model), one update per generation batch
(steps_per_generation = gradient_accumulation_steps: no old-log-prob pass). Accuracy before and after is
`rlprims.evaluate(...)` (greedy) exactly as `rlprims.cli.main` calls it.

    python benchmarks/trl_main_job.py --seed 0                       # CUDA if visible: bf16-mixed = fp32 weights, TRL bf16=True
    python benchmarks/trl_main_job.py --device cpu --steps 2 --eval-size 20   # a short smoke run
    PYTHONPATH=/tmp/site:$PWD python3 benchmarks/trl_main_job.py --seed 0 --json trl_seed0.json

The last line printed is one JSON object (also written to --json FILE). Needs `trl` and `datasets` (not rlprims
dependencies); never touches the Hugging Face Hub.
"""
from __future__ import annotations
import os
for _k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"): os.environ.setdefault(_k, "1")
os.environ.setdefault("WANDB_DISABLED", "true"); os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import argparse, json, random, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path: sys.path.insert(0, str(HERE.parent))   # rlprims from this checkout when not installed


def as_trl_reward(fn, name: str):
    "A TRL reward function `(prompts, completions, answer, ...) -> list[float]` calling the rlprims reward `fn(rollout)`."
    import torch
    from rlprims.core import Generation, Rollout

    def reward(prompts, completions, answer, completion_ids=None, **kw):
        out = []
        for i, (p, c, a) in enumerate(zip(prompts, completions, answer)):
            text = c[-1]["content"] if isinstance(c, list) else c            # conversational: [{"role": "assistant", ...}]
            prompt = p[-1]["content"] if isinstance(p, list) else p
            ids = torch.tensor(completion_ids[i] if completion_ids is not None else [], dtype=torch.long)
            gen = Generation(text, ids, None, torch.ones_like(ids))
            out.append(float(fn(Rollout(prompt, gen, metadata={"answer": a}))))
        return out
    reward.__name__ = reward.__qualname__ = name
    return reward


def training_prompts(train_set, steps: int, batch_size: int, seed: int) -> list:
    "The prompts rlprims' `train` uses, in order: step s takes draws [s*batch_size, (s+1)*batch_size) of `random.Random(seed)`."
    rng = random.Random(seed)
    return [train_set[rng.randrange(len(train_set))] for _ in range(steps * batch_size)]


# rlprims-train's --precision names -> (weights' dtype, TRL bf16, TRL fp16)
PRECISION = {"auto": None, "fp32": ("float32", False, False), "bf16-mixed": ("float32", True, False),
             "fp16-mixed": ("float32", False, True), "bf16": ("bfloat16", True, False)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--eval-size", type=int, default=200, help="held-out problems (rlprims-train's --eval-size)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per step")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--micro-batch-size", type=int, default=32, help="completions per forward/backward (TRL per_device_train_batch_size)")
    p.add_argument("--precision", default="auto", choices=list(PRECISION),
                   help="as rlprims-train's --precision: auto = bf16-mixed on CUDA (fp32 weights, TRL bf16=True autocast), fp32 on CPU")
    p.add_argument("--model-dir", help="model folder (default: rlprims.fetch_embedded_model(), i.e. $RLPRIMS_CACHE/SmolLM2-135M-Instruct)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", help="also write the result line to this file")
    a = p.parse_args(argv)
    t_start = time.time()

    import torch, transformers
    import trl
    from trl import GRPOConfig, GRPOTrainer
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    import rlprims
    from rlprims.core import GenerationConfig
    from rlprims.generation import load_tokenizer
    from rlprims.training import create_addition_dataset, evaluate, ADDITION_REWARDS

    if a.threads: torch.set_num_threads(a.threads)
    dev = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if dev == "cuda" and not torch.cuda.is_available(): sys.exit("trl_main_job: --device cuda but no GPU is visible")
    prec = a.precision if a.precision != "auto" else ("bf16-mixed" if dev == "cuda" else "fp32")
    dtype, use_bf16, use_fp16 = PRECISION[prec]
    n = a.batch_size * a.num_generations
    if n % a.micro_batch_size: sys.exit(f"trl_main_job: {n} completions per step is not a multiple of --micro-batch-size {a.micro_batch_size}")

    # data, exactly as rlprims.cli.main builds it
    train_set = create_addition_dataset(5000, seed=a.seed + 1)
    eval_set = create_addition_dataset(a.eval_size, seed=10_000 + a.seed)
    held = {x["prompt"] for x in eval_set}
    train_set = [x for x in train_set if x["prompt"] not in held]
    order = training_prompts(train_set, a.steps, a.batch_size, a.seed)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": x["prompt"]}], "answer": x["answer"]} for x in order])

    # model and tokenizer from the local folder (no hub)
    model_dir = a.model_dir or str(rlprims.fetch_embedded_model())
    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(dev)
    tok_eval = load_tokenizer(model_dir)                 # left padding, pad token: what rlprims-train evaluates with
    tok_trl = load_tokenizer(model_dir)                  # a separate instance that TRL may adjust
    gen = GenerationConfig(max_new_tokens=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0)
    print(f"trl_main_job: TRL {trl.__version__} GRPO on {model_dir} ({prec}: {dtype} weights, TRL bf16={use_bf16} fp16={use_fp16}) on {dev}, "
          f"{a.steps} steps x {a.batch_size} prompts x {a.num_generations} samples x {a.max_new_tokens} tokens, lr {a.lr}, "
          f"seed {a.seed}, {len(eval_set)} held-out; torch {torch.__version__}, transformers {transformers.__version__}", flush=True)

    before = evaluate(model, tok_eval, eval_set, ADDITION_REWARDS, gen)["eval_accuracy"]
    print(f"held-out accuracy before: {before:.1%}", flush=True)

    reward_funcs = [as_trl_reward(fn, name) for name, fn in ADDITION_REWARDS.items()]
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-main-job-", dir="/tmp"),
        per_device_train_batch_size=a.micro_batch_size, gradient_accumulation_steps=n // a.micro_batch_size,
        steps_per_generation=n // a.micro_batch_size, num_iterations=1, num_generations=a.num_generations,
        max_completion_length=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=a.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,   # torch.optim.AdamW's defaults, as rlprims
        beta=0.0, epsilon=0.2, loss_type="dapo", scale_rewards="batch", mask_truncated_completions=False,
        bf16=use_bf16, fp16=use_fp16, use_cpu=dev == "cpu", gradient_checkpointing=False, use_vllm=False,
        max_steps=a.steps, shuffle_dataset=False, seed=a.seed, dataloader_num_workers=0,
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, log_completions=False)

    rewards_seen = []
    class Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if not logs or "reward" not in logs: return
            rewards_seen.append(logs["reward"])
            print(f"step {state.global_step:3d}  reward {logs['reward']:.3f}  accuracy {logs.get('rewards/correct/mean', float('nan')):.3f}"
                  f"  length {logs.get('completions/mean_length', float('nan')):.1f}  {time.time() - t_train:.0f} s", flush=True)

    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=ds, processing_class=tok_trl,
                          callbacks=[Log()])
    if dev == "cuda": torch.cuda.synchronize()
    t_train = time.time()
    trainer.train()
    if dev == "cuda": torch.cuda.synchronize()
    train_seconds = time.time() - t_train

    # the trained weights without accelerate's autocast wrapper, evaluated as before
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    after = evaluate(model, tok_eval, eval_set, ADDITION_REWARDS, gen)["eval_accuracy"]
    total_seconds = time.time() - t_start
    print(f"held-out accuracy after: {after:.1%} (before {before:.1%}); training {train_seconds:.0f} s, all {total_seconds:.0f} s", flush=True)

    device_name = torch.cuda.get_device_name() if dev == "cuda" else f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    res = {"library": "trl", "seed": a.seed, "accuracy_before": before, "accuracy_after": after,
           "train_seconds": round(train_seconds, 2), "total_seconds": round(total_seconds, 2), "device": device_name,
           "trl_version": trl.__version__, "steps": a.steps, "lr": a.lr, "eval_size": len(eval_set), "precision": prec,
           "torch": torch.__version__, "transformers": transformers.__version__,
           "reward_first_5": sum(rewards_seen[:5]) / max(len(rewards_seen[:5]), 1),
           "reward_last_5": sum(rewards_seen[-5:]) / max(len(rewards_seen[-5:]), 1)}
    line = json.dumps(res)
    if a.json: Path(a.json).write_text(line + "\n")
    print(line, flush=True)
    return res


if __name__ == "__main__":
    main()
