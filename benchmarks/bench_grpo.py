#!/usr/bin/env python
"""One GRPO step, rlprims vs TRL's GRPOTrainer, side by side (see benchmarks/README.md).

Both libraries get the same model (same seed), prompts, `num_generations`, sampling settings, a forced generation
length (min_new_tokens = max_new_tokens), full fine-tuning, AdamW at the same learning rate, no vLLM, no gradient
checkpointing, and one on-policy update per batch. Each library runs in its own child process (so peak memory is its
own); the parent prints the table.

    python benchmarks/bench_grpo.py --device cpu      # the main job's settings: embedded SmolLM2-135M, fp32, 8x8x24, lr 1e-5, micro 32, batch-std advantages
    python benchmarks/bench_grpo.py --device cuda     # SmolLM2-135M shape, random weights, bf16-mixed (--precision bf16: pure bf16), 64x8x256
    python benchmarks/bench_grpo.py --quick           # a tiny 2-step CPU smoke run (CI)
    python benchmarks/bench_grpo.py --device cuda --shape qwen2.5-1.5b --T 1024 --lengths longtail   # one cell of matrix.py

`--shape` builds a randomly initialised model of a known architecture from a config written here (no hub); the tokenizer is
the embedded model's. `--lengths longtail` gives every row its own completion length (log-normal, median a quarter of the
budget, 10% at the cap, the same fixed-seed draw for both libraries): rlprims through `generate_batch_fast(forced_lengths=)`,
TRL through a logits processor on `model.generate` that ends each row with EOS at its length.
"""
from __future__ import annotations
import argparse, functools, heapq, json, math, os, platform, resource, statistics, subprocess, sys, tempfile, time
from datetime import date
from pathlib import Path

RESULT = "BENCH_RESULT "
HERE = Path(__file__).resolve().parent

# Architectures by their published sizes (random weights: the cost does not depend on them). Token ids come from the
# embedded SmolLM2 tokenizer (vocabulary 49152, inside every vocabulary here), so bos/eos/pad are its ids.
SHAPES = {
    "smollm2-135m": None,   # the embedded model's own config.json
    "qwen2.5-1.5b": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=1536, intermediate_size=8960,
                         num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                         rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, vocab_size=151936, use_sliding_window=False,
                         hidden_act="silu"),
    "qwen3-8b": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=4096, intermediate_size=12288,
                     num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
                     rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, vocab_size=151936, use_sliding_window=False,
                     hidden_act="silu"),
    "llama3.1-8b": dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096, intermediate_size=14336,
                        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                        rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, vocab_size=128256, hidden_act="silu"),
}

def shape_dir(shape: str) -> str:
    "A folder with `shape`'s config.json and the embedded tokenizer (written once into a temp folder)."
    import shutil
    from rlprims.models import fetch_embedded_model
    dev_copy = HERE.parent / ".dev" / "smollm2"              # config + tokenizer, for machines without the embedded model
    src = dev_copy if (dev_copy / "tokenizer.json").exists() else Path(fetch_embedded_model(verbose=False))
    if SHAPES[shape] is None: return str(src)
    d = Path(tempfile.gettempdir()) / f"rlprims-shape-{shape}"
    d.mkdir(exist_ok=True)
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name == "chat_template.jinja": shutil.copy(f, d / f.name)
    ids = json.loads((src / "config.json").read_text())
    cfg = dict(SHAPES[shape], bos_token_id=ids.get("bos_token_id"), eos_token_id=ids.get("eos_token_id"), pad_token_id=ids.get("pad_token_id"),
               torch_dtype="bfloat16")
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    return str(d)

def row_lengths(step: int, n: int, T: int, kind: str):
    "Completion lengths `[n]` of one step: all `T` (forced), or long-tailed: log-normal, median T/4, 10% at the cap T (fixed seed per step)."
    import numpy as np, torch
    if kind == "forced": return torch.full((n,), T, dtype=torch.long)
    sigma = math.log(4) / 1.2815515655446004                  # P(length >= T) = P(z >= ln 4 / sigma) = 10%
    x = np.exp(np.random.default_rng(1000 + step).normal(math.log(T / 4), sigma, n))
    return torch.tensor(np.clip(np.round(x), 1, T), dtype=torch.long)


def settings(a) -> dict:
    "The run's settings: the device's defaults, then whatever the flags say."
    if a.quick: s = dict(device="cpu", prompts=2, G=4, T=8, lr=2e-5, micro=8, steps=2, warmup=0, dtype="float32", scale="group")
    elif a.device == "cpu": s = dict(device="cpu", prompts=8, G=8, T=24, lr=1e-5, micro=32, steps=3, warmup=1, dtype="float32", scale="batch")
    else: s = dict(device="cuda", prompts=64, G=8, T=256, lr=2e-5, micro=64, steps=5, warmup=2, dtype="bfloat16", scale="group")
    for k in ("prompts", "G", "T", "lr", "micro", "steps", "warmup"):
        if getattr(a, k) is not None: s[k] = getattr(a, k)
    s["precision"] = a.precision or ("fp32" if s["device"] == "cpu" else "bf16-mixed")
    s["dtype"] = "bfloat16" if s["precision"] == "bf16" else "float32"   # mixed: both libraries hold fp32 weights and compute in bf16
    s["model"] = "embedded" if s["device"] == "cpu" else "random"
    if a.model_dir: s["model_dir"] = a.model_dir
    if a.shape: s.update(shape=a.shape, model="random")
    s.update(lengths=a.lengths, lora=a.lora, grad_ckpt=a.grad_ckpt, mem_fraction=a.mem_fraction, fused=a.fused, pad_to_multiple=a.pad_to_multiple, pack=a.pack, slots=a.slots)
    return s


# ----------------------------------------------------------------------------------------------------------------
# shared by both workers

def sync(dev):
    import torch
    if dev == "cuda": torch.cuda.synchronize()

def load(s):
    "Model and tokenizer: the embedded SmolLM2 (CPU), or a randomly initialised model of its config (CUDA)."
    import torch
    from rlprims.generation import load_model, load_tokenizer, fetch_embedded_model
    torch.manual_seed(0)
    if s["model"] == "embedded":
        return load_model(None, dtype=s["dtype"], device_map=s["device"]), load_tokenizer()
    from transformers import AutoConfig, AutoModelForCausalLM
    if s.get("shape"): d = shape_dir(s["shape"])
    else:
        d = s.get("model_dir") or str(HERE.parent / ".dev" / "smollm2")
        if not (Path(d) / "config.json").exists(): d = str(fetch_embedded_model())
    cfg = AutoConfig.from_pretrained(d)
    dtype = torch.bfloat16 if s["lora"] and s["precision"] != "fp32" else getattr(torch, s["dtype"])   # a LoRA base: frozen, in the compute dtype
    with torch.device(s["device"]): model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)        # initialised on the device
    return model, load_tokenizer(d)

def lora_config():
    from peft import LoraConfig
    from rlprims.models import find_lora_targets
    return lambda model: LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", target_modules=find_lora_targets(model))

def cap_memory(s):
    "Emulate a smaller GPU: let this process allocate only `mem_fraction` of the device's memory."
    import torch
    if s["device"] == "cuda" and s.get("mem_fraction"): torch.cuda.set_per_process_memory_fraction(s["mem_fraction"])

def dataset(s):
    from rlprims.training import create_addition_dataset
    return create_addition_dataset(s["prompts"] * (s["steps"] + s["warmup"]), seed=0)

def _last_int(text):
    import re
    m = re.findall(r"-?\d+", text.replace(",", ""))
    return m[-1] if m else None

def reward_value(text: str, answer: str) -> float:
    "1 for the right sum, plus 0.1 x the fraction of digits (so random models get rewards that vary)."
    return float(_last_int(text) == answer) + 0.1 * sum(c.isdigit() for c in text) / max(len(text), 1)

def peak_memory(dev) -> float:
    "Peak GiB: allocated GPU memory on CUDA, the process' resident set on CPU."
    import torch
    if dev == "cuda": return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

def reset_peak(dev):
    import torch
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()

class PhasePeaks:
    "Peak GPU memory of each timed phase (and of the whole run): the peak counter is read and reset around the phase."
    def __init__(self, dev): self.dev, self.before, self.phases = dev, 0.0, {}
    def __enter__(self):
        if self.dev == "cuda": self.before = max(self.before, peak_memory(self.dev)); reset_peak(self.dev)
    def exit(self, name):
        if self.dev == "cuda":
            p = peak_memory(self.dev); self.phases[name] = max(self.phases.get(name, 0.0), p); self.before = max(self.before, p); reset_peak(self.dev)
    def overall(self): return max(self.before, peak_memory(self.dev))

def emit(d):
    print(RESULT + json.dumps(d), flush=True)


# ----------------------------------------------------------------------------------------------------------------
# rlprims worker

def run_rlprims(s, a):
    import torch
    import rlprims.rollouts as R
    from rlprims.core import GenerationConfig, Hooks
    from rlprims.generation import generate_batch, tokenize_prompts
    from rlprims.algorithms import get_algorithm_config
    from rlprims.training import training_iteration, create_runner
    from rlprims.precision import create_precision, prepare_for_training
    try: from rlprims.fast_decode import generate_batch_fast
    except ImportError: generate_batch_fast = None
    dev = s["device"]
    cap_memory(s)
    model, tok = load(s)
    if s["lora"]:
        from peft import get_peft_model
        model = get_peft_model(model, lora_config()(model))
    prec = create_precision(s["precision"], dev)
    model, sampler = prepare_for_training(model, prec)       # bf16-mixed: fp32 master weights, a bf16 copy to sample from
    data = dataset(s)
    gen = GenerationConfig(max_new_tokens=s["T"], min_new_tokens=s["T"], temperature=1.0, top_p=1.0, top_k=0)
    cfg = get_algorithm_config(0, "grpo", learning_rate=s["lr"], kl_coef=0.0, micro_batch_size=s["micro"], scale_rewards=s["scale"])
    if s["grad_ckpt"]:
        from rlprims.precision import enable_activation_checkpointing
        enable_activation_checkpointing(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s["lr"], weight_decay=0.0, **({"fused": True} if dev == "cuda" else {}))
    if generate_batch_fast is None and (a.fused != "default" or s["lengths"] != "forced"):
        sys.exit("bench_grpo: --fused and --lengths longtail need rlprims.fast_decode, which did not import")
    if a.eager and s["lengths"] != "forced": sys.exit("bench_grpo: --lengths longtail needs generate_batch_fast, not --eager")
    if s["pad_to_multiple"] is not None:                      # the scoring pass's widths rounded up (the library's default: 64 on CUDA, 1 on CPU)
        import rlprims.training as RT
        RT.compute_logprobs_for_tokens = functools.partial(RT.compute_logprobs_for_tokens, pad_to_multiple=s["pad_to_multiple"])
    if a.fused != "default":                                  # the decode step's fused kernels: all, the rotary embedding only, or none
        kw = dict(layers=dict(fused_layers=True, fused_rotary=True), rotary=dict(fused_layers=False, fused_rotary=True), none=dict(fused_layers=False, fused_rotary=False))[a.fused]
        generate_batch_fast = functools.update_wrapper(functools.partial(generate_batch_fast, **kw), generate_batch_fast)
    if s["slots"]:                                            # decode that many rows at a time, refilling done rows' places
        if generate_batch_fast is None or a.eager: sys.exit("bench_grpo: --slots needs generate_batch_fast, not --eager")
        generate_batch_fast = functools.update_wrapper(functools.partial(generate_batch_fast, slots=s["slots"]), generate_batch_fast)
    generator = generate_batch_fast if (generate_batch_fast is not None and not a.eager) else generate_batch
    decodes = set()                                           # (rows, rows decoded at once) of every static decode: slots="auto" may refill
    if generate_batch_fast is not None:
        import rlprims.fast_decode as FD
        new_state = FD._new_decode_state
        FD._new_decode_state = lambda N, *args, slots=None, **kw: decodes.add((N, slots or N)) or new_state(N, *args, slots=slots, **kw)
    if s["lengths"] != "forced":
        calls = []
        def generator(model, tokenizer, pids, pmask, config, compute_logprobs=True, **kw):   # this step's row lengths
            calls.append(1)
            return generate_batch_fast(model, tokenizer, pids, pmask, config, compute_logprobs, forced_lengths=row_lengths(len(calls) - 1, len(pids), s["T"], s["lengths"]), **kw)
    runner = create_runner(model, precision=prec, sampler_model=None if sampler is model else sampler, pack=s["pack"])
    rec = {}
    peaks = PhasePeaks(dev)
    def timed(name, fn):
        def wrapper(*args, **kw):
            sync(dev); t0 = time.perf_counter(); peaks.__enter__()
            out = fn(*args, **kw)
            sync(dev); rec[name] = rec.get(name, 0.0) + time.perf_counter() - t0; peaks.exit(name)
            return out
        return wrapper
    R.compute_logprobs_for_tokens = timed("logprobs", R.compute_logprobs_for_tokens)   # reference passes, if any
    rewards = {"answer": lambda r: reward_value(r.generation.text, r.metadata["answer"])}
    steps = []
    reset_peak(dev)
    for i in range(s["warmup"] + s["steps"]):
        rec.clear()
        prompts = data[i * s["prompts"]:(i + 1) * s["prompts"]]
        sync(dev); t0, c0 = time.perf_counter(), time.process_time()
        st = training_iteration(model, tok, prompts, gen, cfg, rewards, opt, num_generations=s["G"], step=i,
                                hooks=Hooks(generator=timed("generation", generator)), runner=runner)
        sync(dev); total = time.perf_counter() - t0
        row = dict(total=total, generation=rec.get("generation", 0.0), logprobs=rec.get("logprobs", 0.0),
                   update=total - st.metrics["time_rollout"], tokens=st.metrics["tokens"], cpu=time.process_time() - c0)
        row["other"] = total - row["generation"] - row["logprobs"] - row["update"]
        steps.append(row)
        print(f"rlprims step {i} {'(warm-up)' if i < s['warmup'] else ''}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    peak = peaks.overall()
    if a.profile: profile_step(model, tok, data[:s["prompts"]], gen, cfg, rewards, opt, s, generator, runner)
    out = dict(lib="rlprims", generator="generate_batch_fast" if s["lengths"] != "forced" else generator.__name__, steps=steps[s["warmup"]:], peak_gib=peak,
               phase_peak_gib=peaks.phases, decodes=sorted(decodes))
    del opt; model.zero_grad(set_to_none=True)
    if dev == "cuda": torch.cuda.empty_cache()
    # plain transformers generate at the same batch, and the rlprims generator alone
    texts = [d["prompt"] for d in data[:s["prompts"]]]
    pids, pmask = tokenize_prompts(tok, texts, n=s["G"])
    out["prompt_len"] = pmask.sum(-1).float().mean().item()
    if a.gen_reps and not a.no_generate_baseline: out["generate_tps"] = plain_generate_tps(sampler, tok, pids, pmask, s, a.gen_reps)
    def gen_time(**kw):
        "Median seconds and tokens of the rlprims generator alone at this batch."
        torch.manual_seed(0); t = []
        for _ in range(max(a.gen_reps, 1)):
            sync(dev); t0 = time.perf_counter(); b = generate_batch_fast(sampler, tok, pids, pmask, gen, **kw) if kw else generator(sampler, tok, pids, pmask, gen)
            sync(dev); t.append(time.perf_counter() - t0)
        return statistics.median(t), b.completion_mask.sum().item()
    sec, n = gen_time()
    out["generator_tps"] = n / sec
    if s["lengths"] != "forced" and dev == "cuda":   # the same lengths with compaction off; the same tokens at equal lengths
        L = row_lengths(0, len(pids), s["T"], s["lengths"])
        sec_lt, n_lt = gen_time(forced_lengths=L, slots=None)   # all rows at once (also under --slots)
        sec_static, _ = gen_time(forced_lengths=L, slots=None, compact=False)
        equal = torch.full_like(L, round(L.float().mean().item()))
        sec_eq, n_eq = gen_time(forced_lengths=equal, slots=None)
        out["longtail"] = dict(tokens=n_lt, mean_length=L.float().mean().item(), max_length=int(L.max()), at_cap=(L == s["T"]).float().mean().item(),
                               seconds=sec_lt, seconds_no_compaction=sec_static, seconds_equal_lengths=sec_eq, tokens_equal=n_eq,
                               cost_vs_equal=(sec_lt / n_lt) / (sec_eq / n_eq), floor_vs_equal=longtail_floor_ratio(sampler, L, out["prompt_len"]))
        if s["slots"]:                                       # the same lengths through `slots` rows with refills (the generator's setting)
            sec_rf, _ = gen_time(forced_lengths=L)
            sec_eq_rf, n_eq_rf = gen_time(forced_lengths=equal)   # equal lengths through the same slots: the same concurrency
            out["longtail"].update(slots=s["slots"], seconds_refill=sec_rf, cost_vs_equal_refill=(sec_rf / n_lt) / (sec_eq / n_eq),
                                   seconds_equal_refill=sec_eq_rf, cost_vs_equal_same_slots=(sec_rf / n_lt) / (sec_eq_rf / n_eq_rf),
                                   floor_same_slots=longtail_floor_ratio(sampler, L, out["prompt_len"], s["slots"]))
            out["longtail"].update(refill_parts(FD, lambda: generate_batch_fast(sampler, tok, pids, pmask, gen, forced_lengths=L), dev),
                                   steps_equal_refill=refill_parts(FD, lambda: generate_batch_fast(sampler, tok, pids, pmask, gen, forced_lengths=equal), dev)["steps"])
    out.update(roofline=roofline(sampler, s, out["prompt_len"], dev), n_rows=len(pids), T=s["T"])
    emit(out)

def refill_parts(FD, decode, dev) -> dict:
    "Run `decode()` once more, timing its refills (each between two syncs): seconds in `_refill`, how many, and the decode loop's steps."
    import time
    spent, states, refill, new_state = [], [], FD._refill, FD._new_decode_state
    def timed(model, S):
        sync(dev); t0 = time.perf_counter(); refill(model, S); sync(dev); spent.append(time.perf_counter() - t0)
    FD._refill = timed
    FD._new_decode_state = lambda *args, **kw: states.append(new_state(*args, **kw)) or states[-1]
    try: decode()
    finally: FD._refill, FD._new_decode_state = refill, new_state
    return dict(refill_seconds=sum(spent), refills=len(spent), steps=int(states[-1].t) - 1)

def plain_generate_tps(model, tok, pids, pmask, s, reps):
    "Tokens/s of `model.generate` (sampling, forced length) at the benchmark's batch."
    import torch
    dev = s["device"]
    ids, am = pids.to(dev), pmask.to(dev)
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, pad_token_id=tok.pad_token_id)
    model.eval()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=am, max_new_tokens=s["T"], min_new_tokens=s["T"], **kw)   # warm-up (allocator)
        t = []
        for _ in range(reps):
            sync(dev); t0 = time.perf_counter()
            o = model.generate(input_ids=ids, attention_mask=am, max_new_tokens=s["T"], min_new_tokens=s["T"], **kw)
            sync(dev); t.append(time.perf_counter() - t0)
    model.train()
    return (o.shape[1] - ids.shape[1]) * ids.shape[0] / statistics.median(t)

def decode_bytes(model) -> tuple:
    "`(weight bytes read per decode step, KV-cache bytes per token, parameters whose products a step computes, config, head size)`."
    c = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    el = next(model.parameters()).element_size()
    seen, wbytes, nparams = set(), 0, 0
    for p in model.parameters():
        key = id(p) if p.device.type == "meta" else p.data_ptr()   # meta tensors (no storage) all point at 0
        if key in seen: continue
        seen.add(key); wbytes += p.numel() * el; nparams += p.numel()
    emb = c.vocab_size * c.hidden_size                # an untied input embedding is only looked up, never read whole
    if not getattr(c, "tie_word_embeddings", False): nparams, wbytes = nparams - emb, wbytes - emb * el
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return wbytes, 2 * c.num_hidden_layers * c.num_key_value_heads * hd * el, nparams, c, hd

def roofline(model, s, prompt_len, dev) -> dict:
    "Decode floor at this batch: weights + KV cache read per step over measured bandwidth, FLOPs over measured peak."
    wbytes, kv_per_tok, nparams, c, hd = decode_bytes(model)
    N, T = s["prompts"] * s["G"], s["T"]
    steps = [prompt_len + t for t in range(1, T)]                 # tokens attended by each decode step
    bytes_total = sum(wbytes + N * L * kv_per_tok for L in steps)
    flops_total = sum(2 * N * nparams + 4 * N * L * c.num_hidden_layers * c.num_attention_heads * hd for L in steps)
    bw, peak = measure_bandwidth(dev), measure_matmul(dev, next(model.parameters()).dtype)
    return dict(weight_gb=wbytes / 1e9, kv_gb_last_step=N * steps[-1] * kv_per_tok / 1e9, bytes_total_gb=bytes_total / 1e9,
                tflop_total=flops_total / 1e12, bandwidth_gbs=bw / 1e9, peak_tflops=peak / 1e12,
                t_mem=bytes_total / bw, t_flop=flops_total / peak, decode_steps=T - 1)

def schedule_bytes(lengths, slots: int | None, wbytes: float, kv_per_tok: float, prompt_len: float) -> float:
    """Bytes a decoder at the memory roofline reads for rows of `lengths` decoded `slots` at a time (None: all at once), a
    freed place taken by the next waiting row at the next step: each step reads the weights and its live rows' caches
    (a row's first token comes from its prompt pass; its k-th decode step attends `prompt_len + k` positions)."""
    queue, n = [int(x) for x in lengths], slots or len(lengths)
    live, t, total, starts = [], 0, 0.0, 0                   # live: heap of (last step, first step - 1) of the decoding rows
    while live or queue:
        while queue and len(live) < n:
            L = queue.pop(0)
            if L > 1: heapq.heappush(live, (t + L - 1, t)); starts += t
        if not live: continue
        t += 1
        total += wbytes + kv_per_tok * (len(live) * (prompt_len + t) - starts)
        while live and live[0][0] <= t: starts -= heapq.heappop(live)[1]
    return total

def longtail_floor_ratio(model, lengths, prompt_len: float, slots: int | None = None) -> float:
    """What a long-tailed token costs over an equal-length one at the memory roofline (`schedule_bytes`), both decoded
    `slots` rows at a time (None: all at once, so the long-tailed batch takes as many steps as its longest row)."""
    wbytes, kv_per_tok, *_ = decode_bytes(model)
    L = [int(x) for x in lengths]; N, eq = len(L), round(sum(L) / len(L))
    tail, equal = (schedule_bytes(x, slots, wbytes, kv_per_tok, prompt_len) for x in (L, [eq] * N))
    return (tail / sum(L)) / (equal / (N * eq))

def measure_bandwidth(dev) -> float:
    "Bytes/s of a large copy on `dev` (bytes read + written)."
    import torch
    x = torch.empty(2**28 if dev == "cuda" else 2**25, dtype=torch.float32, device=dev); y = torch.empty_like(x)
    for _ in range(2): y.copy_(x)
    sync(dev); t0 = time.perf_counter(); n = 10
    for _ in range(n): y.copy_(x)
    sync(dev)
    return 2 * x.numel() * 4 * n / (time.perf_counter() - t0)

def measure_matmul(dev, dtype) -> float:
    "FLOP/s of a large square matrix product in `dtype` (fp32 on the CPU)."
    import torch
    n = 8192 if dev == "cuda" else 1024
    dt = dtype if dev == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=dev, dtype=dt), torch.randn(n, n, device=dev, dtype=dt)
    for _ in range(2): a @ b
    sync(dev); t0 = time.perf_counter(); k = 10
    for _ in range(k): a @ b
    sync(dev)
    return 2 * n ** 3 * k / (time.perf_counter() - t0)

def profile_step(model, tok, prompts, gen, cfg, rewards, opt, s, generator, runner):
    "One more rlprims step under torch.profiler, with the timed steps' runner (so their precision); prints the ops that take the most device (or CPU) time."
    from torch.profiler import profile, ProfilerActivity
    from rlprims.core import Hooks
    from rlprims.training import training_iteration
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if s["device"] == "cuda" else [])
    with profile(activities=acts) as prof:
        training_iteration(model, tok, prompts, gen, cfg, rewards, opt, num_generations=s["G"], hooks=Hooks(generator=generator), runner=runner)
        sync(s["device"])
    key = "cuda_time_total" if s["device"] == "cuda" else "cpu_time_total"
    try: print(prof.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=60), flush=True)
    except Exception as e: print(f"profile table failed: {e}")


# ----------------------------------------------------------------------------------------------------------------
# TRL worker

def run_trl(s, a):
    import torch
    try:
        import trl
        from trl import GRPOConfig, GRPOTrainer
        from datasets import Dataset
    except ImportError as e:
        print(f"TRL is not installed ({e}); skipping it. `pip install trl datasets` to compare.", flush=True)
        emit(dict(lib="trl", skipped=str(e))); return
    from transformers import TrainerCallback, LogitsProcessor, LogitsProcessorList
    dev = s["device"]
    cap_memory(s)
    model, tok = load(s)
    data = dataset(s)
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": d["prompt"]}], "answer": d["answer"]} for d in data])
    def answer_reward(completions, answer, **kw):
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return [reward_value(t, x) for t, x in zip(texts, answer)]
    n = s["prompts"] * s["G"]
    if n % s["micro"]: raise ValueError(f"bench: {n} completions per step is not a multiple of --micro {s['micro']}")
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"), per_device_train_batch_size=s["micro"],
        gradient_accumulation_steps=n // s["micro"], num_generations=s["G"], max_completion_length=s["T"],
        generation_kwargs={"min_new_tokens": s["T"]}, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=s["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch_fused" if dev == "cuda" else "adamw_torch", beta=0.0, epsilon=0.2, loss_type="dapo",
        scale_rewards=s["scale"], num_iterations=1, bf16=dev == "cuda" and s["precision"] in ("bf16-mixed", "bf16"), fp16=False,
        use_cpu=dev == "cpu", gradient_checkpointing=s["grad_ckpt"], use_vllm=False, max_steps=s["warmup"] + s["steps"],
        shuffle_dataset=False, logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
        log_completions=False, seed=0, dataloader_num_workers=0)
    rec, steps = {}, []
    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            sync(dev); rec.clear(); rec["t0"], rec["c0"] = time.perf_counter(), time.process_time()
        def on_step_end(self, args, state, control, **kw):
            sync(dev); total = time.perf_counter() - rec["t0"]
            row = dict(total=total, generation=rec.get("generation", 0.0), logprobs=rec.get("logprobs", 0.0),
                       update=total - rec.get("rollout", 0.0), tokens=rec.get("tokens", 0), cpu=time.process_time() - rec["c0"])
            row["other"] = total - row["generation"] - row["logprobs"] - row["update"]
            steps.append(row)
            i = len(steps) - 1
            print(f"trl step {i} {'(warm-up)' if i < s['warmup'] else ''}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
    if s["lengths"] != "forced":   # each row ends with EOS at its length: the same lengths, step by step, as rlprims' rows
        eos, calls = tok.eos_token_id, []
        class EndAtLength(LogitsProcessor):
            def __init__(self, lengths, start): self.lengths, self.start = lengths, start
            def __call__(self, input_ids, scores):
                end = (self.lengths.to(scores.device) - 1) == (input_ids.shape[1] - self.start)
                forced = torch.full_like(scores, float("-inf")); forced[:, eos] = 0.0
                return torch.where(end[:, None], forced, scores)
        plain_generate = model.generate
        def generate(*args, **kw):
            ids = kw.get("input_ids", args[0] if args else None)
            calls.append(1)
            L = row_lengths(len(calls) - 1, ids.shape[0], s["T"], s["lengths"])
            return plain_generate(*args, logits_processor=LogitsProcessorList([EndAtLength(L, ids.shape[1])]), **kw)
        model.generate = generate
    peft = dict(peft_config=lora_config()(model)) if s["lora"] else {}
    trainer = GRPOTrainer(model=model, reward_funcs=[answer_reward], args=args, train_dataset=ds, processing_class=tok, callbacks=[Timer()], **peft)
    peaks = PhasePeaks(dev)
    def timed(name, fn, when=lambda: True):
        def wrapper(*args, **kw):
            if not when(): return fn(*args, **kw)
            if name == "generation": peaks.__enter__()
            sync(dev); t0 = time.perf_counter()
            out = fn(*args, **kw)
            sync(dev); rec[name] = rec.get(name, 0.0) + time.perf_counter() - t0
            if name == "generation": peaks.exit(name)
            if name == "generation": rec["tokens"] = rec.get("tokens", 0) + sum(len(c) for c in out[0])
            return out
        return wrapper
    trainer._generate_single_turn = timed("generation", trainer._generate_single_turn)
    trainer._generate_and_score_completions = timed("rollout", trainer._generate_and_score_completions)
    trainer._get_per_token_logps_and_entropies = timed("logprobs", trainer._get_per_token_logps_and_entropies,
                                                       when=lambda: not torch.is_grad_enabled())
    reset_peak(dev)
    trainer.train()
    emit(dict(lib="trl", version=trl.__version__, steps=steps[s["warmup"]:], peak_gib=peaks.overall(), phase_peak_gib=peaks.phases))


# ----------------------------------------------------------------------------------------------------------------
# parent: run the workers, print the table

def median(rows, k): return statistics.median(r[k] for r in rows) if rows else float("nan")

def tokens_per_second(r, phase):
    "Generated tokens over the seconds of `phase` ('generation' or 'total'), summed over the timed steps."
    return sum(x["tokens"] for x in r["steps"]) / sum(x[phase] for x in r["steps"])

def table(s, res) -> str:
    libs = [l for l in ("rlprims", "trl") if l in res and "steps" in res[l]]
    N, T = s["prompts"] * s["G"], s["T"]
    def row(name, f, fmt="{:.3f}"):
        vals = {l: f(res[l]) for l in libs}
        cells = [fmt.format(vals[l]) for l in libs]
        if len(libs) == 2: cells.append(f"{vals['rlprims'] / vals['trl']:.2f}x" if vals["trl"] else "-")
        return f"| {name} | " + " | ".join(cells) + " |"
    head = "| per step (median of %d) | " % s["steps"] + " | ".join(libs) + (" | rlprims/TRL |" if len(libs) == 2 else " |")
    lines = [head, "|" + " --- |" * (len(libs) + 1 + (len(libs) == 2))]
    lines += [row("step time (s)", lambda r: median(r["steps"], "total")),
              row("  generation (s)", lambda r: median(r["steps"], "generation")),
              row("  extra log-prob passes (s)", lambda r: median(r["steps"], "logprobs")),
              row("  forward+backward+update (s)", lambda r: median(r["steps"], "update")),
              row("  other: tokenize, decode, rewards (s)", lambda r: median(r["steps"], "other")),
              row("generated tokens per step", lambda r: median(r["steps"], "tokens"), "{:,.0f}"),
              row("generated tokens/s (generation phase)", lambda r: tokens_per_second(r, "generation"), "{:,.0f}"),
              row("generated tokens/s (whole step)", lambda r: tokens_per_second(r, "total"), "{:,.0f}"),
              row("peak " + ("GPU memory allocated" if s["device"] == "cuda" else "RSS") + " (GiB)", lambda r: r["peak_gib"], "{:.2f}"),
              row("  the generation phase's peak (GiB)", lambda r: r.get("phase_peak_gib", {}).get("generation", float("nan")), "{:.2f}"),
              row("process CPU time per step (s)", lambda r: median(r["steps"], "cpu") if "cpu" in r["steps"][0] else float("nan"))]
    out = "\n".join(lines)
    r = res.get("rlprims", {})
    if "generator_tps" in r:
        gen_phase = tokens_per_second(r, "generation")
        out += f"\n\nrlprims generator ({r['generator']}) alone: {r['generator_tps']:,.0f} tokens/s; inside the GRPO step: {gen_phase:,.0f} tokens/s"
        if "generate_tps" in r:
            out += (f"\nplain model.generate at batch {N} x {T} forced tokens: {r['generate_tps']:,.0f} tokens/s; "
                    f"the generator alone is {r['generator_tps'] / r['generate_tps']:.2f}x that")
    refilled = [(n, k) for n, k in r.get("decodes", []) if k < n]
    if refilled: out += "\nrows decoded at once, fewer than all (by --slots, or the KV cache of all did not fit; done rows' places refilled): " + ", ".join(f"{k} of {n}" for n, k in refilled)
    if "longtail" in r:
        lt = r["longtail"]
        out += (f"\nlong-tailed lengths (mean {lt['mean_length']:.0f}, max {lt['max_length']}, {lt['at_cap']:.0%} at the cap of {T}): "
                f"{lt['seconds']:.3f} s for {lt['tokens']:,.0f} tokens; {lt['seconds_no_compaction']:.3f} s without compaction; "
                f"{lt['seconds_equal_lengths']:.3f} s for {lt['tokens_equal']:,.0f} tokens at equal lengths: "
                f"a long-tailed token costs {lt['cost_vs_equal']:.2f}x an equal-length one"
                + (f" (at the memory roofline: {lt['floor_vs_equal']:.2f}x)" if "floor_vs_equal" in lt else "")
                + (f"; through {lt['slots']} slots with refills: {lt['seconds_refill']:.3f} s, {lt['cost_vs_equal_refill']:.2f}x" if "slots" in lt else "")
                + (f"; equal lengths through the same slots: {lt['seconds_equal_refill']:.3f} s, so {lt['cost_vs_equal_same_slots']:.2f}x at the same concurrency"
                   + (f" (at the memory roofline: {lt['floor_same_slots']:.2f}x)" if "floor_same_slots" in lt else "")
                   if "seconds_equal_refill" in lt else "")
                + (f"; {lt['refills']} refills took {lt['refill_seconds']:.3f} s (synced), {lt['steps']} decode steps against {lt['steps_equal_refill']} at equal lengths"
                   if "refills" in lt else ""))
    elif "roofline" in r and s["lengths"] == "forced":
        f = r["roofline"]
        floor = max(f["t_mem"], f["t_flop"])
        achieved = N * T / r["generator_tps"]
        out += (f"\ndecode roofline ({f['decode_steps']} steps, batch {N}, mean prompt {r['prompt_len']:.0f} tokens): "
                f"weights {f['weight_gb']:.3f} GB + KV cache up to {f['kv_gb_last_step']:.2f} GB per step, "
                f"{f['bytes_total_gb']:.0f} GB in all at a measured {f['bandwidth_gbs']:,.0f} GB/s = {f['t_mem']:.3f} s; "
                f"{f['tflop_total']:.2f} TFLOP at a measured {f['peak_tflops']:.2f} TFLOP/s = {f['t_flop']:.3f} s; "
                f"the generator took {achieved:.3f} s = {floor / achieved:.1%} of the roofline")
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int); p.add_argument("--warmup", type=int)
    p.add_argument("--prompts", type=int); p.add_argument("--G", type=int, help="generations per prompt")
    p.add_argument("--T", type=int, help="new tokens (forced)"); p.add_argument("--lr", type=float)
    p.add_argument("--micro", type=int, help="completions per forward/backward micro-batch, both libraries")
    p.add_argument("--model-dir", help="config + tokenizer folder for the random model (CUDA mode)")
    p.add_argument("--shape", choices=list(SHAPES), help="a random model of this architecture (config written here, embedded tokenizer)")
    p.add_argument("--lengths", choices=["forced", "longtail"], default="forced",
                   help="every row the full --T tokens, or per-row long-tailed lengths (the same for both libraries)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (rank 16, all linear layers of the blocks), both libraries")
    p.add_argument("--grad-ckpt", action="store_true", help="activation (gradient) checkpointing, both libraries")
    p.add_argument("--mem-fraction", type=float, help="cap each worker's GPU memory at this fraction of the card (emulates a smaller GPU)")
    p.add_argument("--slots", type=int, default=None, help="rlprims: decode this many rows at a time, a done row's place going to the next waiting row")
    p.add_argument("--pack", action="store_true", help="rlprims: score and train on packed rows (RunConfig(pack_sequences=True))")
    p.add_argument("--pad-to-multiple", type=int, default=None, help="rlprims: round the scoring pass's micro-batch widths up to a multiple of this (default: the library's, 64 on CUDA; 1 rounds nothing)")
    p.add_argument("--no-generate-baseline", action="store_true", help="skip timing plain model.generate (slow at long budgets)")
    p.add_argument("--fused", choices=["default", "layers", "rotary", "none"], default="default",
                   help="rlprims' fused decode kernels (A/B): generate_batch_fast's defaults, fused layers, the fused rotary embedding alone, or none")
    p.add_argument("--quick", action="store_true", help="tiny 2-step CPU smoke run")
    p.add_argument("--precision", choices=["fp32", "bf16-mixed", "bf16"],
                   help="both libraries: fp32; bf16-mixed (fp32 weights, bf16 compute: rlprims' GPU default, TRL's bf16=True on an fp32 "
                        "model); bf16 (pure bf16 weights). Default: fp32 on CPU, bf16-mixed on CUDA")
    p.add_argument("--only", choices=["rlprims", "trl"], help="run one library")
    p.add_argument("--eager", action="store_true", help="rlprims with generate_batch instead of generate_batch_fast")
    p.add_argument("--gen-reps", type=int, default=2, help="timed repeats of the generate-only measurements")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of one more rlprims step")
    p.add_argument("--threads", type=int, help="torch CPU threads in the workers (default: torch's choice)")
    p.add_argument("--json", help="write all results to this file")
    p.add_argument("--verbose", action="store_true", help="show all of the workers' output")
    p.add_argument("--worker", choices=["rlprims", "trl"], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    s = settings(a)
    if a.worker:
        if a.threads:
            import torch; torch.set_num_threads(a.threads)
        (run_rlprims if a.worker == "rlprims" else run_trl)(s, a); return
    import torch
    if s["device"] == "cuda" and not torch.cuda.is_available(): sys.exit("bench_grpo: --device cuda but no GPU is visible")
    card = torch.cuda.get_device_name() if s["device"] == "cuda" else platform.processor() or platform.machine()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"bench_grpo {date.today()} on {card} ({os.cpu_count()} CPU cores{load}), torch {torch.__version__}"
          f"{f', {a.threads} thread(s)' if a.threads else ''}: {json.dumps(s)}", flush=True)
    res = {}
    for lib in ([a.only] if a.only else ["rlprims", "trl"]):
        cmd = [sys.executable, "-u", __file__, "--worker", lib] + [x for x in (argv if argv is not None else sys.argv[1:])]
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        tail = []
        for line in proc.stdout:
            if line.startswith(RESULT): res[lib] = json.loads(line[len(RESULT):]); continue
            tail = (tail + [line.rstrip()])[-60:]
            if a.profile or a.verbose or " step " in line or "skipping" in line: print(f"  [{lib}] {line.rstrip()}", flush=True)
        if proc.wait() != 0 or lib not in res:
            print("\n".join(f"  [{lib}] {l}" for l in tail))
            sys.exit(f"bench_grpo: the {lib} worker failed (exit {proc.returncode})")
        print(f"  [{lib}] done in {time.time() - t0:.0f} s", flush=True)
    out = table(s, res)
    print("\n" + out)
    if a.json: Path(a.json).write_text(json.dumps(dict(settings=s, card=card, results=res, date=str(date.today())), indent=1))
    return res

if __name__ == "__main__":
    main()
