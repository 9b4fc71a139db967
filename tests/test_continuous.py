"ContinuousRollouts (rlprims.continuous): whole groups, exact resume through a checkpoint, and its refusals, on a tiny CPU model."
import json
import pytest, torch
from rlprims.core import GenerationConfig, RunConfig, Hooks
from rlprims.generation import load_tokenizer
from rlprims.training import train, tiny_test_model, create_addition_dataset, ADDITION_REWARDS
from rlprims.continuous import ContinuousRollouts

GEN = GenerationConfig(max_new_tokens=8, temperature=1.0, top_p=1.0, top_k=0)

@pytest.fixture(scope="module")
def tok(): return load_tokenizer()

def _rollouts(**kw): return ContinuousRollouts(slots=3, max_prompt_tokens=96, check_every=2, eos_ids=list(range(0, 49152, 20)), **kw)

def _run(tok, out, steps, cr, **kw):
    return train(prompts=create_addition_dataset(16), reward_fn=ADDITION_REWARDS, num_steps=steps, batch_size=2, num_generations=2,
                 learning_rate=1e-3, output_dir=out, model=tiny_test_model(), tokenizer=tok, gen_config=GEN,
                 train_overrides={"tis_cap": 2.0}, run=RunConfig(progress=False, seed=5, checkpoint_every=2, show_plot=False),
                 hooks=Hooks(rollout_fn=cr), **kw)

def test_whole_groups_in_finishing_order(tok):
    "Each call returns as many whole groups as it was given prompts: consecutive rows share a prompt; rows carried over report their lag."
    model, cr = tiny_test_model(), _rollouts()
    draws = iter([[p] for p in create_addition_dataset(40)])
    source = lambda n: [next(draws)[0] for _ in range(n)]
    lags = []
    for step in range(4):
        res = cr(model, tok, source(2), GEN, ADDITION_REWARDS, num_generations=3, prompt_source=source)
        b = res.batch
        assert b.size == 6 and b.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
        prompts = [r.prompt for r in res.rollouts]
        assert prompts[0] == prompts[1] == prompts[2] and prompts[3] == prompts[4] == prompts[5]
        assert torch.equal(b.completion_mask.sum(1), torch.tensor([len(r.generation.token_ids) for r in res.rollouts], dtype=torch.float))
        assert res.generation_budget == 8 and b.rewards.shape == (6,)
        lags += [r.metadata["policy_lag"] for r in res.rollouts]
    assert min(lags) == 0 and max(lags) >= 1            # with a step admitted ahead, some rows span an update
    state = cr.state_dict()                              # drains: every admitted group is finished and kept
    assert cr.session is None and cr.rows == {} and len(state["groups"]) == len(cr.groups) > 0
    again = _rollouts(); again.load_state_dict(json.loads(json.dumps(state)))   # as a checkpoint's state.json carries it
    assert again.state_dict() == state and again.finished_order == cr.finished_order
    for g, x in cr.groups.items():                       # the same tensors back, log-probs to the bit
        for j, (t, lp, v) in x["samples"].items():
            t2, lp2, v2 = again.groups[g]["samples"][j]
            assert torch.equal(t, t2) and torch.equal(lp, lp2) and v == v2

def test_resume_matches_uninterrupted_run(tok, tmp_path):
    "A run resumed from a checkpoint (rows drained into it) takes the same steps as the run that wrote it."
    full = _run(tok, tmp_path / "full", 4, _rollouts()).metrics
    _run(tok, tmp_path / "part", 2, _rollouts())
    state = json.loads((tmp_path / "part" / "checkpoint-2" / "state.json").read_text())
    assert len(state["rollout_state"]["groups"]) > 0     # groups admitted ahead, finished by the drain, waiting in the checkpoint
    part = _run(tok, tmp_path / "part", 4, _rollouts(), resume_from=tmp_path / "part" / "checkpoint-2").metrics
    cols = ["reward", "loss", "grad_norm", "tokens"]
    assert part[cols].values.tolist() == full[cols].values.tolist()

def test_refusals(tok, monkeypatch):
    "A prompt longer than max_prompt_tokens, a changed gen_config, a negative `ahead`, an FSDP2 model: each refused with the reason."
    import rlprims.continuous as C
    model = tiny_test_model()
    with pytest.raises(ValueError, match="ahead"): ContinuousRollouts(ahead=-1)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        ContinuousRollouts(slots=2, max_prompt_tokens=4)(model, tok, ["What is 1 + 2? Answer with a number."], GEN, ADDITION_REWARDS, num_generations=2)
    cr = _rollouts()
    cr(model, tok, [{"prompt": "What is 1 + 2?", "answer": "3"}], GEN, ADDITION_REWARDS, num_generations=2)
    with pytest.raises(ValueError, match="gen_config changed"):
        cr(model, tok, [{"prompt": "What is 1 + 2?", "answer": "3"}], GEN._replace(max_new_tokens=6), ADDITION_REWARDS, num_generations=2)
    monkeypatch.setattr(C, "is_fsdp", lambda m: m is model)
    with pytest.raises(NotImplementedError, match="FSDP2"): _rollouts()(model, tok, ["What is 1 + 2?"], GEN, ADDITION_REWARDS, num_generations=2)
