"Packed (padding-free) scoring: `compute_logprobs_for_tokens(pack=True)` and `packed_attention` against the padded pass, on tiny CPU models (and on a GPU where there is one)."
import pytest
import torch
import torch.nn.functional as F
from rlprims.generation import compute_logprobs_for_tokens, packed_attention, _attend_packed, _register_packed_attention, _attention
from rlprims.precision import enable_activation_checkpointing
import rlprims.generation as G
from test_generation_fast import _tiny

def _batch(seed=0, B=6, P=5, T=9, lengths=(9, 3, 1, 6, 2, 5)):
    "Left-padded prompts (two rows padded) and right-padded completions of ragged lengths."
    g = torch.Generator().manual_seed(seed)
    pids, c = torch.randint(0, 1000, (B, P), generator=g), torch.randint(0, 1000, (B, T), generator=g)
    pm = torch.ones(B, P); pm[1, :2] = 0; pm[3, :4] = 0
    cm = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).float()
    return pids, pm, c, cm

def _score(model, pack, batch, **kw):
    pids, pm, c, cm = batch
    model.zero_grad(set_to_none=True)
    lp, ent = compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm, micro_batch_size=4, requires_grad=True,
                                          return_entropy=True, share_prefix=False, pack=pack, **kw)
    (lp * cm).sum().backward()
    return lp.detach(), ent.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3"])
@pytest.mark.parametrize("plain_head", [True, False])
def test_packed_equals_padded(kind, plain_head, monkeypatch):
    "Log-probs, entropies and every gradient of the packed pass equal the padded pass's; padding positions are exactly 0."
    model = _tiny(kind, seed=3).train()
    if not plain_head: monkeypatch.setattr(G, "_plain_head", lambda m: None)   # the full-logits path (logits_to_keep as indices)
    batch = _batch()
    (lp0, e0, g0), (lp1, e1, g1) = _score(model, False, batch), _score(model, True, batch)
    cm = batch[3]
    torch.testing.assert_close(lp1 * cm, lp0 * cm, atol=1e-5, rtol=0)
    torch.testing.assert_close(e1 * cm, e0 * cm, atol=1e-4, rtol=0)
    assert (lp1[cm == 0] == 0).all() and (e1[cm == 0] == 0).all()
    assert g0.keys() == g1.keys()
    for n in g0: torch.testing.assert_close(g1[n], g0[n], atol=5e-5, rtol=1e-4)   # sums in another order: fp32 rounding
    assert model.config._attn_implementation != "rlprims_packed"   # restored

def test_packed_model_sees_only_real_tokens():
    "One input row per micro-batch, exactly as long as its prompts' and completions' real tokens."
    model, batch = _tiny("llama", seed=1), _batch()
    pids, pm, c, cm = batch
    widths = []
    h = model.get_input_embeddings().register_forward_hook(lambda m, a, y: widths.append(tuple(y.shape[:2])))
    compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm, micro_batch_size=4, pack=True, sort_by_length=False)
    h.remove()
    assert widths == [(1, int(pm[:4].sum() + cm[:4].sum())), (1, int(pm[4:].sum() + cm[4:].sum()))]

def test_attend_packed_matches_per_sequence_attention():
    "The attention itself: sequences of 3, 1 and 5 tokens, 4 query heads over 2 KV heads, against causal attention of each alone."
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(9, 4, 8, generator=g), torch.randn(9, 2, 8, generator=g), torch.randn(9, 2, 8, generator=g)
    cu = torch.tensor([0, 3, 4, 9], dtype=torch.int32)
    out = _attend_packed(q, k, v, cu, 5, 0.3)
    for a, b in ((0, 3), (3, 4), (4, 9)):
        kk, vv = k[a:b].repeat_interleave(2, 1), v[a:b].repeat_interleave(2, 1)   # [n, 4, 8]
        s = torch.einsum("ihd,jhd->hij", q[a:b], kk) * 0.3
        s = s.masked_fill(~torch.ones(b - a, b - a, dtype=torch.bool).tril(), float("-inf"))
        ref = torch.einsum("hij,jhd->ihd", s.softmax(-1), vv)
        torch.testing.assert_close(out[a:b], ref, atol=1e-5, rtol=1e-5)

def test_packed_attention_without_boundaries_is_sdpa():
    "Called without `rlprims_packed`, the registered function is the model's usual sdpa attention (padding mask and all)."
    model, (pids, pm, c, cm) = _tiny("qwen2", seed=2).eval(), _batch()
    ids, mask = torch.cat([pids, c], 1), torch.cat([pm, cm], 1).long()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).logits
        with _attention(model, _register_packed_attention()): got = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got * mask[..., None], ref * mask[..., None], atol=1e-5, rtol=0)

def test_pack_refuses_what_it_cannot_do():
    model, (pids, pm, c, cm) = _tiny("llama"), _batch()
    with pytest.raises(ValueError, match="share_prefix"): compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm, pack=True, share_prefix=True)
    with pytest.raises(ValueError, match="right-padded"): compute_logprobs_for_tokens(model, pids, pm, c, completion_mask=cm.flip(1), pack=True)
    pm0 = pm.clone(); pm0[2] = 0
    with pytest.raises(ValueError, match="prompt token"): compute_logprobs_for_tokens(model, pids, pm0, c, completion_mask=cm, pack=True)
    eager = _tiny("llama"); eager.config._attn_implementation = "eager"
    enable_activation_checkpointing(eager); eager.train()
    with pytest.raises(ValueError, match="checkpointed"): compute_logprobs_for_tokens(eager, pids, pm, c, completion_mask=cm, pack=True, requires_grad=True)

@pytest.mark.parametrize("kind", ["llama", "qwen3"])
def test_packed_with_activation_checkpointing(kind):
    "Checkpointed layers recompute in the backward, after the call: the packed attention stays on, and the gradients are the padded pass's."
    batch = _batch()
    lp0, e0, g0 = _score(_tiny(kind, seed=3).train(), False, batch)
    model = enable_activation_checkpointing(_tiny(kind, seed=3)).train()
    lp1, e1, g1 = _score(model, True, batch)
    cm = batch[3]
    torch.testing.assert_close(lp1 * cm, lp0 * cm, atol=1e-5, rtol=0)
    for n in g0: torch.testing.assert_close(g1[n], g0[n], atol=5e-5, rtol=1e-4)
    assert model.config._attn_implementation == "rlprims_packed"   # kept for later recomputations; sdpa without boundaries:
    pids, pm, c, _ = batch
    ids, mask = torch.cat([pids, c], 1), torch.cat([pm, cm], 1).long()
    ref = _tiny(kind, seed=3).eval()
    with torch.no_grad(): torch.testing.assert_close(model.eval()(input_ids=ids, attention_mask=mask).logits * mask[..., None],
                                                     ref(input_ids=ids, attention_mask=mask).logits * mask[..., None], atol=1e-5, rtol=0)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (varlen flash attention in bf16)")
def test_packed_equals_padded_bf16_cuda(monkeypatch):
    "On the GPU under bf16 autocast (the training's default precision): the variable-length flash path against the padded pass."
    model = _tiny("qwen2", seed=3).cuda().train()
    batch = tuple(x.cuda() for x in _batch())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        (lp0, e0, g0), (lp1, e1, g1) = _score(model, False, batch), _score(model, True, batch)
    cm = batch[3]
    if G._varlen_flash() is not None:                       # this PyTorch has it: the flash path ran, not the per-sequence fallback
        fn, params = G._varlen_flash(); calls = []
        monkeypatch.setattr(G, "_varlen_flash", lambda: ((lambda *a, **k: calls.append(1) or fn(*a, **k)), params))
        with torch.autocast("cuda", dtype=torch.bfloat16): _score(model, True, batch)
        assert calls, "under bf16 autocast the packed pass fell back to per-sequence attention"
    torch.testing.assert_close(lp1 * cm, lp0 * cm, atol=3e-2, rtol=0)
    for n in g0: torch.testing.assert_close(g1[n], g0[n], atol=2e-2, rtol=5e-2)

def test_packed_attention_under_autocast_gets_one_dtype(monkeypatch):
    "Under autocast, rotary leaves q and k in fp32 while v is in the half dtype: the packed attention gets all three in the half dtype, as sdpa would (the GPU's flash path needs that)."
    model, batch = _tiny("qwen2", seed=3).train(), _batch()
    seen, attend = [], G._attend_packed
    monkeypatch.setattr(G, "_attend_packed", lambda q, k, v, *a: seen.append({q.dtype, k.dtype, v.dtype}) or attend(q, k, v, *a))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (lp0, _, g0), (lp1, _, g1) = _score(model, False, batch), _score(model, True, batch)
    assert seen and all(s == {torch.bfloat16} for s in seen)
    cm = batch[3]
    torch.testing.assert_close(lp1 * cm, lp0 * cm, atol=3e-2, rtol=0)   # bf16 attention in both, summed in another order

def test_multiturn_reference_pass_packed():
    "A tool episode's completion holds the tool's reply too (trained on or not, it is attended to): packed, the reference's log-probs are the padded pass's."
    from rlprims.core import GenerationConfig
    from rlprims.generation import load_tokenizer
    from rlprims.rollouts import create_multiturn_rollouts, scripted_generator
    from rlprims.rewards import math_answer_reward
    tok, model, ref = load_tokenizer(), _tiny("llama", seed=1), _tiny("llama", seed=2)
    replies = ['<tool_call>{"name": "calculator", "arguments": {"expression": "15 * 23"}}</tool_call>', "The answer is 362."]
    out = {}
    for pack in (False, True):
        res = create_multiturn_rollouts(model, tok, [{"prompt": "Solve: 15 * 23 + 17", "answer": "362"}], GenerationConfig(max_new_tokens=32),
                                        math_answer_reward(), max_turns=3, generator=scripted_generator(replies), ref_model=ref,
                                        num_generations=2, pack_sequences=pack)
        out[pack] = res.batch
    b = out[False]
    assert bool((b.loss_mask.sum(-1) < b.completion_mask.sum(-1)).all())   # the tool's reply: attended to, not trained on
    torch.testing.assert_close(out[True].ref_logprobs, b.ref_logprobs, atol=1e-5, rtol=0)
    assert b.ref_logprobs.abs().sum() > 0
