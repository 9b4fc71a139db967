"Edge cases for rlprims.algorithms beyond the notebook's examples."
import math
import pytest
import torch
from torch.autograd import gradcheck
from rlprims.algorithms import *
from rlprims.ppo import *
from rlprims.online_dpo import *
from rlprims.critic import *
from rlprims.core import TrainingConfig

D = dict(dtype=torch.float64)


def _rand(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), **D) * scale


def _mask(rows, T):
    "Float64 mask with `rows[i]` leading valid tokens per row."
    return (torch.arange(T)[None] < torch.tensor(rows)[:, None]).double()


# ---------------------------------------------------------------- group baselines
# float32 values whose mean over a group of equal copies is not bit-equal to them (r - mean(r) != 0 in torch)
@pytest.mark.parametrize("value", [0.8847743272781372, 6.340786933898926, 0.8010542392730713, 0.1, 1e8 + 0.1, 0.0])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("G", [3, 6])
def test_equal_groups_give_exact_zero(value, scale, G):
    r = torch.full((2 * G,), value)
    for fn in (lambda r: group_advantages(r, G, scale=scale), lambda r: rloo_advantages(r, G)):
        adv = fn(r)
        assert not adv.isnan().any() and (adv == 0).all()


def test_group_advantages_whole_batch_one_group_and_long_rewards():
    adv = group_advantages(torch.tensor([1, 0, 0, 0]), 4)          # integer rewards are fine
    assert torch.allclose(adv, torch.tensor([1.5, -.5, -.5, -.5]), atol=1e-5)


@pytest.mark.parametrize("fn", [group_advantages, rloo_advantages, filter_groups, best_worst_pairs, all_pairs])
def test_group_size_errors(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}: group_size=1"): fn(torch.zeros(4), 1)
    with pytest.raises(ValueError, match=rf"{fn.__name__}: rewards has 6 rows, not a multiple of group_size=4"): fn(torch.zeros(6), 4)
    with pytest.raises(ValueError, match=r"rewards must be \[N\]"): fn(torch.zeros(2, 2), 2)
    with pytest.raises(TypeError, match="group_size must be an int"): fn(torch.zeros(4), 2.0)


def test_group_advantages_unknown_scale():
    with pytest.raises(ValueError, match="known: group, batch, none"): group_advantages(torch.zeros(4), 2, scale="std")


def test_rloo_group_of_two_is_difference():
    assert torch.equal(rloo_advantages(torch.tensor([3., 1, 5, 9]), 2), torch.tensor([2., -2, -4, 4]))


# ---------------------------------------------------------------- aggregation and whitening
def test_aggregate_single_token_and_empty_rows():
    loss, m = torch.tensor([[2., 9, 9], [4, 6, 9], [9, 9, 9]]), _mask([1, 2, 0], 3).float()
    assert aggregate_loss(loss, m).item() == pytest.approx(12 / 3)
    assert aggregate_loss(loss, m, "seq-mean-token-mean").item() == pytest.approx((2 + 5) / 2)   # empty row left out
    assert aggregate_loss(loss, m, "seq-mean-token-sum").item() == pytest.approx((2 + 10) / 2)
    assert aggregate_loss(loss, m, "seq-mean-token-sum-norm").item() == pytest.approx((2 / 3 + 10 / 3) / 2)


def test_aggregate_errors():
    with pytest.raises(ValueError, match="aggregate_loss: unknown mode='mean'; known modes: token-mean"):
        aggregate_loss(torch.ones(1, 2), torch.ones(1, 2), "mean")
    with pytest.raises(ValueError, match="aggregate_loss: loss_mat has shape"): aggregate_loss(torch.ones(1, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="mask must be"): aggregate_loss(torch.ones(2), torch.ones(2))


def test_whiten_statistics():
    x, m = _rand(5, 8, seed=1) * 3 + 2, _mask([8, 1, 3, 0, 5], 8)
    w = whiten(x, m)
    v = w[m > 0]
    assert v.mean().abs() < 1e-10 and (v.var(unbiased=False) - 1).abs() < 1e-6 and (w[m == 0] == 0).all()
    w2 = whiten(x, m, shift_mean=False)
    assert torch.allclose(w2[m > 0].mean(), x[m > 0].mean())
    with pytest.raises(ValueError, match="whiten: x has shape"): whiten(x, m[:, :3])


# ---------------------------------------------------------------- policy losses
def test_ppo_seq_and_token_advantages_agree():
    lp, old, m, A = _rand(3, 4, seed=2, scale=.3), _rand(3, 4, seed=3, scale=.3), _mask([4, 1, 2], 4), _rand(3, seed=4)
    a = ppo_clip_loss(lp, old, A, m, 0.2, 0.28)
    b = ppo_clip_loss(lp, old, A[:, None].expand(3, 4), m, 0.2, 0.28)
    assert torch.allclose(a, b)


def test_ppo_clip_both_sides_both_signs_float64_exact():
    # ratio grid x advantage sign x asymmetric bounds [0.7, 1.4]
    ratios = torch.tensor([[0.5, 0.9, 1.2, 1.6]] * 2, **D)
    A = torch.tensor([[1.], [-1.]], **D).expand(2, 4).contiguous()
    lp = ratios.log().requires_grad_()
    loss = ppo_clip_loss(lp, torch.zeros(2, 4, **D), A, torch.ones(2, 4, **D), clip_low=0.3, clip_high=0.4)
    per_tok = torch.tensor([[-0.5, -0.9, -1.2, -1.4], [0.7, 0.9, 1.2, 1.6]], **D)
    assert loss.item() == pytest.approx(per_tok.mean().item(), abs=1e-12)
    loss.backward()
    grad = torch.tensor([[-0.5, -0.9, -1.2, 0.0], [0.0, 0.9, 1.2, 1.6]], **D) / 8
    assert torch.allclose(lp.grad, grad, atol=1e-12)


@pytest.mark.parametrize("bad", [dict(clip_low=-0.1), dict(clip_low=1.0), dict(clip_high=-1e-3)])
def test_clip_range_errors(bad):
    lp, m = torch.zeros(1, 2), torch.ones(1, 2)
    with pytest.raises(ValueError, match="ppo_clip_loss: clip_"): ppo_clip_loss(lp, lp, torch.ones(1), m, **bad)
    if "clip_high" in bad:
        with pytest.raises(ValueError, match="cispo_loss: clip_high"): cispo_loss(lp, lp, torch.ones(1), m, **bad)
    with pytest.raises(ValueError, match="gspo_loss: clip_"): gspo_loss(lp, lp, torch.ones(1), m, **bad)
    with pytest.raises(ValueError, match="loss_metrics: clip_"):
        loss_metrics(lp, lp, m, bad.get("clip_low", 0.2), bad.get("clip_high", 0.2))


def test_shape_errors_name_function_and_argument():
    lp, m = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"gspo_loss: old_logprobs has shape \(2, 2\) but mask has \(2, 3\)"):
        gspo_loss(lp, torch.zeros(2, 2), torch.ones(2), m)
    with pytest.raises(ValueError, match=r"cispo_loss: logprobs has shape"): cispo_loss(torch.zeros(3, 3), lp, torch.ones(2), m)
    with pytest.raises(ValueError, match=r"ppo_clip_loss: advantages has shape \(3,\)"): ppo_clip_loss(lp, lp, torch.ones(3), m)
    with pytest.raises(ValueError, match=r"ppo_clip_loss: advantages is None"): ppo_clip_loss(lp, lp, None, m)
    with pytest.raises(ValueError, match=r"value_loss: returns has shape"): value_loss(lp, lp, torch.zeros(2, 4), m)
    with pytest.raises(ValueError, match=r"kl_penalty_term: ref_logprobs has shape"): kl_penalty_term(lp, torch.zeros(1, 3), m, 0.1)
    with pytest.raises(ValueError, match=r"gae_advantages: values has shape"): gae_advantages(torch.ones(2), torch.zeros(2, 2), m)
    with pytest.raises(ValueError, match=r"rewards_to_tokens: rewards has shape \(3,\)"): rewards_to_tokens(torch.ones(3), m)
    with pytest.raises(ValueError, match=r"dual_clip=0.5"): ppo_clip_loss(lp, lp, torch.ones(2), m, dual_clip=0.5)


def test_gspo_single_token_sequences_match_ppo():
    "With one valid token per row the sequence ratio is the token ratio: GSPO = PPO-clip with seq-mean-token-mean."
    lp, old, A, m = _rand(4, 3, seed=5, scale=.2), _rand(4, 3, seed=6, scale=.2), _rand(4, seed=7), _mask([1, 1, 1, 1], 3)
    assert torch.allclose(gspo_loss(lp, old, A, m, 0.1, 0.15), ppo_clip_loss(lp, old, A, m, 0.1, 0.15, "seq-mean-token-mean"))


def test_gspo_all_empty_is_zero_with_grad():
    lp = torch.zeros(2, 3, requires_grad=True)
    out = gspo_loss(lp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3))
    out.backward()
    assert out.item() == 0.0 and lp.grad.abs().sum() == 0


def test_gradchecks_random_points():
    lp, old, ref, m = _rand(3, 4, seed=8, scale=.3), _rand(3, 4, seed=9, scale=.3), _rand(3, 4, seed=10, scale=.3), _mask([4, 2, 1], 4)
    A = _rand(3, 4, seed=11)
    x = lp.clone().requires_grad_()
    assert gradcheck(lambda x: ppo_clip_loss(x, old, A, m, 0.1, 0.3, "seq-mean-token-sum-norm", dual_clip=2.0), (x,))
    assert gradcheck(lambda x: gspo_loss(x, old, A, m, 0.05, 0.5), (x,))
    assert gradcheck(lambda x: value_loss(x, old, ref, m, clip=0.1, agg="seq-mean-token-mean"), (x,))
    assert gradcheck(lambda x: kl_penalty_term(x, ref, m, 0.3, "seq-mean-token-sum"), (x,))
    s = lp.sum(-1).detach().requires_grad_()
    assert gradcheck(lambda s: online_dpo_loss(s, ref.sum(-1), torch.tensor([0., 2, 1]), 3, beta=0.5, pair_selector=all_pairs), (s,))


def test_cispo_gradient_is_capped_weight_times_advantage():
    lp, old, m, A = _rand(3, 5, seed=12, scale=1.), torch.zeros(3, 5, **D), _mask([5, 3, 1], 5), _rand(3, seed=13)
    x = lp.clone().requires_grad_()
    cispo_loss(x, old, A, m, clip_high=0.5, agg="seq-mean-token-mean", clip_low=0.3).backward()
    w = lp.exp().clamp(0.7, 1.5)
    want = -w * A[:, None] * m / m.sum(-1, keepdim=True) / 3
    assert torch.allclose(x.grad, want, atol=1e-12)


def test_kl_term_finite_for_impossible_reference_token():
    lp, ref, m = torch.zeros(1, 2, requires_grad=True), torch.tensor([[-float("inf"), 0.]]), torch.ones(1, 2)
    out = kl_penalty_term(lp, ref, m, 1.0)
    out.backward()
    assert math.isfinite(out.item()) and torch.isfinite(lp.grad).all()
    assert kl_penalty_term(lp, lp.detach(), m, 1.0).item() == 0.0


# ---------------------------------------------------------------- DAPO pieces
def test_overlong_penalty_boundaries():
    L = torch.tensor([0., 12, 12.5, 14, 16, 16.0001, 1000])
    got = overlong_penalty(L, max_len=16, buffer_len=4, penalty=2.0)
    want = torch.tensor([0., 0, -0.25, -1.0, -2.0, -2.0, -2.0])
    assert torch.allclose(got, want)
    with pytest.raises(ValueError, match="buffer_len=17, max_len=16"): overlong_penalty(L, 16, 17)
    with pytest.raises(ValueError, match="penalty=-1"): overlong_penalty(L, 16, 4, penalty=-1)


def test_filter_groups_distinct_and_constant():
    assert filter_groups(torch.tensor([1., 2, 3, 3, 3, 3]), 3).tolist() == [True, True, True, False, False, False]


# ---------------------------------------------------------------- returns, REINFORCE++, GAE
def _gae_loop(rewards, values, mask, gamma, lam):
    adv = torch.zeros_like(values)
    for i in range(values.shape[0]):
        idx = [t for t in range(values.shape[1]) if mask[i, t] > 0]
        r = {t: float(rewards[i, t]) for t in idx} if rewards.dim() == 2 else {t: 0.0 for t in idx}
        if rewards.dim() == 1 and idx: r[idx[-1]] = float(rewards[i])
        a, v_next = 0.0, 0.0
        for t in reversed(idx):
            a = r[t] + gamma * v_next - float(values[i, t]) + gamma * lam * a
            v_next = float(values[i, t])
            adv[i, t] = a
    return adv, (adv + values) * mask


@pytest.mark.parametrize("seed", range(5))
def test_gae_against_loop(seed):
    g = torch.Generator().manual_seed(seed)
    N, T = 5, 9
    V, m = torch.randn(N, T, generator=g, **D), (torch.rand(N, T, generator=g) > 0.4).double()
    m[0], m[1, 1:] = 1, 0
    for rew in (torch.randn(N, generator=g, **D), torch.randn(N, T, generator=g, **D)):
        for gamma, lam in ((1.0, 1.0), (0.99, 0.95), (0.5, 0.0)):
            a, r = gae_advantages(rew, V, m, gamma, lam)
            a2, r2 = _gae_loop(rew, V, m, gamma, lam)
            assert torch.allclose(a, a2, atol=1e-12) and torch.allclose(r, r2, atol=1e-12)


def test_gae_lambda_one_gamma_one_returns_are_reward():
    V, m = _rand(3, 4, seed=14), _mask([4, 1, 2], 4)
    adv, ret = gae_advantages(torch.tensor([1., 2, 3], **D), V, m)
    assert torch.allclose(ret, torch.tensor([[1.] * 4, [2, 0, 0, 0], [3, 3, 0, 0]], **D))
    assert torch.allclose(adv, (ret - V) * m)


def test_gae_no_gradient_through_values():
    V = torch.zeros(1, 3, requires_grad=True)
    adv, ret = gae_advantages(torch.ones(1), V, torch.ones(1, 3))
    assert not adv.requires_grad and not ret.requires_grad


def test_reinforce_pp_single_token_rows_and_whitening():
    m = _mask([1, 1, 3], 3)
    adv = reinforce_pp_advantages(torch.tensor([1., 0, 1], **D), m)
    v = adv[m > 0]
    assert v.mean().abs() < 1e-12 and (v.var(unbiased=False) - 1).abs() < 1e-6
    assert adv[0, 0] == adv[2, 0] == adv[2, 2] and adv[1, 0] < 0
    with pytest.raises(ValueError, match="baseline=True needs rewards"):
        reinforce_pp_advantages(torch.ones(3, 3), m, baseline=True, group_size=3)


def test_discounted_cumsum_with_holes_matches_loop():
    x, m = _rand(4, 6, seed=15), (_rand(4, 6, seed=16) > 0).double()
    y = discounted_cumsum(x, m, 0.7)
    for i in range(4):
        run = 0.0
        for t in reversed(range(6)):
            if m[i, t] > 0:
                run = float(x[i, t]) + 0.7 * run
                assert abs(float(y[i, t]) - run) < 1e-12
            else:
                assert y[i, t] == 0


# ---------------------------------------------------------------- online DPO
def test_online_dpo_custom_selector_and_errors():
    lp, ref = torch.tensor([-1., -3, -2, -2]), torch.zeros(4)
    first_vs_last = lambda r, g: torch.tensor([[0, 3]])
    assert online_dpo_loss(lp, ref, torch.zeros(4), 4, beta=1.0, pair_selector=first_vs_last).item() == pytest.approx(math.log1p(math.exp(-1)))
    with pytest.raises(ValueError, match=r"online_dpo_loss: seq_logprobs has shape \(3,\)"): online_dpo_loss(lp[:3], ref, torch.zeros(4), 2)
    assert best_worst_pairs(torch.tensor([0., 1, 1, 0]), 2).tolist() == [[1, 0], [2, 3]]


# ---------------------------------------------------------------- metrics
def test_loss_metrics_empty_and_no_lower_clip():
    lp = torch.tensor([[math.log(0.1), math.log(10.)]])
    met = loss_metrics(lp, torch.zeros(1, 2), torch.ones(1, 2), None, 0.2, torch.tensor([-1.]))
    assert met["clip_frac_low"] == 0.0 and met["clip_frac_high"] == 0.0   # A < 0: the upper clip is not active
    met = loss_metrics(lp, torch.zeros(1, 2), torch.zeros(1, 2), 0.2, 0.2)
    assert all(v == 0.0 for v in met.values())


# ---------------------------------------------------------------- dispatchers
def test_compute_advantages_errors_and_token_rewards():
    cfg = create_reinforce_pp_config()
    with pytest.raises(ValueError, match="needs mask"): compute_advantages(torch.ones(2), cfg, 2)
    with pytest.raises(ValueError, match="unknown config.advantage='adv'"):
        compute_advantages(torch.ones(2), cfg._replace(advantage="adv"), 2, mask=torch.ones(2, 2))
    m = _mask([2, 1], 2)
    tok_r = torch.tensor([[0.5, 1.0], [2.0, 0.0]], **D)
    adv = compute_advantages(tok_r, create_ppo_config(normalize_advantages=False), 2, mask=m, values=torch.zeros(2, 2, **D))
    assert torch.allclose(adv, torch.tensor([[0.5 + 0.95, 1.0], [2.0, 0]], **D))
    a = compute_advantages(torch.tensor([1., 0, 0, 0]), create_rloo_config(normalize_advantages=True), 4)
    assert a.mean().abs() < 1e-6 and (a.var(unbiased=False) - 1).abs() < 1e-4


def test_compute_policy_loss_kl_rules():
    lp, old, ref, m = _rand(2, 3, seed=17, scale=.1), _rand(2, 3, seed=18, scale=.1), _rand(2, 3, seed=19, scale=.1), _mask([3, 2], 3)
    A = torch.tensor([1., -1], **D)
    base = ppo_clip_loss(lp, old, A, m)
    kl = kl_penalty_term(lp, ref, m, 1.0)
    for cfg, want in ((create_grpo_config(), base + 0.04 * kl), (create_grpo_config(kl_in_reward=True), base),
                      (create_grpo_config(kl_coef=0.0), base)):
        loss, met = compute_policy_loss(lp, old, A, m, cfg, ref_logprobs=ref)
        assert torch.allclose(loss, want) and met["kl_ref"] == pytest.approx(kl.item())
    loss, met = compute_policy_loss(lp, old, A, m, create_grpo_config())
    assert torch.allclose(loss, base) and "kl_ref" not in met
    loss, _ = compute_policy_loss(lp, None, A, m, create_grpo_config(kl_coef=0.0))
    assert torch.allclose(loss, ppo_clip_loss(lp, lp, A, m))


def test_compute_policy_loss_online_dpo_inputs():
    lp, m, R = _rand(4, 3, seed=20), _mask([3, 2, 1, 3], 3), torch.tensor([1., 0, 0, 1])
    seq_ref = torch.tensor([0.1, 0.2, 0.3, 0.4], **D)
    loss, _ = compute_policy_loss(lp, None, None, m, create_online_dpo_config(), seq_logprobs_ref=seq_ref, rewards=R, group_size=2)
    assert torch.allclose(loss, online_dpo_loss((lp * m).sum(-1), seq_ref, R, 2))
    with pytest.raises(ValueError, match="needs rewards"): compute_policy_loss(lp, None, None, m, create_online_dpo_config(), ref_logprobs=lp)
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        compute_policy_loss(lp, None, None, m, create_online_dpo_config(), rewards=R, group_size=2)


# ---------------------------------------------------------------- configs
def test_configs_published_values():
    c = create_dapo_config()
    assert (c.clip_range, c.clip_range_high, c.loss_agg, c.dynamic_sampling, c.overlong_buffer, c.kl_coef) == (0.2, 0.28, "token-mean", True, 128, 0.0)
    c = create_ppo_config()
    assert (c.advantage, c.gamma, c.lam, c.vf_clip, c.num_inner_epochs) == ("gae", 1.0, 0.95, 0.2, 4)
    c = create_dr_grpo_config()
    assert (c.scale_rewards, c.loss_agg, c.kl_coef) == ("none", "seq-mean-token-sum-norm", 0.0)
    c = create_gspo_config()
    assert (c.loss_type, c.clip_range, c.clip_range_high) == ("gspo", 3e-4, 4e-4)
    assert isinstance(create_cispo_config(), TrainingConfig) and create_cispo_config().clip_range_high == 5.0
    assert set(ALGORITHMS) == {"grpo", "dr_grpo", "dapo", "gspo", "cispo", "rloo", "reinforce_pp", "ppo", "online_dpo"}


def test_get_algorithm_config_errors():
    with pytest.raises(ValueError, match="unknown algorithm 'sft'; known: grpo, dr_grpo, dapo, gspo"): get_algorithm_config(0, "sft")
    with pytest.raises(ValueError, match="unknown algorithm"): get_algorithm_config(0, lambda i: "sft")
    with pytest.raises(TypeError, match="must be a name"): get_algorithm_config(0, lambda i: 3)
    with pytest.raises(TypeError, match=r"create_dapo_config: unknown TrainingConfig field\(s\) \['clip'\]"): get_algorithm_config(0, "dapo", clip=0.1)
    with pytest.raises(ValueError, match="clip_high=-0.1"): create_dapo_config(clip_range_high=-0.1)


# ---------------------------------------------------------------- value head
def _tiny(dtype=torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).to(dtype)


def test_value_head_dtype_and_left_padding():
    model = _tiny(torch.bfloat16)
    head = create_value_head(model)
    assert head.weight.dtype == torch.bfloat16 and head.weight.abs().sum() == 0 and head.bias.abs().sum() == 0
    torch.nn.init.normal_(head.weight)
    ids = torch.randint(0, 64, (2, 6))
    am = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    pos = (am.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        v = compute_values(model, head, ids, am, 2, position_ids=pos)
        # the left-padded row equals the same sequence without its padding column
        v1 = compute_values(model, head, ids[:1, 1:], am[:1, 1:], 2)
    assert v.dtype == torch.float32 and v.shape == (2, 2)
    assert torch.allclose(v[:1], v1, atol=0.05)
    with pytest.raises(ValueError, match="num_completion_tokens=6"): values_from_hidden(torch.zeros(1, 6, 32), head, 6)


def test_value_of_token_t_sees_only_tokens_before_it():
    "Completion token t's value is read at position P-1+t: changing token t changes values t+1.. only."
    model, T = _tiny(), 4
    head = create_value_head(model)
    torch.nn.init.normal_(head.weight)
    ids, am = torch.randint(0, 64, (1, 7)), torch.ones(1, 7, dtype=torch.long)
    with torch.no_grad():
        base = compute_values(model, head, ids, am, T)
        for t in range(T):
            ids2 = ids.clone(); ids2[0, 7 - T + t] = (ids[0, 7 - T + t] + 1) % 64
            changed = ((compute_values(model, head, ids2, am, T) - base).abs() > 1e-6)[0].tolist()
            assert changed == [False] * (t + 1) + [True] * (T - t - 1)


# ---------------------------------------------------------------- padding never matters
@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -1e30, 123.0])
def test_padding_garbage_never_leaks(fill):
    m = _mask([4, 2, 1, 3], 4)
    lp, old, ref, A, V = (_rand(4, 4, seed=s, scale=.3) for s in range(30, 35))
    dirty = lambda x: torch.where(m > 0, x, torch.full_like(x, fill))

    def run(lp_, old_, ref_, A_, V_):
        x = lp_.clone().requires_grad_()
        losses = [ppo_clip_loss(x, old_, A_, m, 0.2, 0.28, "seq-mean-token-mean"), gspo_loss(x, old_, A_, m), cispo_loss(x, old_, A_, m),
                  value_loss(x, old_, ref_, m), kl_penalty_term(x, ref_, m, 0.5),
                  compute_policy_loss(x, old_, A_, m, create_ppo_config(), ref_logprobs=ref_)[0]]
        g, = torch.autograd.grad(sum(losses), x)
        outs = [l.detach() for l in losses] + [g, *gae_advantages(A_, V_, m, 0.9, 0.9), whiten(V_, m),
                                                compute_advantages(torch.tensor([1., 0, 0, 1]), create_reinforce_pp_config(kl_coef=0.0), 2, mask=m)]
        return outs

    for a, b in zip(run(lp, old, ref, A, V), run(*(dirty(t) for t in (lp, old, ref, A, V)))):
        assert torch.equal(a, b)
