#!/usr/bin/env python
"""Scoring a long-tailed batch: micro-batches of rows in order vs of length-sorted rows (forward + backward), same model.

    python benchmarks/tools/length_grouping.py [--rows 32] [--T 128] [--micro 8] [--device cpu]

Lengths are bench_grpo's long-tailed draw (log-normal, median T/4, 10% at the cap). Prints the padded tokens each way
(rows x width, summed over micro-batches), the median time of 3 runs each, and that the log-probs agree.
"""
import argparse, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch
from bench_grpo import row_lengths
from rlprims.generation import load_model, load_tokenizer, tokenize_prompts, compute_logprobs_for_tokens, length_sorted
from rlprims.training import create_addition_dataset

p = argparse.ArgumentParser()
p.add_argument("--rows", type=int, default=32); p.add_argument("--T", type=int, default=128); p.add_argument("--micro", type=int, default=8)
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
a = p.parse_args()
if a.rows % 8: sys.exit(f"length_grouping: --rows {a.rows} must be a multiple of 8 (8 samples per prompt)")
torch.manual_seed(0)
model, tok = load_model(None, dtype="float32", device_map=a.device), load_tokenizer()
pids, pmask = tokenize_prompts(tok, [x["prompt"] for x in create_addition_dataset(a.rows // 8, seed=0)], n=8)
L = row_lengths(0, a.rows, a.T, "longtail")
mask = (torch.arange(a.T) < L[:, None]).float()
ids = torch.randint(0, tok.vocab_size, (a.rows, a.T))
padded = lambda order: sum(int(L[order[i:i + a.micro]].max()) * len(order[i:i + a.micro]) for i in range(0, a.rows, a.micro))
def run(sort):
    t, out = [], None
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        if a.device == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter()
        lp = compute_logprobs_for_tokens(model, pids, pmask, ids, completion_mask=mask, micro_batch_size=a.micro, requires_grad=True,
                                         share_prefix=False, sort_by_length=sort)
        (lp * mask).sum().backward()
        if a.device == "cuda": torch.cuda.synchronize()
        t.append(time.perf_counter() - t0); out = lp.detach() * mask
    return statistics.median(t), out
(t_in, lp_in), (t_sorted, lp_sorted) = run(False), run(True)
print(f"{a.rows} rows, lengths mean {L.float().mean():.0f}, max {int(L.max())} of {a.T}, micro-batches of {a.micro}, on {a.device}")
print(f"tokens computed: {padded(torch.arange(a.rows))} in order, {padded(length_sorted(mask))} length-sorted ({int(L.sum())} real)")
print(f"forward+backward: {t_in:.3f} s in order, {t_sorted:.3f} s length-sorted = {t_sorted / t_in:.2f}x; "
      f"max |log-prob difference| {(lp_in - lp_sorted).abs().max().item():.2e}")
