#!/usr/bin/env python
"""GPU: does a new micro-batch width cost the scoring pass extra (a development tool)?

Kernels built per shape, such as cuDNN's attention graphs (PyTorch prefers cuDNN attention on Hopper when its cuDNN is
recent), make the first forward+backward at each new width slower than a later one at the same width. This runs the
training's scoring pass (`compute_logprobs_for_tokens`, gradients on, bf16 autocast) over micro-batches of long-tailed
widths twice, with each `--pad-to-multiple` and attention backend, and packed (`pack=True`: one row of real tokens a
micro-batch, variable-length attention), and prints the seconds of the first visit of the widths against the second.

    python benchmarks/tools/scoring_widths.py --shape qwen2.5-1.5b --micro 16 --steps 3
    python benchmarks/tools/scoring_widths.py --quick        # a CPU check that it runs (SmolLM2 shape, tiny sizes)
"""
import argparse, contextlib, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_grpo import shape_dir, row_lengths

ap = argparse.ArgumentParser()
ap.add_argument("--shape", default="qwen2.5-1.5b"); ap.add_argument("--micro", type=int, default=16)
ap.add_argument("--rows", type=int, default=128); ap.add_argument("--T", type=int, default=1024)
ap.add_argument("--steps", type=int, default=3, help="steps' worth of long-tailed lengths (one draw a step, as bench_grpo)")
ap.add_argument("--multiples", type=int, nargs="+", default=[1, 64])
ap.add_argument("--quick", action="store_true", help="CPU plumbing check: SmolLM2-135M shape, 8 rows, 16 tokens, one step")
a = ap.parse_args()
if a.quick: a.shape, a.micro, a.rows, a.T, a.steps = "smollm2-135m", 4, 8, 16, 1
dev = "cuda" if torch.cuda.is_available() and not a.quick else "cpu"
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
from rlprims.generation import compute_logprobs_for_tokens, tokenize_prompts
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from torch.nn.attention import sdpa_kernel, SDPBackend
d = shape_dir(a.shape)
print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
      f"SDPA priority {getattr(torch._C, '_get_sdp_priority_order', lambda: 'unknown')()}", flush=True)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d)).to(dev).train()   # fp32 weights, bf16 autocast: bf16-mixed
tok = AutoTokenizer.from_pretrained(d)
pids, pmask = tokenize_prompts(tok, [f"What is {i} + {2 * i + 3}? Answer with just the number." for i in range(a.rows // 8)], n=8)
backends = {"default": contextlib.nullcontext, "efficient": lambda: sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION])}
if dev == "cpu": backends.pop("efficient")                # a CUDA kernel

def one_pass(step: int, m: int, pack: bool = False) -> tuple[float, int]:
    "Seconds of one step's scoring (micro-batches of rows of similar length, forward + backward each) and the tokens it computed."
    L = row_lengths(step, a.rows, a.T, "longtail").sort().values   # as the training's length-sorted micro-batches
    c = torch.randint(0, 1000, (a.rows, a.T), device=dev)
    cm = (torch.arange(a.T, device=dev)[None] < L[:, None].to(dev)).float()
    sync(); t0 = time.perf_counter()
    for i in range(0, a.rows, a.micro):                   # backward per micro-batch, as the training does: one graph alive at a time
        r = slice(i, i + a.micro)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):   # bf16-mixed on the GPU; fp32 in the CPU check
            lp = compute_logprobs_for_tokens(model, pids[r], pmask[r], c[r], completion_mask=cm[r], micro_batch_size=a.micro,
                                             requires_grad=True, share_prefix=False, pad_to_multiple=m, pack=pack)
        (lp * cm[r]).sum().backward()
    model.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - t0, int(cm.sum())

one_pass(10_000, 1)                                        # warm-up: allocator, kernels of the common widths
peak = torch.cuda.max_memory_allocated if dev == "cuda" else (lambda: 0)
settings = [(name, ctx, m, False) for name, ctx in backends.items() for m in a.multiples] + [("packed", contextlib.nullcontext, 1, True)]
for name, ctx, m, pack in settings:
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()
    with ctx():
        first = [one_pass(s, m, pack)[0] for s in range(a.steps)]    # widths new to this setting (and mostly to the process)
        again = [one_pass(s, m, pack)[0] for s in range(a.steps)]    # the same widths again
    print(f"attention {name:9s} pad_to_multiple {m:3d}: first visit {' '.join(f'{t:.2f}' for t in first)} s, "
          f"again {' '.join(f'{t:.2f}' for t in again)} s, peak {peak() / 2**30:.2f} GiB", flush=True)
