#!/usr/bin/env python
"""GPU check of `generate_batch_fast`: correctness against eager decoding and scoring, then generation speed of
`model.generate`, `generate_batch`, the static-cache loop without graphs, and with graphs, at one batch.

    python benchmarks/tools/check_generate_fast.py [--prompts 64 --G 8 --T 256] [--model-dir .dev/smollm2]
"""
import argparse, time
from pathlib import Path
import torch

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=64); p.add_argument("--G", type=int, default=8); p.add_argument("--T", type=int, default=256)
    p.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[2] / ".dev" / "smollm2"))
    p.add_argument("--skip-eager", action="store_true", help="don't time the slow eager loops (model.generate, generate_batch)")
    a = p.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM
    from rlprims.core import GenerationConfig
    from rlprims.fast_decode import generate_batch_fast
    from rlprims.generation import (load_tokenizer, tokenize_prompts, generate_batch,
                                    compute_logprobs_for_tokens)
    from rlprims.training import create_addition_dataset
    dev = "cuda"
    tok = load_tokenizer(a.model_dir)
    cfg = AutoConfig.from_pretrained(a.model_dir)
    torch.manual_seed(0)
    texts = [d["prompt"] for d in create_addition_dataset(a.prompts)]

    # correctness in fp32 (tight) and bf16 (loose), small batch, mixed prompt lengths
    small = ["What is 12 + 7? Answer with just the number.", "Hi", "Name three colours of the rainbow, please."]
    pids, pm = tokenize_prompts(tok, small, n=3)
    for dtype, tol in [(torch.float32, 2e-3), (torch.bfloat16, 0.15)]:
        torch.manual_seed(0)
        m = AutoModelForCausalLM.from_config(cfg, dtype=dtype).to(dev)
        g = GenerationConfig(max_new_tokens=40, do_sample=False)
        e = generate_batch(m, tok, pids, pm, g)
        s0 = generate_batch_fast(m, tok, pids, pm, g, cuda_graphs=False)      # eager, matrix-product attention
        s1 = generate_batch_fast(m, tok, pids, pm, g)                         # CUDA graph, Triton attention
        print(f"{dtype}: greedy tokens equal to generate_batch: eager static {(e.completion_ids == s0.completion_ids).float().mean():.3f}, "
              f"graphs+Triton {(e.completion_ids == s1.completion_ids).float().mean():.3f}; "
              f"max |log-prob difference| graphs vs eager {((s1.logprobs - s0.logprobs).abs() * s0.completion_mask).max():.2e}")
        torch.manual_seed(1)
        b = generate_batch_fast(m, tok, pids, pm, GenerationConfig(max_new_tokens=40, min_new_tokens=40, temperature=1.0, top_p=1.0, top_k=0))
        fresh = compute_logprobs_for_tokens(m, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
        err = ((fresh - b.logprobs).abs() * b.completion_mask).max().item()
        print(f"{dtype}: sampled {tuple(b.completion_ids.shape)}, all rows full length: {bool((b.completion_mask.sum(1) == 40).all())}, "
              f"max |sampler log-prob - fresh| = {err:.2e} ({'ok' if err < tol else 'TOO LARGE'})")
        del m; torch.cuda.empty_cache()

    # speed at the benchmark batch
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).to(dev)
    pids, pm = tokenize_prompts(tok, texts, n=a.G)
    N, T = pids.shape[0], a.T
    gen = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
    def timeit(name, fn, reps=1):
        ts = []
        for _ in range(reps):
            torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
        print(f"{name:45s} " + " ".join(f"{t:.3f}s" for t in ts) + f"  -> {N * T / min(ts):,.0f} tokens/s, {min(ts) / T * 1e3:.2f} ms/token-step", flush=True)
    ids, am = pids.to(dev), pm.to(dev)
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=tok.pad_token_id, max_new_tokens=T, min_new_tokens=T)
    print(f"batch {N} x {T} new tokens, prompt {pids.shape[1]} columns")
    if not a.skip_eager:
        with torch.no_grad(): timeit("model.generate (1st call warms the allocator)", lambda: m.generate(input_ids=ids, attention_mask=am, **kw), reps=2)
        timeit("generate_batch (eager, DynamicCache)", lambda: generate_batch(m, tok, pids, pm, gen))
    timeit("generate_batch_fast", lambda: generate_batch_fast(m, tok, pids, pm, gen), reps=4)
    print(f"peak memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")

if __name__ == "__main__":
    main()
