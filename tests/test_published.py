"""Algorithms as published (issue 14): each test computes the expected value independently and fails on the old code."""
import math
import pytest
import torch
from rlprims.core import GenerationConfig, RolloutBatch, pad_right, Rollout, Generation, RunConfig, Hooks
from rlprims.generation import load_tokenizer, compute_logprobs_for_tokens
from rlprims.rollouts import score_rollouts, create_batch_rollouts
from rlprims.kl import create_periodic_updater, create_reference_model
from rlprims.algorithms import get_algorithm_config, compute_advantages, compute_policy_loss, loss_metrics, kl_penalty_term
from rlprims.ppo import create_reinforce_pp_config
from rlprims.critic import create_critic, critic_parameters, critic_values, value_loss
from rlprims.precision import create_precision
from rlprims.training import training_iteration, train, tiny_test_model, create_addition_dataset, _average_logs

GEN = GenerationConfig(max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def fixed_generator(replies, logprob=-0.5):
    "Row i gets `replies[i % len(replies)]` then EOS, whatever the model."
    def gen(model, tokenizer, prompt_ids, prompt_mask, config, compute_logprobs=True):
        rows = [tokenizer(replies[i % len(replies)], add_special_tokens=False)["input_ids"][:config.max_new_tokens - 1] + [tokenizer.eos_token_id]
                for i in range(prompt_ids.shape[0])]
        comp = pad_right([torch.tensor(r) for r in rows], tokenizer.pad_token_id)
        mask = pad_right([torch.ones(len(r)) for r in rows], 0)
        return RolloutBatch(prompt_ids, prompt_mask.float(), comp, mask, logprobs=torch.full(comp.shape, float(logprob)) * mask)
    return gen


REPLIES = ["a", "the sum is 12", "bb cc", "one two three four five six"]


def test_kl_in_reward_is_beta_times_the_sum(tok):
    "A 12-token row: the reward penalty is beta * sum_t k1, computed here from an independent reference pass."
    torch.manual_seed(0)
    model, ref = tiny_test_model(), tiny_test_model(seed=1)
    ids = torch.arange(100, 112)[None]
    batch = RolloutBatch(torch.tensor([[5, 6, 7]]), torch.ones(1, 3), ids, torch.ones(1, 12), logprobs=torch.full((1, 12), -3.0))
    r0 = Rollout("p", Generation("x", ids[0], None, torch.ones(12)))
    res = score_rollouts([r0], batch, lambda r: 1.0, ref_model=ref, kl_coef=0.1, kl_in_reward=True, kl_estimator="k1")
    ref_lp = compute_logprobs_for_tokens(ref, batch.prompt_ids, batch.prompt_mask, ids)
    want = 1.0 - 0.1 * (-3.0 - ref_lp).sum().item()
    assert res.batch.rewards[0].item() == pytest.approx(want, abs=1e-5)
    assert res.rollouts[0].kl_penalty == pytest.approx(0.1 * (-3.0 - ref_lp).sum().item(), abs=1e-5)


def test_reinforce_pp_token_kl_inside_a_step(tok):
    "REINFORCE++ with a reference: per-token KL rewards make advantages vary along a row, and match compute_advantages(kl=...)."
    torch.manual_seed(0)
    model = tiny_test_model()
    ref = create_reference_model(model)
    with torch.no_grad(): ref.model.norm.weight.mul_(1.5)                 # a reference that differs
    seen = {}
    def loss_fn(logprobs, old_logprobs, advantages, mask, **kw):
        seen["adv"], seen["mask"] = advantages, mask
        return (logprobs * 0).sum()
    cfg = get_algorithm_config(0, "reinforce_pp", kl_coef=0.5)
    st = training_iteration(model, tok, create_addition_dataset(2), GEN, cfg, lambda r: float(len(r.generation.text) % 2),
                            torch.optim.SGD(model.parameters(), lr=0.0), ref_model=ref, num_generations=2, hooks=Hooks(generator=fixed_generator(REPLIES), loss_fn=loss_fn))
    adv, m = seen["adv"], seen["mask"]
    row = adv[1][m[1] > 0]                                           # "the sum is 12": several tokens
    assert row.numel() > 2 and (row[1:] - row[:-1]).abs().max() > 1e-4   # per-token credit, not one value per row
    assert st.metrics["reward"] == pytest.approx(sum(len(t) % 2 for t in REPLIES[:4]) / 4)   # no KL folded into the reward


def test_dr_grpo_divides_by_the_budget_not_the_width(tok):
    "The same row, in a batch trimmed to 10 or to 40 tokens: the same loss and gradient (Dr. GRPO's constant is max_new_tokens)."
    cfg = get_algorithm_config(0, "dr_grpo", loss_norm_len=64)
    grads = []
    for width in (10, 40):
        lp = torch.zeros(2, width, requires_grad=True); m = torch.zeros(2, width); m[0, :5] = 1; m[1, :7] = 1
        loss, _ = compute_policy_loss(lp, lp.detach(), torch.tensor([1.0, -1.0]), m, cfg)
        loss.backward(); grads.append(lp.grad[:, :5].clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0][0, 0].item() == pytest.approx(-1 / (2 * 64))
    # and training sets the constant from the generation budget
    model = tiny_test_model()
    seen = {}
    loss_fn = lambda config, logprobs, **kw: (seen.setdefault("n", config.loss_norm_len), (logprobs * 0).sum())[1]
    training_iteration(model, tok, create_addition_dataset(2), GEN, get_algorithm_config(0, "dr_grpo"), lambda r: float(len(r.generation.text)),
                       torch.optim.SGD(model.parameters(), lr=0.0), num_generations=2, hooks=Hooks(generator=fixed_generator(REPLIES), loss_fn=loss_fn))
    assert seen["n"] == GEN.max_new_tokens


def _prompts(kind, n):
    return [{"prompt": f"{kind} question {i}", "kind": kind} for i in range(n)]


def _task_reward(r):
    kind = r.metadata["kind"]
    return 1.0 if kind == "easy" else 0.0 if kind == "hard" else float(len(r.generation.text) > 4)


def test_dapo_filters_on_accuracy_and_refills(tok):
    "Groups all right or all wrong are dropped even when lengths (overlong shaping) differ; the batch is refilled to batch_size groups."
    model = tiny_test_model()
    cfg = get_algorithm_config(0, "dapo", overlong_buffer=4)          # buffer 2 at 8 tokens: long replies get shaped rewards
    more = iter([_prompts("mixed", 2), _prompts("mixed", 2)])
    seen = {}
    def adv_fn(rewards, **kw): seen["rewards"] = rewards.clone(); return rewards - rewards.mean()
    st = training_iteration(model, tok, _prompts("easy", 1) + _prompts("hard", 1), GEN, cfg, {"correct": _task_reward},
                            torch.optim.SGD(model.parameters(), lr=1e-3), num_generations=4,
                            prompt_source=lambda n: next(more), hooks=Hooks(generator=fixed_generator(REPLIES), advantage_fn=adv_fn))
    m = st.metrics
    assert m["sampling_rounds"] == 2 and m["kept_groups"] == 2 and m.get("skipped_update", 0) == 0
    assert m["kept_frac"] == pytest.approx(0.5)                      # 8 of the 16 rows sampled in two rounds
    assert seen["rewards"].numel() == 8                              # exactly batch_size groups of 4
    # without refilling (no prompt_source) the step has nothing to learn from
    st2 = training_iteration(model, tok, _prompts("easy", 1) + _prompts("hard", 1), GEN, cfg, {"correct": _task_reward},
                             torch.optim.SGD(model.parameters(), lr=1e-3), num_generations=4, hooks=Hooks(generator=fixed_generator(REPLIES)))
    assert st2.metrics["skipped_update"] == 1 and st2.metrics["kept_groups"] == 0


def _dpo_update(tok, micro, mini=None):
    torch.manual_seed(0)
    model = tiny_test_model()
    ref = create_reference_model(model)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = get_algorithm_config(0, "online_dpo", micro_batch_size=micro, mini_batch_size=mini)
    rewards = {"len": lambda r: float(len(r.generation.text)) if r.metadata["group_id"] != 1 else 1.0}   # group 1: no reward gap
    training_iteration(model, tok, create_addition_dataset(3), GEN, cfg, rewards, torch.optim.SGD(model.parameters(), lr=1.0),
                       ref_model=ref, num_generations=4, hooks=Hooks(generator=fixed_generator(REPLIES)))
    return [p.detach() - b for p, b in zip(model.parameters(), before)]


def test_online_dpo_gradient_does_not_depend_on_micro_batch(tok):
    full = _dpo_update(tok, 12)
    for micro in (2, 3, 4, 8):                                       # 2 and 3 round up to one group of 4; 8 holds two groups
        upd = _dpo_update(tok, micro)
        for a, b in zip(upd, full): torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    _dpo_update(tok, 4, mini=6)                                      # not a multiple of the group: rounded, no crash


def test_ppo_separate_critic_gives_the_policy_no_value_gradient():
    torch.manual_seed(0)
    policy = tiny_test_model()
    critic = create_critic(policy)
    torch.nn.init.normal_(critic.head.weight)
    ids, am = torch.randint(0, 1000, (2, 9)), torch.ones(2, 9, dtype=torch.long)
    value_loss(critic_values(critic, ids, am, 4), torch.zeros(2, 4), torch.ones(2, 4), torch.ones(2, 4)).backward()
    assert all(p.grad is None for p in policy.parameters())
    assert all(p.grad is not None for p in critic_parameters(critic))
    shared = create_critic(policy, shared=True); torch.nn.init.normal_(shared.head.weight)
    value_loss(critic_values(shared, ids, am, 4), torch.zeros(2, 4), torch.ones(2, 4), torch.ones(2, 4)).backward()
    assert policy.model.layers[0].mlp.up_proj.weight.grad is not None


def test_ppo_trains_and_resumes_with_its_critic(tok, tmp_path):
    kw = dict(prompts=create_addition_dataset(8), reward_fn=lambda r: float(len(r.generation.text) % 3), batch_size=2, num_generations=2,
              learning_rate=1e-3, output_dir=tmp_path / "run", tokenizer=tok, gen_config=GEN, algorithm="ppo",
              run=RunConfig(progress=False, seed=3, checkpoint_every=1), train_overrides={"num_inner_epochs": 2})
    full = train(model=tiny_test_model(), num_steps=2, **{**kw, "output_dir": tmp_path / "full"}).metrics
    train(model=tiny_test_model(), num_steps=1, **kw)
    res = train(model=tiny_test_model(), num_steps=2, resume_from=tmp_path / "run" / "checkpoint-1", **kw).metrics
    assert (tmp_path / "run" / "checkpoint-1" / "critic.safetensors").exists()
    assert res["value_loss"].tolist() == full["value_loss"].tolist() and res["loss"].tolist() == full["loss"].tolist()


def test_multiturn_overlong_counts_the_policy_tokens_only(tok):
    "An episode whose completion is mostly tool output: DAPO's length penalty looks at the policy's own tokens."
    model = tiny_test_model()
    seen = {}
    def rollout_fn(*a, **k):
        r = create_batch_rollouts(*a, **k)
        lm = r.batch.completion_mask.clone(); lm[:, 1:] = 0                  # pretend all but the first token came from a tool
        return r._replace(batch=r.batch._replace(loss_mask=lm), generation_budget=8)
    def adv_fn(rewards, **kw): seen["rewards"] = rewards.clone(); return rewards - rewards.mean()
    cfg = get_algorithm_config(0, "dapo", overlong_buffer=4, dynamic_sampling=False)
    training_iteration(model, tok, create_addition_dataset(2), GEN, cfg, lambda r: 1.0, torch.optim.SGD(model.parameters(), lr=0.0),
                       num_generations=2, hooks=Hooks(rollout_fn=rollout_fn, generator=fixed_generator(["x " * 20]), advantage_fn=adv_fn))
    assert torch.equal(seen["rewards"], torch.ones(4))                     # one policy token each: no penalty


def test_ref_update_gets_the_one_based_step(tok, tmp_path):
    steps, fired = [], []
    periodic = create_periodic_updater(2)
    def update(ref, policy, step, kl):
        steps.append(step); fired.append(periodic(ref, policy, step=step, kl=kl))
    train(prompts=create_addition_dataset(8), reward_fn=lambda r: float(len(r.generation.text) % 3), num_steps=3, batch_size=1,
          num_generations=2, model=tiny_test_model(), tokenizer=tok, gen_config=GEN, output_dir=tmp_path,
          kl_coef=0.1, run=RunConfig(progress=False, save_final=False), hooks=Hooks(ref_update_fn=update))
    assert steps == [1, 2, 3] and fired == [False, True, False]   # update_every=2: after the second optimizer step


def test_small_fixes():
    lp, ref, m = torch.tensor([[math.log(.5)]]), torch.tensor([[math.log(.25)]]), torch.ones(1, 1)
    cfg = get_algorithm_config(0, "grpo", kl_estimator="k1")
    _, met = compute_policy_loss(lp.clone().requires_grad_(), lp, torch.ones(1), m, cfg, ref_logprobs=ref)
    assert met["kl_ref"] == pytest.approx(math.log(2))                # k1, as configured (k3 would be 0.193)
    r = 1.5                                                           # approx_kl: k3 of KL(old || new) = r - 1 - log r
    assert loss_metrics(torch.tensor([[math.log(r)]]), torch.zeros(1, 1), m, 0.2, 0.2)["approx_kl"] == pytest.approx(r - 1 - math.log(r))
    logs = [{"loss": 1.0, "_tokens": 3.0, "sum/x": 1.0}, {"loss": 5.0, "_tokens": 1.0, "sum/x": 2.0}]
    assert _average_logs(logs) == {"loss": 2.0, "sum/x": 3.0}          # weighted by tokens: (3 + 5) / 4
    from rlprims.core import TrainingConfig
    assert "normalize_rewards" not in TrainingConfig._fields
