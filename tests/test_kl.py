"Edge cases of rlprims.kl (the notebook 03_kl holds the main examples)."
import copy, math
from contextlib import contextmanager
import pytest
import torch
from rlprims.kl import *

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")   # transformers' deprecation notes from peft


# ---------------------------------------------------------------- estimators
def test_estimators_float64_by_hand():
    lp = torch.tensor([math.log(0.9), math.log(0.1)], dtype=torch.float64)
    ref = torch.tensor([math.log(0.3), math.log(0.7)], dtype=torch.float64)
    d = ref - lp
    assert torch.allclose(kl_per_token(lp, ref, "k1"), torch.tensor([math.log(3), -math.log(7)], dtype=torch.float64))
    assert torch.allclose(kl_per_token(lp, ref, "k2"), 0.5 * d ** 2)
    assert torch.allclose(kl_per_token(lp, ref, "k3"), torch.tensor([1/3 - 1 + math.log(3), 7 - 1 - math.log(7)], dtype=torch.float64))
    assert kl_per_token(lp, ref).dtype == torch.float64


def test_k3_nonnegative_and_zero_gradient_at_equality():
    g = torch.Generator().manual_seed(0)
    a, b = -10 * torch.rand(1000, generator=g), -10 * torch.rand(1000, generator=g)
    assert (kl_per_token(a, b, "k3") >= 0).all()
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    kl_per_token(lp, lp.detach(), "k3").sum().backward()
    assert torch.equal(lp.grad, torch.zeros(2))


def test_unknown_estimator_lists_known():
    with pytest.raises(ValueError, match="'k1', 'k2', 'k3'"):
        compute_forward_kl(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), estimator="kl")


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match="compute_reverse_kl: .*valid_mask \\(2, 3\\)"):
        compute_reverse_kl(torch.zeros(2, 2), torch.zeros(2, 2), torch.ones(2, 3))


@pytest.mark.parametrize("fn", [lambda p, r, m: compute_forward_kl(p, r, m, estimator="k3"), compute_reverse_kl,
                                create_truncated_kl(0.3), create_adaptive_kl(0.2)])
def test_masked_positions_never_matter(fn):
    g = torch.Generator().manual_seed(1)
    p, r = torch.rand(3, 5, generator=g).log(), torch.rand(3, 5, generator=g).log()
    m = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    p2, r2 = p.clone(), r.clone()
    p2[~m], r2[~m] = float("nan"), -float("inf")
    out = fn(p, r, m)
    assert torch.equal(out, fn(p2, r2, m)) and torch.equal(out, fn(p, r, m.float()))
    assert out[1] == 0


def test_monte_carlo_other_distribution():
    g = torch.Generator().manual_seed(7)
    pi = torch.softmax(torch.randn(10, generator=g, dtype=torch.float64), 0)
    ref = torch.softmax(torch.randn(10, generator=g, dtype=torch.float64), 0)
    fwd, rev = (pi * (pi / ref).log()).sum().item(), (ref * (ref / pi).log()).sum().item()
    n = 200_000
    x = torch.multinomial(pi, n, replacement=True, generator=g)
    lp, rl = pi.log()[x][:, None], ref.log()[x][:, None]
    ones = torch.ones(n, 1)
    for vals, exact in [(compute_forward_kl(lp, rl, ones, estimator="k1"), fwd),
                        (compute_forward_kl(lp, rl, ones, estimator="k3"), fwd),
                        (compute_reverse_kl(lp, rl, ones), rev)]:
        assert abs(vals.mean().item() - exact) < 3 * vals.std().item() / math.sqrt(n)


def test_adaptive_controller_down_and_validation():
    ctl = adaptive_kl_controller(1.0, target=10.0, horizon=100)
    assert ctl(0.0, n_steps=10) == pytest.approx(1.0 * (1 - 0.2 * 10 / 100))   # error clipped at -0.2
    assert ctl.value == pytest.approx(0.98)
    with pytest.raises(ValueError, match="horizon=0"):
        adaptive_kl_controller(0.1, horizon=0)


def test_updater_argument_validation():
    with pytest.raises(ValueError, match="decay=1.5"): create_ema_updater(1.5)
    with pytest.raises(ValueError, match="update_every=0"): create_periodic_updater(0)
    with pytest.raises(ValueError, match="smoothing=1"): create_kl_triggered_updater(0.1, smoothing=1)


# ---------------------------------------------------------------- models
def tiny(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2))


def tiny_lora(seed=0):
    from peft import LoraConfig, get_peft_model
    m = get_peft_model(tiny(seed), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n: p.normal_(std=0.5)
    return m


IDS = torch.randint(0, 64, (2, 5), generator=torch.Generator().manual_seed(3))


def test_plain_reference_mode_is_no_grad_and_restores_mode():
    m = tiny()
    m.train()
    with reference_mode(m) as r:
        assert r is m and not torch.is_grad_enabled() and not m.training
    assert m.training and torch.is_grad_enabled()


def test_lora_reference_matches_disable_adapter_and_restores_on_error():
    m = tiny_lora()
    ref = create_reference_model(m)
    with torch.no_grad(), m.disable_adapter(): base = m(IDS).logits
    with reference_mode(ref): assert torch.equal(ref(IDS).logits, base)
    update_reference_model(ref, m, create_periodic_updater(1), step=1, kl=0.0)
    flags = {n: p.requires_grad for n, p in m.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"):
        with reference_mode(ref):
            assert m.active_adapter == REF_ADAPTER
            raise RuntimeError("boom")
    assert m.active_adapter == "default" and m.training
    assert flags == {n: p.requires_grad for n, p in m.named_parameters()}


def test_lora_ema_decay_one_keeps_base():
    m = tiny_lora()
    with torch.no_grad(), m.disable_adapter(): base = m.eval()(IDS).logits
    m.train()
    assert create_ema_updater(1.0)(m, m, step=1, kl=0.0)
    assert REF_ADAPTER in m.peft_config
    with reference_mode(m): assert torch.allclose(m(IDS).logits, base, atol=1e-6)


def test_update_inside_reference_mode_refused():
    m = tiny_lora()
    create_periodic_updater(1)(m, m, step=1)
    with reference_mode(m):
        with pytest.raises(ValueError, match="outside reference_mode"):
            create_periodic_updater(1)(m, m, step=2)


def test_full_model_mismatch_and_missing_kl():
    a, b = tiny(0), tiny_lora(1)
    with pytest.raises(ValueError, match="differ in parameters"):
        update_reference_model(create_reference_model(a), b, create_ema_updater(0.5), step=1, kl=0.0)
    with pytest.raises(ValueError, match="needs kl="):
        create_kl_triggered_updater(0.1)(create_reference_model(a), a, step=1)


def test_separate_copy_of_lora_policy_updates_by_name():
    m = tiny_lora()
    ref = copy.deepcopy(m).requires_grad_(False)                 # a full copy: updated parameter by parameter
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_A" in n: p.add_(1.0)
    assert create_periodic_updater(2)(ref, m, step=4, kl=0.0)
    assert all(torch.equal(p, dict(m.named_parameters())[n]) for n, p in ref.named_parameters())
    assert REF_ADAPTER not in m.peft_config


# ---------------------------------------------------------------- LoRA EMA: per factor, not the exact EMA of BA
def _factors(m, adapter):
    "`{layer: (B, A)}` of `adapter`, float64, read from the named parameters (LoRA's scale s is left out: it cancels)."
    ps = {n: p.detach().double() for n, p in m.named_parameters()}
    return {n.split(".lora_A.")[0]: (ps[n.replace(".lora_A.", ".lora_B.")], a)
            for n, a in ps.items() if n.endswith(f".lora_A.{adapter}.weight")}


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_lora_ema_step_misses_exact_ema_by_closed_form(decay):
    d, m, ema = decay, tiny_lora(), create_ema_updater(decay)
    ema(m, m, step=1, kl=0.0)
    pol, ref = _factors(m, "default"), _factors(m, REF_ADAPTER)
    assert len(pol) == 4 and set(ref) == set(pol)                   # q_proj, v_proj of 2 layers
    for l, (B, A) in pol.items():                                   # the first update is exact: (1 - d) B A
        assert torch.allclose(ref[l][0] @ ref[l][1], (1 - d) * B @ A, rtol=0, atol=1e-6)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad: p.add_(0.1 * torch.randn(p.shape, generator=g))
    ref0, pol0 = _factors(m, REF_ADAPTER), _factors(m, "default")
    ema(m, m, step=2, kl=0.0)
    ref1, term = _factors(m, REF_ADAPTER), 0.0
    for l, (Br, Ar) in ref0.items():
        Bp, Ap = pol0[l]
        assert torch.allclose(ref1[l][0], d * Br + (1 - d) * Bp, rtol=0, atol=1e-6)        # factor-wise average ...
        measured = ref1[l][0] @ ref1[l][1] - (d * Br @ Ar + (1 - d) * Bp @ Ap)          # ... minus the exact EMA of BA
        closed = -d * (1 - d) * (Br - Bp) @ (Ar - Ap)
        assert torch.allclose(measured, closed, rtol=0, atol=1e-6)
        term = max(term, closed.abs().max().item())
    assert term > 1e-4                                              # far above the tolerance: the check can fail


@contextmanager
def _one_thread():
    "Tiny tensors on one thread: faster, and no stalls while other processes keep the CPU busy."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)


def test_lora_ema_error_as_documented():
    "03_kl's measurement at decay 0.999: fresh LoRA, AdamW lr 1e-3 on random batches, an EMA update after every step."
    from peft import LoraConfig, get_peft_model
    d, m = 0.999, get_peft_model(tiny(0), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
    ema, g, E, err = create_ema_updater(d), torch.Generator().manual_seed(0), None, {}
    with _one_thread():
        for k in range(1, 1001):
            batch = torch.randint(0, 64, (4, 8), generator=g)
            opt.zero_grad(); m(batch, labels=batch).loss.backward(); opt.step()
            ema(m, m, step=k, kl=0.0)
            dw = {l: B @ A for l, (B, A) in _factors(m, "default").items()}            # exact EMA E of BA, from the base
            E = {l: (1 - d) * w for l, w in dw.items()} if E is None else {l: d * E[l] + (1 - d) * w for l, w in dw.items()}
            if k in (100, 1000):
                diff = torch.cat([(B @ A - E[l]).flatten() for l, (B, A) in _factors(m, REF_ADAPTER).items()]).norm()
                gap = torch.cat([(dw[l] - E[l]).flatten() for l in dw]).norm()
                err[k] = ((diff / torch.cat([e.flatten() for e in E.values()]).norm()).item(), (diff / gap).item())
    assert err[100][0] < 0.1 and 0.1 < err[1000][0] < 0.2          # 7.5% and 14.3% of the exact EMA's delta
    assert 0.05 < err[1000][1] < 0.1                                 # 8.3% of the policy-reference gap
