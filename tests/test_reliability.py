"""Faults survived and nothing lost: NaN steps, failing rewards, EOS-only generations, and a run killed mid-checkpoint."""
import os, signal, subprocess, sys, textwrap, time
import pandas as pd
import pytest
import torch
from rlprims.core import GenerationConfig, RolloutBatch
from rlprims.generation import load_tokenizer
from rlprims.algorithms import create_grpo_config
from rlprims.training import train, training_iteration, make_addition_dataset, ADDITION_REWARDS, tiny_test_model, latest_checkpoint

GEN = GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _train(tok, out, steps, model=None, **kw):
    return train(prompts=make_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=2,
                 learning_rate=1e-3, output_dir=out, model=model or tiny_test_model(), tokenizer=tok, progress=False, seed=11,
                 gen_config=GEN, checkpoint_every=1, **kw)


def test_nan_steps_are_skipped_then_stop(tok, tmp_path):
    model = tiny_test_model()
    before = [p.detach().clone() for p in model.parameters()]
    nan_loss = lambda logprobs, mask, **kw: (logprobs * mask).sum() * float("nan")
    with pytest.raises(RuntimeError, match="2 steps in a row"):
        _train(tok, tmp_path, 4, model=model, loss_fn=nan_loss, max_nonfinite_steps=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "a NaN update reached the weights"
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert m["skipped_nonfinite"].tolist() == [1, 1]


def test_reward_that_raises_on_one_rollout(tok, tmp_path):
    def flaky(r):
        if "7" in r.prompt: raise RuntimeError("cannot parse")
        return 1.0
    with pytest.raises(ValueError, match="reward function 'flaky' on rollout"):
        train(prompts=make_addition_dataset(16), reward_fn=flaky, num_steps=2, batch_size=4, num_generations=2, model=tiny_test_model(),
            tokenizer=tok, progress=False, gen_config=GEN, output_dir=tmp_path / "raise", seed=1)
    with pytest.warns(UserWarning, match="replaced by fallback"):
        res = train(prompts=make_addition_dataset(16), reward_fn=flaky, num_steps=2, batch_size=4, num_generations=2, model=tiny_test_model(),
                    tokenizer=tok, progress=False, gen_config=GEN, output_dir=tmp_path / "fb", seed=1, on_reward_error="fallback")
    assert res.metrics["reward_errors"].sum() > 0 and len(res.metrics) == 2


def test_generation_of_only_eos(tok):
    def only_eos(model, tokenizer, prompt_ids, prompt_mask, config, compute_logprobs=True):
        n = prompt_ids.shape[0]
        return RolloutBatch(prompt_ids, prompt_mask, torch.full((n, 1), tokenizer.eos_token_id), torch.ones(n, 1),
                            logprobs=torch.full((n, 1), -0.3))
    model = tiny_test_model()
    st = training_iteration(model, tok, make_addition_dataset(2), GEN, create_grpo_config(kl_coef=0.0), lambda r: float(len(r.prompt) % 2),
                            torch.optim.AdamW(model.parameters(), 1e-3), num_generations=2, generator=only_eos)
    assert st.metrics["response_len_mean"] == 1.0 and st.metrics["skipped_nonfinite"] == 0


SCRIPT = textwrap.dedent("""
    import sys
    from rlprims.generation import load_tokenizer
    from rlprims.core import GenerationConfig
    from rlprims.training import train, make_addition_dataset, ADDITION_REWARDS, tiny_test_model
    train(prompts=make_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=4, batch_size=2, num_generations=2,
          learning_rate=1e-3, output_dir=sys.argv[1], model=tiny_test_model(), tokenizer=load_tokenizer(), progress=False, seed=11,
          gen_config=GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0), checkpoint_every=1)
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
