"Edge cases of the fast decode loop and the chunked log-prob pass (rlprims.fast_decode, rlprims.generation), on a tiny CPU model."
import pytest
import torch
from rlprims.core import GenerationConfig
from rlprims.fast_decode import generate_batch_fast, static_kv_attention
from rlprims.generation import (load_tokenizer, tokenize_prompts, generate_batch, compute_logprobs_for_tokens,
                                token_logprobs, _fuse_rms_norms, _unfuse)
from rlprims.training import tiny_test_model

@pytest.fixture(scope="module")
def setup():
    tok = load_tokenizer()
    model = tiny_test_model(seed=1)
    pids, pmask = tokenize_prompts(tok, ["What is 1 + 2?", "Hi", "Name a colour of the sea, please."], n=2)
    return model, tok, pids, pmask

def test_cpu_default_is_generate_batch(setup):
    model, tok, pids, pmask = setup
    cfg = GenerationConfig(max_new_tokens=6, temperature=1.0, top_p=1.0, top_k=0)
    torch.manual_seed(3); a = generate_batch(model, tok, pids, pmask, cfg)
    torch.manual_seed(3); b = generate_batch_fast(model, tok, pids, pmask, cfg)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.logprobs, b.logprobs)

def test_static_greedy_matches_and_stops_early(setup):
    model, tok, pids, pmask = setup
    eos = list(range(0, 49152, 3))                      # a third of the vocabulary ends a completion: rows stop at different steps
    cfg = GenerationConfig(max_new_tokens=12, do_sample=False)
    a = generate_batch(model, tok, pids, pmask, cfg, eos_ids=eos)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, eos_ids=eos, static=True, check_every=2)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)
    assert (b.completion_mask[:, 1:] <= b.completion_mask[:, :-1]).all()

def test_static_forced_length_and_logprobs(setup):
    model, tok, pids, pmask = setup
    torch.manual_seed(0)
    cfg = GenerationConfig(max_new_tokens=8, min_new_tokens=8, temperature=0.9, top_p=1.0, top_k=0)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, eos_ids=list(range(0, 49152, 3)), static=True)
    assert b.completion_ids.shape == (6, 8) and bool((b.completion_mask == 1).all())
    assert not bool((b.completion_ids % 3 == 0).any())  # EOS is banned until min_new_tokens
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, temperature=0.9)
    torch.testing.assert_close(fresh, b.logprobs, atol=1e-4, rtol=0)
    assert generate_batch_fast(model, tok, pids, pmask, cfg, static=True, compute_logprobs=False).logprobs is None

def test_attention_needs_a_running_decode():
    with pytest.raises(RuntimeError, match="only usable inside generate_batch_fast"):
        static_kv_attention(None, torch.zeros(1, 2, 1, 4), None, None, None)

@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_token_logprobs_chunks(chunk):
    torch.manual_seed(chunk)
    h, W, y = torch.randn(2, 6, 8, requires_grad=True), torch.randn(11, 8, requires_grad=True), torch.randint(0, 11, (2, 6))
    lp, ent = token_logprobs(h, y, 1.3, True, head_weight=W, chunk_tokens=chunk)
    ref = torch.log_softmax(h @ W.t() / 1.3, -1)
    torch.testing.assert_close(lp, ref.gather(-1, y[..., None])[..., 0])
    torch.testing.assert_close(ent, -(ref.exp() * ref).sum(-1).detach())
    assert not ent.requires_grad
    g = torch.autograd.grad(lp.sum(), [h, W])
    torch.testing.assert_close(g, torch.autograd.grad(ref.gather(-1, y[..., None]).sum(), [h, W]))

def test_shared_and_unshared_scoring_agree(setup):
    model, tok, pids, pmask = setup
    b = generate_batch(model, tok, pids, pmask, GenerationConfig(max_new_tokens=5, temperature=1.0, top_p=1.0, top_k=0))
    out = []
    for share in (True, False):                         # False: backbone + chunked LM head
        model.zero_grad(set_to_none=True)
        lp = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask,
                                         requires_grad=True, share_prefix=share, micro_batch_size=4)
        (lp * b.completion_mask).sum().backward()
        out.append((lp.detach(), model.model.layers[0].mlp.down_proj.weight.grad.clone()))
    model.zero_grad(set_to_none=True)
    torch.testing.assert_close(out[0][0] * b.completion_mask, out[1][0] * b.completion_mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0][1], out[1][1], atol=1e-5, rtol=1e-3)

def test_fused_norms_are_undone(setup):
    model = setup[0]
    x = torch.randn(2, 64)
    ref = model.model.norm(x)
    mods = _fuse_rms_norms(model)
    assert len(mods) == 2 * len(model.model.layers) + 1
    torch.testing.assert_close(model.model.norm(x), ref)
    _unfuse(mods)
    assert all("forward" not in vars(m) for m in mods) and _fuse_rms_norms(model) == mods   # all back, and fusable again
    _unfuse(mods)
    torch.testing.assert_close(model.model.norm(x), ref, atol=0, rtol=0)
