#!/usr/bin/env python
"""Count the operators one decode step of `generate_batch_fast` runs, per decoder layer, by architecture (CPU, eager).

    python benchmarks/tools/count_decode_ops.py [--shape qwen2.5-1.5b smollm2-135m] [--refill [--no-prompt-cache]]

`--refill` counts one refill instead (`_refill`: the waiting rows' prompts into done rows' caches, and their first
tokens), which runs eagerly on a GPU too, outside the CUDA graphs: per layer, and the part outside the layers. By default
the prompts' keys and values are copied from `generate_batch_fast`'s prompt cache; `--refill --no-prompt-cache` counts
a refill that runs its prompt pass (as every refill did before the cache).

Each launching operator is a GPU kernel inside the step's CUDA graph, and at small batches a decode step costs about a
few microseconds per kernel more than its bytes. The count is the difference between a 4-layer and a 2-layer copy of
the shape (narrow, so it runs in seconds), halved. On a CPU the RMSNorms run unfused and attention is two matrix
products; on CUDA the norms are one `F.rms_norm` each and attention one Triton kernel.
"""
import argparse, collections, sys
import torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from torch.profiler import profile, ProfilerActivity
from transformers import AutoConfig, AutoModelForCausalLM
from bench_grpo import shape_dir, SHAPES
from rlprims.core import GenerationConfig
from rlprims.generation import load_tokenizer, tokenize_prompts
import rlprims.fast_decode as fast_decode

METADATA = {"aten::view", "aten::transpose", "aten::slice", "aten::unsqueeze", "aten::alias", "aten::reshape", "aten::expand",
            "aten::select", "aten::as_strided", "aten::t", "aten::detach"}   # no kernel of their own

def ops_per_call(shape: str, layers: int, what: str = "_decode_step", prompt_cache: bool = True) -> collections.Counter:
    "Top-level aten operators of one call of `fast_decode.<what>` (a decode step, or `_refill`) in a narrow `layers`-layer copy of `shape`."
    d = shape_dir(shape)
    cfg = AutoConfig.from_pretrained(d)
    cfg.update(dict(num_hidden_layers=layers, hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=32, vocab_size=49152))
    if getattr(cfg, "layer_types", None): cfg.layer_types = ["full_attention"] * layers
    model, tok = AutoModelForCausalLM.from_config(cfg), load_tokenizer(d)
    pids, pmask = tokenize_prompts(tok, ["Hello there", "Good morning"], n=4)   # 8 rows, two distinct prompts
    # a refill: 8 rows through 4 slots, the first rows done after 1-2 tokens
    kw = {} if what == "_decode_step" else dict(slots=4, refill_min=2, forced_lengths=torch.tensor([1, 2, 3, 3, 3, 3, 3, 3]), prompt_cache=prompt_cache)
    seen, fn = [], getattr(fast_decode, what)
    def counted(*args):
        with profile(activities=[ProfilerActivity.CPU]) as prof: fn(*args)
        seen.append(collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                                        and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))))
    setattr(fast_decode, what, counted)
    try: fast_decode.generate_batch_fast(model, tok, pids, pmask, GenerationConfig(max_new_tokens=3, min_new_tokens=3), static=True, **kw)
    finally: setattr(fast_decode, what, fn)
    return seen[-1]

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--shape", nargs="+", default=["qwen2.5-1.5b"], choices=list(SHAPES))
    p.add_argument("--refill", action="store_true", help="count one refill instead of one decode step")
    p.add_argument("--no-prompt-cache", action="store_true", help="with --refill: a refill that runs its prompt pass")
    a = p.parse_args()
    what = "_refill" if a.refill else "_decode_step"
    for shape in a.shape:
        two, four = (ops_per_call(shape, k, what, not a.no_prompt_cache) for k in (2, 4))
        layer = {k: (four[k] - two[k]) / 2 for k in four if four[k] != two[k]}
        launching = {k: v for k, v in layer.items() if k not in METADATA}
        outside, L = sum(two.values()) - 2 * sum(layer.values()), AutoConfig.from_pretrained(shape_dir(shape)).num_hidden_layers
        print(f"{shape}, {'a refill' if a.refill else 'a decode step'}: {sum(layer.values()):.0f} operators per decoder layer, "
              f"{sum(launching.values()):.0f} of them launch work (CPU path), {outside:.0f} outside the layers; "
              f"{outside + L * sum(layer.values()):.0f} in all at {L} layers. Per layer: "
              + ", ".join(f"{k[6:]} {v:g}" for k, v in sorted(launching.items(), key=lambda kv: -kv[1])))
