"""Several processes: one step on 2 processes (torch.distributed, gloo on CPU) equals the same step on 1 process.

The file is also the worker that `torchrun` starts: `torchrun --nproc_per_node 2 tests/test_distributed.py --out DIR`.
Generation is made independent of the process layout by `row_seeded_generator` (each sample's RNG seed depends only on
its prompt and its index in the group), since two processes draw from two RNG streams.
"""
import argparse, json, math, os, socket, subprocess, sys, zlib
from pathlib import Path
from types import SimpleNamespace
import pytest
import torch

HERE = Path(__file__).resolve()
G = 2                       # samples per prompt
COLS = ["reward", "reward_std", "reward/len3", "loss", "policy_loss", "grad_norm", "entropy", "clip_frac", "tokens",
        "response_len_mean", "truncated_frac", "kept_frac"]


def row_seeded_generator(num_generations: int, fast: bool = False):
    "A `generator` whose sample for row i depends only on that row's prompt and i % num_generations (`fast`: by `generate_batch_fast`)."
    from rlprims.core import RolloutBatch, pad_right
    from rlprims.generation import generate_batch
    from rlprims.fast_decode import generate_batch_fast
    one_row = generate_batch_fast if fast else generate_batch

    def gen(model, tokenizer, prompt_ids, prompt_mask, config, compute_logprobs=True):
        rows, dev = [], next(model.parameters()).device
        for i in range(prompt_ids.shape[0]):
            p = prompt_ids[i][prompt_mask[i].bool()]
            with torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []):   # leave the process's RNG streams alone
                torch.manual_seed(zlib.crc32(str(p.tolist()).encode()) + 7919 * (i % num_generations))
                rows.append(one_row(model, tokenizer, p[None], torch.ones_like(p)[None], config, compute_logprobs))
        cat = lambda name, v: pad_right([getattr(r, name)[0] for r in rows], v)
        return RolloutBatch(prompt_ids, prompt_mask.float(), cat("completion_ids", tokenizer.pad_token_id), cat("completion_mask", 0.0),
                            logprobs=cat("logprobs", 0.0) if compute_logprobs else None)
    return gen


def len3(rollout) -> float:
    "A reward that varies inside groups even for a random model: the reply's length mod 3."
    return float(len(rollout.generation.text) % 3)


def _full(t):
    return t.full_tensor() if hasattr(t, "full_tensor") else t


VARIANTS = {  # full fine-tune and LoRA with GRPO; DAPO with dynamic sampling (filtering on len3 > 0, refilling from more prompts),
              # shuffled mini-batches of 3 and micro-batches of 1, so processes get uneven slices (zero-weight passes) and follow rank 0's shuffle
    "full": {}, "lora": {"lora": True},
    "dapo": {"algorithm": "dapo", "accuracy_key": "len3", "train_overrides": {"micro_batch_size": 1, "mini_batch_size": 3}}}
OTHER_VARIANTS = {  # not comparable with one process: each process samples its own rows
    "continuous": {"continuous": True, "train_overrides": {"micro_batch_size": 2, "tis_cap": 2.0}}}


def run(out, steps: int = 2, resume_from=None, tokenizer=None, lora: bool = False, distributed="auto", fast: bool = False,
        continuous: bool = False, **kw) -> dict:
    "A tiny run (4 prompts x 2 samples a step, micro-batches of 2; `fast`: sampled by `generate_batch_fast`; `continuous`: by `ContinuousRollouts`, one token in 20 ending a row); rank 0 writes `out/result.json`."
    from rlprims.core import GenerationConfig, RunConfig, Hooks
    from rlprims.generation import load_tokenizer
    from rlprims.training import train, create_addition_dataset, tiny_test_model, correct
    from rlprims.continuous import ContinuousRollouts
    tok = load_tokenizer(tokenizer)
    model = tiny_test_model()
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    if torch.cuda.device_count() >= 2: model = model.to(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    last_grads = []                                  # the last optimizer step's gradients (reduced over processes), in the optimizer's order

    def adamw_recording(params, lr, weight_decay):  # train's default optimizer, and a look at what it steps with
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        record = lambda o, args, kwargs: last_grads.__setitem__(slice(None), [_full(p.grad).double().norm().item() for g in o.param_groups for p in g["params"]])
        opt.register_step_pre_hook(record)
        return opt
    res = train(prompts=create_addition_dataset(16), reward_fn={"len3": len3, "correct": correct}, num_steps=steps, batch_size=4,
                num_generations=G, learning_rate=1e-3, output_dir=out, model=model, tokenizer=tok,
                gen_config=GenerationConfig(max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0), resume_from=resume_from,
                run=RunConfig(progress=False, seed=0, checkpoint_every=1, distributed=distributed, accuracy_key=kw.pop("accuracy_key", "correct"),
                              precision="fp32"),   # "auto" is bf16-mixed on a GPU, where one process and DDP sample from a bf16 copy and FSDP from its fp32 weights
                hooks=Hooks(rollout_fn=ContinuousRollouts(max_prompt_tokens=96, check_every=2, eos_ids=list(range(0, 49152, 20))), optimizer_fn=adamw_recording)
                      if continuous else Hooks(generator=row_seeded_generator(G, fast), optimizer_fn=adamw_recording),
                **{"train_overrides": {"micro_batch_size": 2}, **kw})
    named = [(n, p) for n, p in res.model.named_parameters() if p.requires_grad]
    result = {"metrics": res.metrics[[c for c in COLS if c in res.metrics]].to_dict("list"),
              "params": {n: _full(p.detach()).double().sum().item() for n, p in named},
              "grads": dict(zip([n for n, _ in named], last_grads, strict=True)),   # the optimizer holds the trainable weights in this order
              "world": int(os.environ.get("WORLD_SIZE", 1))}
    if int(os.environ.get("RANK", 0)) == 0: (Path(out) / "result.json").write_text(json.dumps(result))
    return result


def close(a, b, rel=1e-4, abs_=1e-6) -> bool: return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_same(r1: dict, r2: dict, steps=None, rel=1e-4):
    "Metrics (per step), weights and last gradients of two results agree to float tolerance."
    for c, v1 in r1["metrics"].items():
        v2 = r2["metrics"][c]
        for s in (steps if steps is not None else range(len(v1))):
            assert close(v1[s], v2[s], rel), (c, s, v1[s], v2[s])
    for key in ("params", "grads"):
        assert r1[key].keys() == r2[key].keys() and len(r1[key]) > 0, key
        # a sum over thousands of weights carries float noise of ~1e-5 after several Adam steps (the DAPO variant takes 6)
        for n in r1[key]: assert close(r1[key][n], r2[key][n], rel, 1e-4), (key, n, r1[key][n], r2[key][n])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def launch(nproc: int, *args, timeout: int = 300):
    "Run this file as a worker under torchrun with `nproc` processes on a free port."
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(free_port()),
           str(HERE), *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if torch.cuda.is_available() and torch.cuda.device_count() < 2: env["CUDA_VISIBLE_DEVICES"] = ""   # one GPU: every run on CPU/gloo, comparable
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    "One 2-process launch running every variant for 2 steps, with checkpoints every step."
    out = tmp_path_factory.mktemp("two")
    launch(2, "--out", out, "--steps", 2, "--variants", ",".join(VARIANTS))
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_two_processes_equal_one(two, tmp_path, variant):
    one = run(tmp_path / variant, **VARIANTS[variant])
    res = json.loads((two / variant / "result.json").read_text())
    assert res["world"] == 2 and len(res["metrics"]["loss"]) == 2
    assert_same(one, res)
    # rank 0 alone wrote: one row per step, whole checkpoints only, the run's config with its process count
    import pandas as pd
    m = pd.read_csv(two / variant / "metrics.csv")
    assert m["step"].tolist() == [0, 1]
    assert (m["time_wait"] >= 0).all() and (m["time_gather"] > 0).all() and (m["time_gather"] < m["time_rollout"]).all()   # the rollout phase, split
    assert "time_wait" not in pd.read_csv(tmp_path / variant / "metrics.csv")                                              # one process: nothing to wait for
    assert sorted(p.name for p in (two / variant).iterdir() if "checkpoint" in p.name) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((two / variant / "config.json").read_text())["num_processes"] == 2


def test_resume_two_process_checkpoint_on_one(two, tmp_path):
    "A checkpoint written by 2 processes resumes on 1 and continues with the numbers of the uninterrupted runs."
    full = json.loads((two / "full" / "result.json").read_text())
    resumed = run(tmp_path / "resumed", resume_from=two / "full" / "checkpoint-1")
    assert_same(resumed, full, steps=[1])


def test_continuous_rollouts_under_ddp(tmp_path):
    """ContinuousRollouts on 2 processes: each keeps its own session, and checkpoint-1 holds both processes' drained
    groups (the step admitted ahead). Resumed from it on 2 processes, and on 1, step 1 trains on the very rows the
    uninterrupted run did: the same metrics, gradients and weights."""
    launch(2, "--out", tmp_path / "a", "--steps", 2, "--variants", "continuous")
    ckpt = tmp_path / "a" / "continuous" / "checkpoint-1"
    state = json.loads((ckpt / "state.json").read_text())["rollout_state"]
    assert [len(part["groups"]) for part in state["ranks"]] == [2, 2]   # each process's share of a step (2 prompts), admitted ahead
    assert [x["prompt"] for x in state["ranks"][0]["groups"]] != [x["prompt"] for x in state["ranks"][1]["groups"]]   # shares, not the same draws twice
    full = json.loads((tmp_path / "a" / "continuous" / "result.json").read_text())
    launch(2, "--out", tmp_path / "b", "--steps", 2, "--variants", "continuous", "--resume-from", ckpt)
    assert_same(json.loads((tmp_path / "b" / "continuous" / "result.json").read_text()), full, steps=[1])
    assert_same(run(tmp_path / "c", resume_from=ckpt, **OTHER_VARIANTS["continuous"]), full, steps=[1])

def test_batch_must_split_over_processes(tmp_path, monkeypatch):
    import rlprims.training as tr
    from rlprims.generation import load_tokenizer
    fake = SimpleNamespace(process_index=0, num_processes=2)
    monkeypatch.setattr(tr, "create_accelerator", lambda d: fake)
    with pytest.raises(ValueError, match="batch_size=3 prompts do not split over 2 processes"):
        tr.train(prompts=tr.create_addition_dataset(4), reward_fn=len3, batch_size=3, model=tr.tiny_test_model(),
                 tokenizer=load_tokenizer(), output_dir=tmp_path)


def test_create_accelerator_arguments(monkeypatch):
    from rlprims.training import create_accelerator
    with pytest.raises(ValueError, match="expected 'auto', 'ddp', 'fsdp', 'none'"): create_accelerator("mpi")
    assert create_accelerator("auto") is None and create_accelerator("none") is None   # one process
    monkeypatch.setenv("WORLD_SIZE", "2")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="FSDP needs CUDA"): create_accelerator("fsdp")


@pytest.mark.parametrize("find_unused", [False, True])
def test_ddp_scoring_leaves_the_lm_head_out(tmp_path, find_unused):
    "As for a plain model, through a DDP wrapper the LM head runs in chunks inside token_logprobs, so no [rows, T, V] logits exist (with find_unused_parameters it runs in the forward: its reducer would count it unused); log-probs and gradients equal the plain model's, over two steps."
    import copy
    from torch.nn.parallel import DistributedDataParallel
    from rlprims.generation import compute_logprobs_for_tokens
    from test_generation_fast import _tiny
    from test_packing import _batch
    pids, pm, c, cm = _batch()
    plain = _tiny("qwen2", seed=3).train()
    inner = copy.deepcopy(plain)
    head_outputs = []
    inner.lm_head.register_forward_hook(lambda m, i, o: head_outputs.append(o.shape[-1]))
    plain_head_outputs = []
    plain.lm_head.register_forward_hook(lambda m, i, o: plain_head_outputs.append(o.shape[-1]))
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(inner, find_unused_parameters=find_unused)
        for step in range(2):                          # a reduction left unfinished would raise in the second step's forward
            grads = []
            for model in (plain, ddp):
                model.zero_grad(set_to_none=True)
                lp = compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm, micro_batch_size=8, requires_grad=True, share_prefix=False)
                (lp * cm).sum().backward()
                grads.append((lp.detach(), {n.removeprefix("module."): p.grad.clone() for n, p in model.named_parameters()}))
            (lp0, g0), (lp1, g1) = grads
            torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=0)
            assert g0.keys() == g1.keys()
            for n in g0: torch.testing.assert_close(g1[n], g0[n], atol=1e-5, rtol=1e-4)
    finally:
        torch.distributed.destroy_process_group()
    assert head_outputs == ([plain.config.vocab_size] * 2 if find_unused else [])   # the head's forward ran only with find_unused_parameters
    assert plain_head_outputs == []                                                 # and never for the plain model
    assert isinstance(inner.lm_head, torch.nn.Linear)  # put back


def _shard_like_accelerate(model):
    "FSDP2 units as accelerate (1.15) lays them out: each decoder layer; the input embedding alone where untied; the tail (final norm, LM head, and a tied embedding) kept gathered after its forward; then the root."
    from torch.distributed.fsdp import fully_shard
    for layer in model.model.layers: fully_shard(layer)
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = emb.weight is head.weight
    if not tied: fully_shard(emb)
    fully_shard([model.model.norm] + ([emb] if tied else []) + [head], reshard_after_forward=False)
    fully_shard(model)
    return model


@pytest.mark.parametrize("micro,layout", [(8, "root"), (4, "root"), (4, "accelerate"), (4, "head-alone")])
def test_fsdp2_scoring_leaves_the_lm_head_out(tmp_path, micro, layout):
    "Under FSDP2 (one gloo process) the LM head runs in chunks inside token_logprobs too, its weight read after the forward, which keeps it gathered until the backward (the head in the root's unit, re-sharding after its forward but for this; or in accelerate's tail unit, tied to the embedding). A head that is a unit of its own runs its own forward instead (full logits). Log-probs and every gradient equal the plain model's over two steps, in one or two micro-batches."
    import copy
    from torch.distributed.fsdp import fully_shard
    from rlprims.generation import compute_logprobs_for_tokens
    from test_generation_fast import _tiny
    from test_packing import _batch
    from rlprims.training import tiny_test_model
    pids, pm, c, cm = _batch()
    plain = (tiny_test_model(seed=3) if layout == "accelerate" else _tiny("qwen2", seed=3)).train()
    sharded, head_outputs = copy.deepcopy(plain), []
    sharded.lm_head.register_forward_hook(lambda m, i, o: head_outputs.append(o.shape[-1]))
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        if layout == "accelerate": _shard_like_accelerate(sharded)   # the head in the tail unit, with the embedding it shares
        else:
            for layer in sharded.model.layers: fully_shard(layer)
            if layout == "head-alone": fully_shard(sharded.lm_head, reshard_after_forward=True)
            fully_shard(sharded, reshard_after_forward=True)   # as an explicit setting would: the root re-shards after its forward
        params = {m: dict(m.named_parameters()) for m in (plain, sharded)}   # FSDP2's sharded ones, as an optimizer holds them
        full = lambda g: g.full_tensor() if hasattr(g, "full_tensor") else g
        for step in range(2):
            grads = []
            for model in (plain, sharded):
                for p in params[model].values(): p.grad = None   # the shards, as an optimizer zeroes them (model.zero_grad can miss them: the test below)
                lp = compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm, micro_batch_size=micro, requires_grad=True, share_prefix=False)
                (lp * cm).sum().backward()
                grads.append((lp.detach(), {n: full(p.grad).clone() for n, p in params[model].items()}))
            (lp0, g0), (lp1, g1) = grads
            torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=0)
            assert g0.keys() == g1.keys()
            for n in g0: torch.testing.assert_close(g1[n], g0[n], atol=1e-5, rtol=1e-4)
            with torch.no_grad():                                # a scoring pass without gradients (old and reference log-probs)
                torch.testing.assert_close(compute_logprobs_for_tokens(sharded, pids, pm, c, completion_mask=cm, micro_batch_size=micro, share_prefix=False), lp0, atol=1e-5, rtol=0)
    finally:
        torch.distributed.destroy_process_group()
    passes = 2 * 2 * -(-pids.shape[0] // micro)                  # 2 steps x (a pass with gradients, one without) x micro-batches
    assert head_outputs == ([plain.config.vocab_size] * passes if layout == "head-alone" else [])
    assert isinstance(sharded.lm_head, torch.nn.Linear)                                         # put back


def test_fsdp2_optimizer_zero_grad_after_a_pass_without_gradients(tmp_path):
    "Under FSDP2 sharded as accelerate does, a forward without gradients leaves the tail unit gathered, so `model.zero_grad()` reaches its gathered copies and misses sharded gradients; the optimizer, which holds the shards, clears them all. 06c's advice rests on both: if FSDP ever re-shards there, the first assert fails and the advice is stale."
    from rlprims.training import tiny_test_model
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        model = _shard_like_accelerate(tiny_test_model(seed=3).train())
        opt, ids = torch.optim.AdamW(model.parameters(), lr=1e-3), torch.randint(0, 100, (2, 8))
        model(input_ids=ids).logits.sum().backward()
        assert all(p.grad is not None for g in opt.param_groups for p in g["params"])
        with torch.no_grad(): model(input_ids=ids)          # e.g. a scoring pass for old or reference log-probs
        model.zero_grad()
        assert sum(p.grad is not None for g in opt.param_groups for p in g["params"]) > 0   # 2 of 20 here: the tail unit's
        opt.zero_grad()
        assert all(p.grad is None for g in opt.param_groups for p in g["params"])
    finally:
        torch.distributed.destroy_process_group()


def test_fused_decoder_takes_fsdp2_layers(tmp_path):
    "Under FSDP2 (one gloo process; sharded as accelerate does) the decoder layers, embedding, final norm and LM head are `FSDP<Name>` classes. Inside gathered_params the fused decoder takes them, with the plain model's weights (it had refused them by their class)."
    import copy
    from rlprims.distributed import gathered_params
    from rlprims.fast_decode import _fused_decoder
    from test_generation_fast import _tiny
    plain = _tiny("qwen2", seed=3)
    sharded, Z0 = copy.deepcopy(plain), _fused_decoder(plain)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        _shard_like_accelerate(sharded)
        assert type(sharded.model.layers[0]).__name__ == "FSDPQwen2DecoderLayer" and type(sharded.lm_head).__name__ == "FSDPLinear"
        with gathered_params(sharded):
            Z1 = _fused_decoder(sharded)
            assert Z1 is not None and len(Z1.layers) == len(Z0.layers)
            for a, b in zip(Z0.layers, Z1.layers):
                for k in ("qkv_wt", "qkv_b", "o_w", "gate_up_wt", "down_w"): torch.testing.assert_close(getattr(b, k), getattr(a, k))
            torch.testing.assert_close(Z1.head_w, Z0.head_w)
        from rlprims.generation import _fuse_rms_norms, _unfuse
        norms = _fuse_rms_norms(sharded)                         # the final norm, an FSDP unit, among the fused ones
        _unfuse(norms)
        assert type(sharded.model.norm).__name__ == "FSDPQwen2RMSNorm" and sharded.model.norm in norms and len(norms) == 2 * len(sharded.model.layers) + 1
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="the fused steps on a CPU need Triton's interpreter (TRITON_INTERPRET=1)"))])
def test_fsdp2_generate_batch_fast_gives_the_plain_models_tokens(tmp_path, monkeypatch, fused):
    "Under FSDP2 (sharded as accelerate does), inside gathered_params, generate_batch_fast gives the plain model's tokens and log-probs: through the fused decode steps (Triton's interpreter on a CPU), or, where no fused decoder runs them, eagerly even when CUDA graphs are asked for (FSDP's hooks run in every module's forward; here on a CPU, a graph would fail)."
    import copy
    from rlprims.core import GenerationConfig
    from rlprims.distributed import gathered_params
    from rlprims.fast_decode import generate_batch_fast
    from rlprims.generation import load_tokenizer, tokenize_prompts
    import rlprims.fast_decode as fd
    from test_generation_fast import _tiny, _triton_device
    plain = _tiny("qwen2", seed=3)
    sharded, tok = copy.deepcopy(plain), load_tokenizer()
    pids, pmask = tokenize_prompts(tok, ["What is 1 + 2?", "Hi"], n=2)
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    if fused: _triton_device(monkeypatch, plain)                 # (the interpreter's patches)
    calls, forward = [], fd._fused_forward
    monkeypatch.setattr(fd, "_fused_forward", lambda S: (calls.append(1), forward(S))[1])
    a = generate_batch_fast(plain, tok, pids, pmask, cfg, static=True)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        _shard_like_accelerate(sharded)
        with gathered_params(sharded):                           # the fused steps, or the eager ones where graphs were asked for
            kw = dict(cuda_graphs=False, fused_layers=True) if fused else dict(cuda_graphs=True)
            b = generate_batch_fast(sharded, tok, pids, pmask, cfg, static=True, **kw)
    finally:
        torch.distributed.destroy_process_group()
    assert bool(calls) == fused
    assert torch.equal(a.completion_ids, b.completion_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4 if fused else 1e-5, rtol=0)


def test_concat_rollout_results_rejects_mixed_fields():
    from rlprims.core import RolloutBatch
    from rlprims.rollouts import RolloutResult
    from rlprims.training import concat_rollout_results
    b = RolloutBatch(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3), torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2),
                     rewards=torch.zeros(2), group_ids=torch.tensor([0, 0]))
    r1, r2 = RolloutResult([], b, {}), RolloutResult([], b._replace(rewards=None), {})
    with pytest.raises(ValueError, match="field 'rewards' is set in some results"): concat_rollout_results([r1, r2])
    test = concat_rollout_results([r1, r1])
    assert test.batch.group_ids.tolist() == [0, 0, 1, 1] and test.batch.size == 4


def compare_main(a: Path, b: Path, steps=None) -> None:
    "CLI check used on the GPU machine: `python tests/test_distributed.py --compare A B [--steps 1]` (result.json folders)."
    ra, rb = (json.loads((Path(x) / "result.json").read_text()) for x in (a, b))
    worst = max(abs(ra["metrics"][c][s] - rb["metrics"][c][s]) / max(abs(ra["metrics"][c][s]), 1e-3)
                for c in ra["metrics"] for s in (steps or range(len(ra["metrics"][c]))))
    gw = max(abs(ra["grads"][n] - rb["grads"][n]) / max(abs(ra["grads"][n]), 1e-6) for n in ra["grads"])
    assert_same(ra, rb, steps)
    print(f"SAME {a} vs {b} (worlds {ra['world']}, {rb['world']}): metrics max rel diff {worst:.2e}, grad norms {gw:.2e}", flush=True)


if __name__ == "__main__":   # worker, started by torchrun / accelerate launch
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", nargs=2, default=None)
    ap.add_argument("--compare-steps", type=int, nargs="*", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--resume-from", default=None)
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the embedded SmolLM2's)")
    ap.add_argument("--distributed", default="auto")
    ap.add_argument("--variants", default="full", help=f"comma-separated, of: {', '.join({**VARIANTS, **OTHER_VARIANTS})}")
    ap.add_argument("--fast", action="store_true", help="sample with generate_batch_fast (row-seeded as well)")
    a = ap.parse_args()
    if a.compare: compare_main(*a.compare, steps=a.compare_steps); sys.exit(0)
    for v in a.variants.split(","):
        run(Path(a.out) / v, a.steps, a.resume_from, a.tokenizer, distributed=a.distributed, fast=a.fast, **{**VARIANTS, **OTHER_VARIANTS}[v])
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()


def test_rollouts_own_their_tensors():
    "Each rollout's tensors are its own row, not views of the batch: gathering rollouts between processes pickles O(rows), not O(rows^2)."
    import pickle
    from rlprims.core import GenerationConfig
    from rlprims.generation import load_tokenizer
    from rlprims.rollouts import create_batch_rollouts
    from rlprims.training import tiny_test_model, create_addition_dataset, ADDITION_REWARDS
    res = create_batch_rollouts(tiny_test_model(), load_tokenizer(), create_addition_dataset(4), GenerationConfig(max_new_tokens=32, min_new_tokens=32),
                                ADDITION_REWARDS, num_generations=4)
    for r in res.rollouts:
        for t in (r.generation.token_ids, r.generation.logprobs, r.generation.valid_mask):
            assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
    assert len(pickle.dumps(res.rollouts)) < 2 * len(pickle.dumps(res.batch))   # was 7.7x the batch at 16 rows x 32 tokens (each row pickled all of it)
