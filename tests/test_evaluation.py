"Held-out evaluation inside `train`, pass@k/maj@k, datasets.Dataset inputs, experiment trackers and the CLI's help (issue 18)."
import json, re
import pytest
from rlprims.core import GenerationConfig, RunConfig
from rlprims.generation import load_tokenizer
from rlprims.rollouts import create_batch_rollouts
from rlprims.metrics import evaluate, create_loggers
from rlprims.training import train, create_addition_dataset, ADDITION_REWARDS, tiny_test_model
from rlprims.cli import main

GEN = GenerationConfig(max_new_tokens=5, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tok(): return load_tokenizer()


def _run(tok, out, steps=3, **kw):
    return train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=2,
                 learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok, gen_config=GEN, **kw)


def test_train_evaluates_before_between_and_after(tok, tmp_path):
    held = create_addition_dataset(6, seed=99)
    res = _run(tok, tmp_path / "eval", eval_dataset=held, run=RunConfig(progress=False, seed=4, eval_every=2, save_final=False))
    ev = res.metrics.dropna(subset=["eval_accuracy"])
    assert ev["step"].tolist() == [0, 2, 3]                       # before, every 2 steps, after the last (3)
    assert res.metrics["reward"].notna().sum() == 3               # the three training steps
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["eval_before"]["step"] == 0 and summary["eval_after"]["step"] == 3
    assert summary["eval_after"]["eval_accuracy"] == ev["eval_accuracy"].iloc[-1]
    # evaluating does not change the training: the same steps as a run without a held-out set
    plain = _run(tok, tmp_path / "plain", run=RunConfig(progress=False, seed=4, save_final=False)).metrics
    cols = ["reward", "loss", "grad_norm", "entropy"]
    assert res.metrics.dropna(subset=["reward"])[cols].values.tolist() == plain[cols].values.tolist()


def test_evaluate_before_equals_a_direct_call(tok, tmp_path):
    held = create_addition_dataset(4, seed=7)
    model = tiny_test_model()
    direct = evaluate(model, tok, held, ADDITION_REWARDS, GEN)
    res = train(prompts=create_addition_dataset(8), reward_fn=ADDITION_REWARDS, num_steps=1, batch_size=2, num_generations=2,
                model=model, tokenizer=tok, gen_config=GEN, output_dir=tmp_path, eval_dataset=held,
                run=RunConfig(progress=False, save_final=False))
    first = res.metrics.iloc[0]
    assert first["step"] == 0 and first["eval_reward"] == pytest.approx(direct["eval_reward"])


def test_datasets_dataset_is_accepted_everywhere(tok, tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = create_addition_dataset(8, seed=3)
    ds = datasets.Dataset.from_list(rows)
    res = create_batch_rollouts(tiny_test_model(), tok, ds.select(range(2)), GEN, ADDITION_REWARDS, num_generations=2)
    assert res.batch.size == 4 and res.rollouts[0].metadata["answer"] == rows[0]["answer"]
    model = tiny_test_model()
    assert evaluate(model, tok, ds, ADDITION_REWARDS, GEN, batch_size=3) == evaluate(model, tok, rows, ADDITION_REWARDS, GEN, batch_size=3)
    out = train(prompts=ds, reward_fn=ADDITION_REWARDS, num_steps=2, batch_size=2, num_generations=2, model=tiny_test_model(),
                tokenizer=tok, gen_config=GEN, output_dir=tmp_path, eval_dataset=ds.select(range(3)),
                run=RunConfig(progress=False, save_final=False))
    assert out.metrics["eval_accuracy"].notna().sum() == 2


def test_tensorboard_from_train(tok, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    res = _run(tok, tmp_path, steps=2, run=RunConfig(progress=False, save_final=False, report_to=("tensorboard",)))
    ev = EventAccumulator(str(tmp_path / "tensorboard")); ev.Reload()
    got = [(e.step, e.value) for e in ev.Scalars("loss")]
    assert [s for s, _ in got] == [0, 1]
    assert [v for _, v in got] == pytest.approx(res.metrics["loss"].tolist(), rel=1e-6, abs=1e-12)


def test_trackers_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="known: tensorboard, wandb, trackio"): create_loggers(("mlflow",), tmp_path)
    try: import wandb  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install wandb"): create_loggers(("wandb",), tmp_path)


def test_cli_help_names_every_flag_and_algorithm(capsys):
    with pytest.raises(SystemExit) as e: main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for name in ("grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp", "ppo", "online_dpo"): assert name in text
    flags = {"--steps": "30", "--lr": "1e-05", "--seed": "0", "--out": "./rlprims-run", "--eval-every": "10", "--checkpoint-every": "10",
             "--kl-coef": "0.0", "--resume-from": "None"}
    one_line = " ".join(text.split())                                  # argparse wraps help text over lines
    for flag, default in flags.items():
        block = one_line[one_line.index(f" {flag} "):]
        block = block[:re.search(r" --[a-z]", block[2:]).start() + 2] if re.search(r" --[a-z]", block[2:]) else block   # up to the next flag
        assert f"(default: {default})" in block and len(block.split(")")[0]) > len(flag) + 20, (flag, block)   # its value, after some help
