"""End-to-end checks of the training loop and the main job (CPU; the real model is used once, briefly)."""
import json, math
from pathlib import Path
import pandas as pd
import pytest
import torch
from rlprims.core import GenerationConfig, RunConfig, Hooks
from rlprims.generation import load_tokenizer
from rlprims.training import train, create_addition_dataset, ADDITION_REWARDS, tiny_test_model, latest_checkpoint
from rlprims.cli import main

GEN = GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _run(tok, out, steps, **kw):
    return train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=2,
                 learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok,
                 gen_config=GEN, run=RunConfig(progress=False, seed=7, checkpoint_every=1), **kw)


def test_resume_matches_uninterrupted_run(tok, tmp_path):
    full = _run(tok, tmp_path / "full", 3).metrics
    _run(tok, tmp_path / "part", 1)
    res = _run(tok, tmp_path / "part", 3, resume_from=tmp_path / "part" / "checkpoint-1").metrics
    cols = ["reward", "loss", "grad_norm", "entropy", "tokens"]
    assert res[cols].values.tolist() == full[cols].values.tolist()
    # metrics.csv holds every step once, in order
    assert pd.read_csv(tmp_path / "part" / "metrics.csv")["step"].tolist() == [0, 1, 2]


def test_every_algorithm_runs(tok, tmp_path):
    from rlprims.algorithms import ALGORITHMS
    for algo in ALGORITHMS:
        kw = {"use_ref_model": True} if algo == "online_dpo" else {}
        m = _run(tok, tmp_path / algo, 1, algorithm=algo, **kw).metrics
        assert len(m) == 1 and m["algorithm"].iloc[0] == algo
        if "loss" in m: assert math.isfinite(m["loss"].iloc[0])
        else: assert m["skipped_update"].iloc[0] == 1, algo       # only DAPO's group filter may leave nothing to learn from


def test_switch_strategy(tok, tmp_path):
    m = _run(tok, tmp_path / "sw", 3, switch_strategy=lambda s: "grpo" if s < 2 else "dapo").metrics
    assert m["algorithm"].tolist() == ["grpo", "grpo", "dapo"]


def test_resume_errors(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a complete rlprims checkpoint"):
        _run(tok, tmp_path / "x", 2, resume_from=tmp_path / "nope")
    _run(tok, tmp_path / "c", 1)
    ck = latest_checkpoint(tmp_path / "c")
    (ck / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="trainer_state.pt.*damaged"):
        _run(tok, tmp_path / "c", 2, resume_from=ck)


def test_main_job_smoke(tmp_path):
    s = main(["--steps", "2", "--batch-size", "2", "--num-generations", "2", "--eval-size", "4", "--max-new-tokens", "6",
              "--out", str(tmp_path), "--eval-every", "0", "--checkpoint-every", "0"])
    saved = json.loads((tmp_path / "summary.json").read_text())
    for k in ["accuracy_before", "accuracy_after", "steps", "minutes", "algorithm"]:
        assert k in saved and saved[k] == s[k]
    for f in ["metrics.csv", "curves.png", "checkpoint-2/model/model.safetensors"]:
        assert (tmp_path / f).exists(), f


def _main_train_args(monkeypatch, tmp_path, *flags) -> dict:
    "The keyword arguments rlprims-train's main passes to train for a 1-step run with `flags` (train itself replaced by a stop)."
    import rlprims.cli as C
    seen = {}
    class Stop(Exception): pass
    def fake_train(*args, **kw): seen.update(kw); raise Stop
    monkeypatch.setattr(C, "train", fake_train)
    with pytest.raises(Stop): C.main(["--steps", "1", "--eval-size", "2", "--out", str(tmp_path), *flags])
    return seen

@pytest.mark.parametrize("flag,dtype", [("auto", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_main_decode_dtype_reaches_the_generator(monkeypatch, tmp_path, flag, dtype):
    "rlprims-train --decode-dtype: auto leaves the built-in generator; bf16/fp16 give train generate_batch_fast with that compute_dtype."
    from rlprims.fast_decode import generate_batch_fast
    g = _main_train_args(monkeypatch, tmp_path, "--decode-dtype", flag)["hooks"].generator
    if dtype is None: assert g is None
    else: assert g.func is generate_batch_fast and g.keywords == {"compute_dtype": dtype}

def test_main_continuous_flag(monkeypatch, tmp_path):
    "rlprims-train --continuous: train gets a ContinuousRollouts (places: a step's rows, set at its first call; the decode dtype) and tis_cap 2."
    from rlprims.continuous import ContinuousRollouts
    seen = _main_train_args(monkeypatch, tmp_path, "--continuous", "--decode-dtype", "bf16")
    cr = seen["hooks"].rollout_fn
    assert isinstance(cr, ContinuousRollouts) and cr.slots is None and cr.compute_dtype == torch.bfloat16
    assert seen["hooks"].generator is None and seen["train_overrides"]["tis_cap"] == 2.0
    seen = _main_train_args(monkeypatch, tmp_path)
    assert seen["hooks"].rollout_fn is None and "tis_cap" not in seen["train_overrides"]

def test_console_script_exits_zero(monkeypatch):
    "The `rlprims-train` entry point (as settings.ini declares it) exits with status 0 after a run."
    import configparser, importlib
    import rlprims.cli as T
    cfg = configparser.ConfigParser(interpolation=None); cfg.read(Path(__file__).resolve().parent.parent / "settings.ini")
    scripts = dict(x.split("=", 1) for x in cfg["DEFAULT"]["console_scripts"].split())
    mod, fn = scripts["rlprims-train"].split(":")
    entry = getattr(importlib.import_module(mod), fn)
    monkeypatch.setattr(T, "main", lambda argv=None: {"accuracy_after": 1.0})   # what main returns: a summary dict
    assert entry() == 0                                                          # the generated script calls sys.exit(entry())


def test_old_keywords_still_work_with_a_warning(tok, tmp_path):
    "Settings passed the old way (train(seed=..., progress=...), training_iteration(precision=...)) warn and change nothing."
    from rlprims.precision import create_precision
    from rlprims.training import training_iteration
    from rlprims.algorithms import get_algorithm_config
    new = _run(tok, tmp_path / "new", 2).metrics
    with pytest.warns(FutureWarning, match=r"seed= is now RunConfig\(seed=...\)"):
        old = train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=2, batch_size=2, num_generations=2,
                    learning_rate=1e-3, output_dir=tmp_path / "old", model=tiny_test_model(), tokenizer=tok, gen_config=GEN,
                    progress=False, seed=7, checkpoint_every=1).metrics
    cols = ["reward", "loss", "grad_norm", "entropy"]
    assert old[cols].values.tolist() == new[cols].values.tolist()
    with pytest.raises(TypeError, match="did you mean 'seed'"):
        train(prompts=create_addition_dataset(4), reward_fn=ADDITION_REWARDS, model=tiny_test_model(), tokenizer=tok, sed=3)
    model = tiny_test_model()
    with pytest.warns(FutureWarning, match=r"precision= is now create_runner"):
        st = training_iteration(model, tok, create_addition_dataset(2), GEN, get_algorithm_config(0, "grpo"), ADDITION_REWARDS,
                                torch.optim.SGD(model.parameters(), lr=0.0), num_generations=2, precision=create_precision("fp32"))
    assert math.isfinite(st.metrics["loss"])


def test_activation_checkpointing_trains_the_same(tok, tmp_path):
    "RunConfig(activation_checkpointing=True) recomputes activations; the run's numbers are those of a run without it."
    def run(ckpt, out):
        vowels = lambda r: sum(ch in "aeiou" for ch in r.generation.text) / 10   # a reward that varies, so the loss has a gradient
        return train(prompts=create_addition_dataset(16), reward_fn={"vowels": vowels}, num_steps=2, batch_size=2, num_generations=4,
                     learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok, gen_config=GEN,
                     run=RunConfig(progress=False, seed=7, save_final=False, activation_checkpointing=ckpt))
    plain, ckpt = run(False, tmp_path / "plain"), run(True, tmp_path / "ckpt")
    assert ckpt.model.model.layers[0].gradient_checkpointing and not plain.model.model.layers[0].gradient_checkpointing
    cols = ["reward", "loss", "grad_norm", "tokens"]
    assert plain.metrics["grad_norm"].min() > 1e-3
    assert torch.allclose(torch.tensor(plain.metrics[cols].values), torch.tensor(ckpt.metrics[cols].values), rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["run"]["activation_checkpointing"] is True


def test_optimizer_fn_replaces_adamw(tok, tmp_path):
    "Hooks(optimizer_fn=...) builds the run's optimizer from (params, lr=, weight_decay=); one that returns something else is refused by name."
    made = []
    def sgd(params, lr, weight_decay):
        made.append(torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)); return made[-1]
    vowels = lambda r: sum(ch in "aeiou" for ch in r.generation.text) / 10
    model = tiny_test_model(); before = model.lm_head.weight.detach().clone()
    kw = dict(prompts=create_addition_dataset(16), reward_fn={"vowels": vowels}, num_steps=2, batch_size=2, num_generations=4, learning_rate=1e-3,
              model=model, tokenizer=tok, gen_config=GEN, run=RunConfig(progress=False, seed=7, save_final=False))
    res = train(output_dir=tmp_path / "sgd", hooks=Hooks(optimizer_fn=sgd), **kw)
    assert len(made) == 1 and made[0].param_groups[0]["lr"] == 1e-3 and not made[0].state   # plain SGD keeps no state (AdamW would)
    assert not torch.equal(before, res.model.lm_head.weight)                                  # and it trained
    assert json.loads((tmp_path / "sgd" / "config.json").read_text())["hooks"]["optimizer_fn"].endswith("sgd")
    with pytest.raises(TypeError, match="optimizer_fn returned a list"):
        train(output_dir=tmp_path / "bad", hooks=Hooks(optimizer_fn=lambda params, lr, weight_decay: list(params)), **{**kw, "model": tiny_test_model()})


_RAGGED = torch.tensor([5, 1, 3, 2, 5, 1, 4, 2])              # 2 prompts x 4 samples, long and short rows mixed


def _ragged_run(tok, out, train_overrides, run=RunConfig()):
    "Two steps of rows forced to `_RAGGED`'s lengths, rewarded by vowels and length (a reward that varies, so the loss has a gradient)."
    import functools
    from rlprims.fast_decode import generate_batch_fast
    gen = functools.partial(generate_batch_fast, forced_lengths=_RAGGED)
    vowels = lambda r: sum(ch in "aeiou" for ch in r.generation.text) / 10 + len(r.generation.token_ids) / 10
    return train(prompts=create_addition_dataset(16), reward_fn={"r": vowels}, num_steps=2, batch_size=2, num_generations=4,
                 learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok, gen_config=GEN._replace(min_new_tokens=5),
                 train_overrides=train_overrides, hooks=Hooks(generator=gen), run=run._replace(progress=False, seed=7, save_final=False))


def _assert_trained_the_same(a, b):
    "Two `_ragged_run`s: the same metrics, and the same weights up to Adam's rounding."
    assert a.metrics["tokens"].tolist() == [_RAGGED.sum().item()] * 2
    cols = ["reward", "loss", "grad_norm", "entropy", "kl_ref"]
    assert a.metrics["grad_norm"].min() > 1e-3
    assert torch.allclose(torch.tensor(a.metrics[cols].values), torch.tensor(b.metrics[cols].values), rtol=1e-4, atol=1e-6)
    d = torch.cat([(p - q).abs().flatten() for p, q in zip(a.model.parameters(), b.model.parameters())])
    assert d.median() < 1e-7 and d.max() <= 2 * 1e-3 + 1e-6   # Adam: a near-zero gradient's rounding can flip one lr-sized move


def test_length_sorted_micro_batches_train_the_same(tok, tmp_path, monkeypatch):
    "Micro-batches cut from length-sorted rows (the GPU default) give the update of rows taken in order (the CPU default)."
    import rlprims.training as T
    def run(sort, out):
        monkeypatch.setattr(T, "_sorts_by_length", lambda runner, config, loss_fn=None: sort)
        return _ragged_run(tok, out, {"micro_batch_size": 2})
    _assert_trained_the_same(run(False, tmp_path / "plain"), run(True, tmp_path / "sorted"))


def test_sorting_rule_keeps_groups_for_group_losses():
    "Rows are regrouped by length only for built-in losses that read no groups, off the CPU, and never under a custom loss_fn."
    from types import SimpleNamespace
    from rlprims.training import _sorts_by_length
    from rlprims.algorithms import get_algorithm_config
    gpu_like = SimpleNamespace(fsdp=True, policy=None)                # fsdp: the rule's "prompts aren't shared" branch, without a GPU
    cpu = SimpleNamespace(fsdp=False, policy=torch.nn.Linear(1, 1))
    grpo, dpo = get_algorithm_config(0, "grpo"), get_algorithm_config(0, "online_dpo")
    assert _sorts_by_length(gpu_like, grpo) and not _sorts_by_length(cpu, grpo)
    assert not _sorts_by_length(gpu_like, dpo) and not _sorts_by_length(gpu_like, grpo, loss_fn=lambda *a, **k: None)


def test_packed_sequences_train_the_same(tok, tmp_path, monkeypatch):
    "RunConfig(pack_sequences=True) packs the reference's pass and the trainer's; with ragged lengths the run's numbers (its KL too) and weights are those of the padded run, with activation checkpointing too."
    import rlprims.generation as G
    calls, packed_pass = [], G._packed_logprobs
    monkeypatch.setattr(G, "_packed_logprobs", lambda *a, **k: calls.append(1) or packed_pass(*a, **k))
    two_epochs = {"micro_batch_size": 4, "num_inner_epochs": 2}     # two epochs: pi_old scored too
    plain = _ragged_run(tok, tmp_path / "plain", two_epochs); assert not calls
    packed = _ragged_run(tok, tmp_path / "packed", two_epochs, RunConfig(pack_sequences=True))
    assert len(calls) == 2 * (2 + 2 + 2 * 2)                       # per step: the reference's 2 micro-batches, pi_old's 2, then 2 epochs of 2
    _assert_trained_the_same(plain, packed)
    both = _ragged_run(tok, tmp_path / "both", two_epochs, RunConfig(pack_sequences=True, activation_checkpointing=True))
    assert len(calls) == 2 * 2 * (2 + 2 + 2 * 2)
    _assert_trained_the_same(plain, both)                          # with activation checkpointing too

