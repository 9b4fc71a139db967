"""Faults survived and nothing lost: NaN steps, failing rewards, EOS-only generations, and a run killed mid-checkpoint."""
import os, signal, subprocess, sys, textwrap, time
import pandas as pd
import pytest
import torch
from functools import partial
from rlprims.core import GenerationConfig, RolloutBatch, RunConfig, Hooks
from rlprims.generation import load_tokenizer
from rlprims.algorithms import create_grpo_config
from rlprims.training import train, training_iteration, create_addition_dataset, ADDITION_REWARDS, tiny_test_model, latest_checkpoint

GEN = GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _train(tok, out, steps, model=None, hooks=Hooks(), max_nonfinite_steps=3, **kw):
    return train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=2,
                 learning_rate=1e-3, output_dir=out, model=model or tiny_test_model(), tokenizer=tok,
                 gen_config=GEN, hooks=hooks,
                 run=RunConfig(progress=False, seed=11, checkpoint_every=1, max_nonfinite_steps=max_nonfinite_steps), **kw)


def test_nan_steps_are_skipped_then_stop(tok, tmp_path):
    model = tiny_test_model()
    before = [p.detach().clone() for p in model.parameters()]
    nan_loss = lambda logprobs, mask, **kw: (logprobs * mask).sum() * float("nan")
    with pytest.raises(RuntimeError, match="2 steps in a row"):
        _train(tok, tmp_path, 4, model=model, hooks=Hooks(loss_fn=nan_loss), max_nonfinite_steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "a NaN update reached the weights"
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert m["skipped_nonfinite"].tolist() == [1, 1]


def test_reward_that_raises_on_one_rollout(tok, tmp_path):
    def flaky(r):
        if "7" in r.prompt: raise RuntimeError("cannot parse")
        return 1.0
    with pytest.raises(ValueError, match="reward function 'flaky' on rollout"):
        train(prompts=create_addition_dataset(16), reward_fn=flaky, num_steps=2, batch_size=4, num_generations=2, model=tiny_test_model(),
            tokenizer=tok, gen_config=GEN, output_dir=tmp_path / "raise", run=RunConfig(progress=False, seed=1))
    with pytest.warns(UserWarning, match="replaced by fallback"):
        res = train(prompts=create_addition_dataset(16), reward_fn=flaky, num_steps=2, batch_size=4, num_generations=2, model=tiny_test_model(),
                    tokenizer=tok, gen_config=GEN, output_dir=tmp_path / "fb", run=RunConfig(progress=False, seed=1, on_reward_error="fallback"))
    assert res.metrics["reward_errors"].sum() > 0 and len(res.metrics) == 2


def test_generation_of_only_eos(tok):
    def only_eos(model, tokenizer, prompt_ids, prompt_mask, config, compute_logprobs=True):
        n = prompt_ids.shape[0]
        return RolloutBatch(prompt_ids, prompt_mask, torch.full((n, 1), tokenizer.eos_token_id), torch.ones(n, 1),
                            logprobs=torch.full((n, 1), -0.3))
    model = tiny_test_model()
    st = training_iteration(model, tok, create_addition_dataset(2), GEN, create_grpo_config(kl_coef=0.0), lambda r: float(len(r.prompt) % 2),
                            torch.optim.AdamW(model.parameters(), 1e-3), num_generations=2, hooks=Hooks(generator=only_eos))
    assert st.metrics["response_len_mean"] == 1.0 and st.metrics["skipped_nonfinite"] == 0


SCRIPT = textwrap.dedent("""
    import sys
    from rlprims.generation import load_tokenizer
    from rlprims.core import GenerationConfig, RunConfig
    from rlprims.training import train, create_addition_dataset, ADDITION_REWARDS, tiny_test_model
    train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=4, batch_size=2, num_generations=2,
          learning_rate=1e-3, output_dir=sys.argv[1], model=tiny_test_model(), tokenizer=load_tokenizer(),
          gen_config=GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0), run=RunConfig(progress=False, seed=11, checkpoint_every=1))
""")


def test_sigkill_while_writing_a_checkpoint_loses_nothing(tok, tmp_path):
    run = tmp_path / "killed"
    env = {**os.environ, "RLPRIMS_CHECKPOINT_PAUSE": "3"}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(run)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not list(run.glob(".tmp-checkpoint-3-*")):     # wait until checkpoint 3 is half-written
            assert proc.poll() is None and time.time() < deadline, "the run ended before checkpoint 3 was being written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None: proc.kill()
    assert not (run / "checkpoint-3").exists()
    assert latest_checkpoint(run).name == "checkpoint-2"
    written = pd.read_csv(run / "metrics.csv")
    assert written["step"].tolist() == [0, 1, 2]          # step 2's row was written before its checkpoint
    resumed = _train(tok, run, 4, resume_from=latest_checkpoint(run)).metrics
    full = _train(tok, tmp_path / "full", 4).metrics
    cols = ["reward", "loss", "grad_norm", "entropy", "tokens"]
    assert resumed[cols].values.tolist() == full[cols].values.tolist()
    assert pd.read_csv(run / "metrics.before-resume-2.csv")["step"].tolist() == [0, 1, 2]   # nothing written was truncated
    assert pd.read_csv(run / "metrics.csv")["step"].tolist() == [0, 1, 2, 3]


# --- second pass (issue 17): faults inside real runs ---------------------------------------------------------------

def _exit_tool(args):
    sys.exit(1)


def _interrupt_tool(args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("use_process", [True, False])
def test_a_tool_that_exits_is_an_error_not_the_end(use_process):
    from rlprims.tools import create_tool_executor
    ex = create_tool_executor({"exit": _exit_tool, "interrupt": _interrupt_tool}, timeout=5, use_process=use_process)
    assert "SystemExit(1)" in ex({"name": "exit", "arguments": ""})["error"]
    assert "KeyboardInterrupt" in ex({"name": "interrupt", "arguments": ""})["error"]


def test_train_survives_an_exiting_tool_and_counts_it(tok, tmp_path):
    from rlprims.rollouts import create_multiturn_rollouts, scripted_generator
    from rlprims.tools import create_tool_executor
    res = train(prompts=["What is 1+1?"], reward_fn=lambda r: 1.0, num_steps=1, batch_size=1, num_generations=2, model=tiny_test_model(),
                tokenizer=tok, gen_config=GEN, output_dir=tmp_path, run=RunConfig(progress=False, save_final=False),
                hooks=Hooks(rollout_fn=partial(create_multiturn_rollouts, max_turns=2, tool_executor=create_tool_executor({"exit": _exit_tool})),
                            generator=scripted_generator(['<tool name="exit">x</tool>', "2"])))
    assert res.metrics["tool_errors"].tolist() == [2] and res.metrics["tool_calls_per_episode"].tolist() == [1.0]


def test_foreign_checkpoint_folders_are_ignored_during_a_run(tok, tmp_path):
    (tmp_path / "checkpoint-best").mkdir(); (tmp_path / "checkpoint-x-1").mkdir()
    _train(tok, tmp_path, 3)                                              # checkpoints every step, keeps the last 2
    assert latest_checkpoint(tmp_path).name == "checkpoint-3"
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3", "checkpoint-best", "checkpoint-x-1"]


def test_damaged_or_partial_checkpoints(tok, tmp_path):
    _train(tok, tmp_path, 3)
    (tmp_path / "checkpoint-3" / "model" / "model.safetensors").write_bytes(b"garbage")
    from rlprims.training import load_checkpoint
    with pytest.raises(ValueError, match="checkpoint-3/model/model.safetensors.*damaged"):
        load_checkpoint(tmp_path / "checkpoint-3", tiny_test_model())
    with pytest.warns(UserWarning, match="resuming from checkpoint-2"):
        res = _train(tok, tmp_path, 3, resume_from=tmp_path)
    assert res.metrics["step"].tolist() == [0, 1, 2]
    (tmp_path / "checkpoint-3" / "model" / "model.safetensors").unlink()      # a missing model file: not a complete checkpoint
    assert latest_checkpoint(tmp_path).name == "checkpoint-2"


def test_resume_with_another_optimizer(tok, tmp_path):
    "A checkpoint holds its optimizer's state: another kind of optimizer is refused by name before anything changes; another Hooks.optimizer_fn of the same kind warns."
    import warnings
    _train(tok, tmp_path, 1)
    model = tiny_test_model(); before = [p.detach().clone() for p in model.parameters()]
    sgd = lambda params, lr, weight_decay: torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    with pytest.raises(ValueError, match="holds the state of a AdamW optimizer and this run's optimizer is a SGD"):
        _train(tok, tmp_path, 2, model=model, resume_from=tmp_path, hooks=Hooks(optimizer_fn=sgd))
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))        # refused before loading anything
    adamw = lambda params, lr, weight_decay: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    with pytest.warns(UserWarning, match=r"hooks.optimizer_fn: 'AdamW' -> '.*<lambda>'"):
        res = _train(tok, tmp_path, 2, resume_from=tmp_path, hooks=Hooks(optimizer_fn=adamw))
    assert res.metrics["step"].tolist() == [0, 1]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _train(tok, tmp_path / "again", 1); _train(tok, tmp_path / "again", 2, resume_from=tmp_path / "again")   # the same optimizer: no warning
    assert not [w for w in seen if "optimizer_fn" in str(w.message)]


def test_resume_under_another_kind_of_run_is_refused_first(tok, tmp_path):
    _train(tok, tmp_path, 1)
    model = tiny_test_model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="PPO critic"):
        _train(tok, tmp_path, 2, model=model, algorithm="ppo", resume_from=tmp_path / "checkpoint-1")
    from peft import LoraConfig, get_peft_model
    with pytest.raises(ValueError, match="use_lora=False"):
        _train(tok, tmp_path, 2, model=get_peft_model(tiny_test_model(), LoraConfig(r=4, target_modules=["q_proj"])), resume_from=tmp_path / "checkpoint-1")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_nonfinite_rewards_follow_on_reward_error(tok):
    from rlprims.rewards import compute_rewards
    from rlprims.core import Rollout, Generation
    r = Rollout("p", Generation("x", torch.tensor([1]), None, torch.ones(1)))
    with pytest.raises(ValueError, match="rollout 1"):
        compute_rewards([r, r], lambda ro, k=iter([1.0, float("inf")]): next(k))
    out = compute_rewards([r, r], {"big": lambda ro: 3e38, "one": lambda ro: 1.0}, weights=[10.0, 1.0], on_error="fallback")
    assert out.num_errors == 2 and out.rewards.tolist() == [0.0, 0.0]    # the weighted sum overflows float32: replaced, counted


@pytest.mark.parametrize("which", ["generate_batch", "generate_batch_fast"])
def test_bad_prompt_tensors_are_refused_before_the_model_is_touched(tok, which):
    "A right-padded row is refused with a message naming the generator and the row; the model keeps its training mode and gets no forward."
    from rlprims.generation import generate_batch, tokenize_prompts
    from rlprims.fast_decode import generate_batch_fast
    model = tiny_test_model().train()
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    ids, mask = tokenize_prompts(tok, ["What is 1+1?", "Hi"])
    right = torch.stack([mask[0], mask[1].flip(0)])
    gen = {"generate_batch": generate_batch, "generate_batch_fast": partial(generate_batch_fast, static=True)}[which]
    with pytest.raises(ValueError, match=f"{which}: prompt row 1 ends in padding"):
        gen(model, tok, ids, right, GEN)
    hook.remove()
    assert model.training and not calls
    assert gen(model, tok, ids, mask, GEN).completion_ids.shape[0] == 2   # the same rows, left-padded, decode
