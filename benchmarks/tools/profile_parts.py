#!/usr/bin/env python
"""Where a GPU GRPO step's time goes, part by part (a development tool; see benchmarks/README.md).

Decode: `generate_batch_fast` end to end with variants of its attention and of the sampler, at the benchmark's batch.
Update: forward + backward of one micro-batch of log-probs for variants of the scoring pass, with peak memory.
"""
import argparse, statistics, time
from pathlib import Path
import torch

def timed(fn, reps=3):
    ts = []
    for _ in range(reps):
        torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

# ---- sampler variants
def sample_argmax(logits, config, banned=None):
    "No sampling at all: what the rest of the step costs."
    return logits.argmax(-1), torch.zeros(logits.shape[0], device=logits.device)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", default=str(Path(__file__).resolve().parents[2] / ".dev" / "smollm2"))
    p.add_argument("--prompts", type=int, default=64); p.add_argument("--G", type=int, default=8); p.add_argument("--T", type=int, default=256)
    p.add_argument("--micro", type=int, default=64)
    a = p.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM
    import rlprims.generation as RG, rlprims.fast_decode as FD   # the decode step looks its helpers up in fast_decode
    from rlprims.core import GenerationConfig
    from rlprims.training import create_addition_dataset
    tok = RG.load_tokenizer(a.model_dir)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.model_dir), dtype=torch.bfloat16).to("cuda")
    pids, pm = RG.tokenize_prompts(tok, [d["prompt"] for d in create_addition_dataset(a.prompts)], n=a.G)
    N, T = pids.shape[0], a.T
    gen = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
    run = lambda **kw: FD.generate_batch_fast(m, tok, pids, pm, gen, **kw)

    print(f"== decode, batch {N} x {T}: seconds per call (median of 3, after one call), ms per step")
    orig_sample, orig_has, orig_fuse, orig_plain = FD.sample_next_token, FD._has_triton, FD._fuse_rms_norms, FD._plain_sampling
    never = lambda c: False
    variants = [("as shipped: Triton attention+sampler, fused RMSNorm", orig_has, orig_sample, orig_fuse, orig_plain),
                ("sampler: sample_next_token (inverse CDF, torch)", orig_has, orig_sample, orig_fuse, never),
                ("HF RMSNorm layers (not fused)", orig_has, orig_sample, lambda m: [], orig_plain),
                ("matmul attention in 64-slot buckets", lambda: False, orig_sample, orig_fuse, never),
                ("no sampler (argmax)", orig_has, sample_argmax, orig_fuse, never)]
    for name, has, samp, fuse, plain in variants:
        FD._has_triton = has; FD.sample_next_token = samp; FD._fuse_rms_norms = fuse; FD._plain_sampling = plain
        try:
            t0 = time.perf_counter(); run(); torch.cuda.synchronize(); first = time.perf_counter() - t0
            t = timed(run)
            print(f"{name:52s} {t:.3f} s (first call {first:.2f} s)  {t / (T - 1) * 1e3:.2f} ms/step  {N * T / t:,.0f} tokens/s", flush=True)
        except Exception as e:
            import traceback; traceback.print_exc(); print(f"{name:52s} FAILED: {type(e).__name__}: {e}", flush=True)
    FD._has_triton = orig_has; FD.sample_next_token = orig_sample; FD._fuse_rms_norms = orig_fuse; FD._plain_sampling = orig_plain
    torch.cuda.empty_cache()

    print(f"\n== update: one micro-batch of {a.micro} completions x {T} tokens ({a.micro // a.G} distinct prompts): fwd / bwd seconds, peak GiB above the model")
    b = run()
    torch.cuda.empty_cache()
    p_, pm_, c_, cm_ = [x[:a.micro].cuda() for x in (b.prompt_ids, b.prompt_mask.long(), b.completion_ids, b.completion_mask.long())]
    m.train()
    def cur(share, fuse=None): return lambda: RG.compute_logprobs_for_tokens(m, p_, pm_, c_, completion_mask=cm_, micro_batch_size=a.micro,
                                                                  requires_grad=True, return_entropy=True, share_prefix=share, fuse_norms=fuse)
    def trl_like():
        from trl.trainer.utils import add_fused_lm_head
        if not getattr(m, "_fused", False): add_fused_lm_head(m, outputs=("log_probs", "entropy")); m._fused = True
        ids = torch.cat([p_, c_], 1); am = torch.cat([pm_, cm_], 1)
        labels = ids.masked_fill(am == 0, -100); labels[:, :-T] = -100
        o = m(input_ids=ids, attention_mask=am, labels=labels, fused_lm_head=True)
        return o.log_probs[:, -T:], o.entropy[:, -T:]
    base = torch.cuda.memory_allocated()
    for name, fn in [("as shipped (CUDA: no sharing, fused RMSNorm, backbone + chunked head)", cur(None)),
                     ("HF RMSNorm layers (not fused)", cur(None, False)),
                     ("compute_logprobs_for_tokens, shared prompts", cur(True)),
                     ("TRL's fused LM head (Triton), no sharing", trl_like)]:
        try:
            fw, bw = [], []
            for _ in range(3):
                m.zero_grad(set_to_none=True); torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter(); lp, ent = fn(); loss = (lp * cm_).sum() / cm_.sum(); torch.cuda.synchronize(); t1 = time.perf_counter()
                loss.backward(); torch.cuda.synchronize(); t2 = time.perf_counter()
                fw.append(t1 - t0); bw.append(t2 - t1)
            g = m.model.layers[0].self_attn.q_proj.weight.grad.float().norm().item()
            print(f"{name:52s} fwd {statistics.median(fw):.3f}  bwd {statistics.median(bw):.3f}  peak +{(torch.cuda.max_memory_allocated() - base) / 2**30:.2f} GiB"
                  f"  mean lp {(lp * cm_).sum().item() / cm_.sum().item():.4f}  ent {ent.float().mean().item():.3f}  |g| {g:.4e}", flush=True)
        except Exception as e: print(f"{name:52s} FAILED: {type(e).__name__}: {e}", flush=True)
        m.zero_grad(set_to_none=True); torch.cuda.empty_cache()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, fused=True)
    for p__ in m.parameters(): p__.grad = torch.randn_like(p__) * 1e-3
    print(f"fused AdamW step: {timed(lambda: opt.step()):.4f} s")

if __name__ == "__main__":
    main()
