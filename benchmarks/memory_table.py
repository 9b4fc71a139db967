#!/usr/bin/env python
"""What fits in 24, 80 and 141 GB: per model shape, completion budget, full fine-tuning or LoRA, and activation
checkpointing on or off, the largest training micro-batch and the largest generation batch, found by trying.

    python benchmarks/memory_table.py --shape qwen2.5-1.5b --T 1024 4096 --budgets 24 80 141
    python benchmarks/memory_table.py --shape qwen3-8b --lora --T 1024 4096
    python benchmarks/memory_table.py --quick        # CPU plumbing check (no memory cap, tiny sizes)

A training step processes its rows one micro-batch at a time, so what a budget limits is (a) the rows of one
forward+backward (`micro`, at P+T tokens each) next to the weights, gradients and AdamW state, and (b) the rows decoded
at once (`rows`: the static KV cache holds all of them). Each budget is emulated on the one GPU with
`torch.cuda.set_per_process_memory_fraction`; sizes double from 1 until one runs out of memory, then a bisection finds
the largest that runs, to within 1/8 (an entry equal to `--max-rows` means at least that many). Generation probes
allocate the whole cache of the budget and stop every row after 2 tokens. bf16-mixed: fp32 trained weights and AdamW
state, bf16 compute and a bf16 sampling copy (LoRA: bf16 base, fp32 adapters). Not counted: a reference model (a KL
term's), which adds its bf16 weights. With `--out`, the JSON is rewritten after each row, so a run cut short keeps its rows.
"""
from __future__ import annotations
import argparse, gc, json, sys, time
from datetime import date
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import torch
from bench_grpo import SHAPES, shape_dir, lora_config

def free():
    gc.collect()
    if torch.cuda.is_available(): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()

def commit() -> str:
    "The checkout's commit, or '' outside a git checkout."
    import subprocess
    try: return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    except OSError: return ""

def largest(fits, start: int, limit: int) -> tuple[int, float]:
    "Largest n in [start, limit] (doubling, then bisection) with `fits(n)` returning a peak in GiB (None: out of memory); (0, nan) if none."
    best, peak, n = 0, float("nan"), start
    while n <= limit:
        p = fits(n)
        if p is None: break
        best, peak, n = n, p, n * 2
    lo, hi = best, min(n, limit + 1)                      # best fits, hi doesn't (or is past the limit)
    while hi - lo > max(1, lo // 8):                      # within 1/8: enough for a table
        mid = (lo + hi) // 2
        p = fits(mid)
        if p is None: hi = mid
        else: lo, peak = mid, p
    return lo, peak

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-1.5b")
    p.add_argument("--lora", action="store_true")
    p.add_argument("--T", type=int, nargs="+", default=[1024, 4096], help="completion budgets")
    p.add_argument("--budgets", type=float, nargs="+", default=[24, 80, 141], help="GiB of GPU memory to emulate")
    p.add_argument("--ckpt", choices=["both", "on", "off"], default="both", help="activation checkpointing")
    p.add_argument("--max-rows", type=int, default=4096)
    p.add_argument("--quick", action="store_true", help="CPU, SmolLM2 shape, T 4, no cap, sizes up to 2")
    p.add_argument("--out", help="write the table (markdown) and JSON here")
    a = p.parse_args(argv)
    from rlprims.core import GenerationConfig
    from rlprims.generation import load_tokenizer, tokenize_prompts, compute_logprobs_for_tokens
    from rlprims.fast_decode import generate_batch_fast
    from rlprims.precision import create_precision, prepare_for_training, autocast, enable_activation_checkpointing
    from rlprims.training import create_addition_dataset
    from transformers import AutoConfig, AutoModelForCausalLM
    dev = "cpu" if a.quick else "cuda"
    if a.quick: a.shape, a.T, a.budgets, a.max_rows = "smollm2-135m", [4], [0], 2
    d = shape_dir(a.shape)
    torch.manual_seed(0)
    with torch.device(dev): model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16 if a.lora else torch.float32)
    if a.lora:
        from peft import get_peft_model
        model = get_peft_model(model, lora_config()(model))
    prec = create_precision("fp32" if a.quick else "bf16-mixed", dev)
    model, sampler = prepare_for_training(model, prec)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-6, **({"fused": True} if dev == "cuda" else {}))
    tok = load_tokenizer(d)
    prompt = [x["prompt"] for x in create_addition_dataset(1, seed=0)]
    total = torch.cuda.get_device_properties(0).total_memory / 2**30 if dev == "cuda" else float("inf")
    peak = lambda: torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else 0.0
    oom = (torch.cuda.OutOfMemoryError,) if dev == "cuda" else ()
    def is_oom(e: Exception) -> bool:   # an allocation that fails inside CUDA-graph capture can surface as another RuntimeError
        return isinstance(e, oom) or (dev == "cuda" and isinstance(e, RuntimeError) and "memory" in str(e).lower())

    def train_fits(T):
        def fits(m):
            free(); opt.zero_grad(set_to_none=True)
            pids, pmask = tokenize_prompts(tok, prompt, n=m)
            ids = torch.randint(0, tok.vocab_size, (m, T))
            try:
                with autocast(prec):
                    lp = compute_logprobs_for_tokens(model, pids, pmask, ids, micro_batch_size=m, requires_grad=True)
                    loss = lp.mean()
                loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
                return peak()
            except Exception as e:
                if not is_oom(e): raise
                return None
            finally: lp = loss = None; opt.zero_grad(set_to_none=True)
        return fits

    def generate_fits(T):
        cfg = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
        def fits(n):
            free()
            pids, pmask = tokenize_prompts(tok, prompt, n=n)
            try: generate_batch_fast(sampler, tok, pids, pmask, cfg, forced_lengths=torch.full((n,), 2), slots=None); return peak()   # all n rows at once
            except Exception as e:
                if not is_oom(e): raise
                return None
        return fits

    out = Path(a.out) if a.out else None
    name = f"memory-{a.shape}{'-lora' if a.lora else ''}"
    card = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    def save(rows):
        if out is None: return
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(json.dumps(dict(date=str(date.today()), card=card, commit=commit(), args=vars(a), rows=rows), indent=1))

    # one AdamW step first, so its state (and the gradients' memory) exists in every probe
    train_fits(8)(1)
    rows = []
    for ckpt in {"both": (False, True), "on": (True,), "off": (False,)}[a.ckpt]:
        if ckpt: enable_activation_checkpointing(model)
        elif hasattr(model, "gradient_checkpointing_disable"): model.gradient_checkpointing_disable()
        model.train()
        for T in a.T:
            for budget in sorted(a.budgets, reverse=True):
                if dev == "cuda": torch.cuda.set_per_process_memory_fraction(min(budget / total, 1.0))
                t0 = time.time()
                micro, train_peak = largest(train_fits(T), 1, a.max_rows)
                gen_rows, gen_peak = largest(generate_fits(T), 1, a.max_rows) if not ckpt else (None, None)   # generation is the same either way
                row = dict(shape=a.shape, lora=a.lora, ckpt=ckpt, T=T, budget_gib=budget, micro=micro, train_peak_gib=train_peak,
                           gen_rows=gen_rows, gen_peak_gib=gen_peak, seconds=time.time() - t0)
                rows.append(row); print(json.dumps(row), flush=True)
                save(rows)                                   # after each row: a run cut short keeps what it measured
    if dev == "cuda": torch.cuda.set_per_process_memory_fraction(1.0)
    head = ("| shape | training | activation checkpointing | completion budget (tokens) | GPU memory | largest micro-batch (rows of P+T tokens) | its peak | largest generation batch (rows) | its peak |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    fmt = lambda x, f: "-" if x is None or x != x else f.format(x)
    lines = [f"| {r['shape']} | {'LoRA r16' if r['lora'] else 'full'} | {'on' if r['ckpt'] else 'off'} | {r['T']} | {r['budget_gib']:g} GiB "
             f"| {r['micro']} | {fmt(r['train_peak_gib'], '{:.1f} GiB')} | {fmt(r['gen_rows'], '{}')} | {fmt(r['gen_peak_gib'], '{:.1f} GiB')} |" for r in rows]
    table = head + "\n" + "\n".join(lines)
    print("\n" + table)
    if out is not None: (out / f"{name}.md").write_text(table + "\n")

if __name__ == "__main__":
    main()
