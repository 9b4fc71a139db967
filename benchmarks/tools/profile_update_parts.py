#!/usr/bin/env python
"""GPU: where the update phase's time goes, part by part, for one GRPO batch at a matrix cell's size (a development tool).

Times (median of `--reps` after a warm-up) on a randomly initialised model of `--shape`, fp32 weights under bf16 autocast
(the bf16-mixed recipe), `--rows` rows of `--P` prompt + `--T` completion tokens in micro-batches of `--micro`:

- `backbone`: the decoder's forward and backward alone (a stand-in loss on its hidden states);
- `head ...`: `token_logprobs` (the chunked LM head, log-probs and entropies) forward and backward on fixed hidden states,
  as it is and in variants (`--variants`);
- `scoring+loss`: `compute_logprobs_for_tokens(requires_grad=True)` and a policy-gradient loss's backward, every micro-batch;
- `optimizer`: fused AdamW's step over all weights.

    python benchmarks/tools/profile_update_parts.py --shape qwen2.5-1.5b --rows 128 --T 1024 --micro 16
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import shape_dir

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--rows", type=int, default=128)
ap.add_argument("--P", type=int, default=40); ap.add_argument("--T", type=int, default=1024); ap.add_argument("--micro", type=int, default=16)
ap.add_argument("--reps", type=int, default=3); ap.add_argument("--device", default="cuda")
a = ap.parse_args()
import rlprims.generation as g
from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
dev = a.device
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(shape_dir(a.shape)), dtype=torch.float32).to(dev)
model.config._attn_implementation = "sdpa"
V, H = model.config.vocab_size, model.config.hidden_size
ids = torch.randint(0, 49152, (a.rows, a.P + a.T), device=dev)
p, c = ids[:, :a.P], ids[:, a.P:]
pm, cm = torch.ones_like(p), torch.ones_like(c)
ac = lambda: torch.autocast(dev, dtype=torch.bfloat16)

def timed(name, fn, n_micro=1):
    fn(); sync()
    ts = []
    for _ in range(a.reps):
        sync(); t0 = time.perf_counter(); fn(); sync(); ts.append(time.perf_counter() - t0)
    t = statistics.median(ts)
    print(f"{name:48s} {t:8.3f} s   ({t / n_micro * 1e3:7.1f} ms per micro-batch)", flush=True)
    return t

n_micro = a.rows // a.micro
def scoring_and_loss():
    for i in range(0, a.rows, a.micro):
        with ac():
            lp, ent = g.compute_logprobs_for_tokens(model, p[i:i + a.micro], pm[i:i + a.micro], c[i:i + a.micro], micro_batch_size=a.micro,
                                                    completion_mask=cm[i:i + a.micro], requires_grad=True, return_entropy=True)
            loss = -(lp * 0.1).sum() / lp.numel()
        loss.backward()
    model.zero_grad(set_to_none=True)

def backbone():
    dec = model.get_decoder()
    for i in range(0, a.rows, a.micro):
        with ac():
            h = dec(input_ids=ids[i:i + a.micro, :-1], attention_mask=torch.ones_like(ids[i:i + a.micro, :-1]), use_cache=False).last_hidden_state
            loss = h.float().square().mean()
        loss.backward()
    model.zero_grad(set_to_none=True)

W = model.get_output_embeddings().weight
x = (torch.randn(a.micro * a.T, H, device=dev) * 3).to(torch.bfloat16).requires_grad_()
y = torch.randint(0, V, (a.micro * a.T,), device=dev)
def head(entropy=True, chunk=1024, fused=None):
    for _ in range(n_micro):
        with ac(): lp, ent = g.token_logprobs(x[None], y[None], 1.0, entropy, head_weight=W, chunk_tokens=chunk, fused=fused)
        lp.sum().backward()
    x.grad = None; W.grad = None

print(f"{a.shape}: {a.rows} rows x ({a.P} + {a.T}) tokens, micro-batches of {a.micro}; torch {torch.__version__}", flush=True)
t_full = timed("scoring+loss (forward+backward, all micro)", scoring_and_loss, n_micro)
t_bb = timed("backbone only (forward+backward)", backbone, n_micro)
t_head = timed("head: token_logprobs as it is", head, n_micro)
timed("head: PyTorch's passes (fused=False)", lambda: head(fused=False), n_micro)
timed("head: PyTorch's passes, chunks of 4096 tokens", lambda: head(chunk=4096, fused=False), n_micro)
for chunk in (2048, 4096): timed(f"head: chunks of {chunk} tokens", lambda: head(chunk=chunk), n_micro)
Wc = W.detach().to(torch.bfloat16)
xs, gz = x.detach()[:1024], torch.randn(1024, V, device=dev, dtype=torch.bfloat16)
gW = torch.zeros(V, H, device=dev)
def accumulate_cast():
    for _ in range(n_micro * (x.shape[0] // 1024)): gW.add_((gz.t() @ xs).float())
timed("head: dW accumulated as (bf16 product).float()", accumulate_cast, n_micro)
def accumulate_library():
    for _ in range(n_micro * (x.shape[0] // 1024)): g._add_outer_(gW, gz, xs)
timed("head: dW accumulated by _add_outer_ (fp32-output addmm on CUDA)", accumulate_library, n_micro)
def matmuls_only():
    for _ in range(n_micro * (x.shape[0] // 1024)):
        zz = xs @ Wc.t(); _ = xs @ Wc.t(); _ = zz @ Wc; _ = zz.t() @ xs
timed("head: its four matrix products alone", matmuls_only, n_micro)
def elementwise_only():
    for _ in range(n_micro * (x.shape[0] // 1024)):
        z = gz.float(); l = torch.logsumexp(z, -1); d = z.sub_(l[:, None]); e = -(d.exp() * d).sum(-1)
timed("head: forward's fp32 elementwise passes alone", elementwise_only, n_micro)
opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=dev == "cuda")
for q in model.parameters(): q.grad = torch.zeros_like(q)
timed("optimizer: fused AdamW step", opt.step)
print(f"backbone {t_bb / t_full:.0%} of scoring+loss, head {t_head / t_full:.0%}, rest {(t_full - t_bb - t_head) / t_full:.0%}", flush=True)
