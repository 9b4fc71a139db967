"The Triton sampler of the fast decode loop (rlprims.fast_decode.sample_softmax): needs CUDA and Triton, skipped elsewhere."
import pytest
import torch
from rlprims.fast_decode import sample_softmax, _has_triton

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and _has_triton()), reason="needs a CUDA GPU and Triton")

def _draw(z, temperature, banned=None, seed=7, step=3):
    s, t = torch.tensor([seed], device="cuda"), torch.tensor([step], device="cuda")
    return sample_softmax(z, temperature, s, t, banned)

@pytest.mark.parametrize("V", [10, 5000])            # one block, and several blocks (4096 columns each)
def test_frequencies_match_softmax(V):
    torch.manual_seed(0)
    z = torch.full((V,), -40.0, device="cuda")
    hot = torch.tensor([0, 3, V // 2, V - 1, 4095 % V, 4096 % V], device="cuda").unique()
    z[hot] = torch.randn(len(hot), device="cuda") * 1.5
    banned = hot[1:2]
    rows = z.expand(400_000 if V < 100 else 100_000, V)   # stride 0 over rows: no copies
    tok, lp = _draw(rows, 0.7, banned)
    q = torch.softmax(z / 0.7, -1); q[banned] = 0; q = q / q.sum()
    freq = torch.bincount(tok, minlength=V).float() / len(tok)
    assert (freq - q).abs().max().item() < 8e-3          # 100k+ draws: a standard error under 1.6e-3
    assert not bool(torch.isin(tok, banned).any())
    ref = torch.log_softmax(z / 0.7, -1)[tok]             # the log-prob under the unbanned distribution
    torch.testing.assert_close(lp, ref, atol=1e-5, rtol=1e-5)

def test_bf16_vocab_rows_and_streams():
    torch.manual_seed(1)
    z = (torch.randn(64, 49152, device="cuda") * 3).bfloat16()
    a, la = _draw(z, 1.0)
    b, _ = _draw(z, 1.0)
    c, _ = _draw(z, 1.0, step=4)
    assert torch.equal(a, b) and not torch.equal(a, c)     # same seed and step: same draw; next step: a new one
    torch.testing.assert_close(la, torch.log_softmax(z.float(), -1).gather(-1, a[:, None]).squeeze(-1), atol=1e-4, rtol=1e-4)

def test_fast_decode_uses_it_and_scores_match():
    from types import SimpleNamespace
    from rlprims.core import GenerationConfig
    from rlprims.fast_decode import generate_batch_fast
    from rlprims.generation import compute_logprobs_for_tokens
    from rlprims.training import tiny_test_model
    tok = SimpleNamespace(pad_token_id=2, eos_token_id=2)           # all the decode loop needs of a tokenizer
    model = tiny_test_model(seed=1).cuda()
    torch.manual_seed(5)
    pids = torch.randint(3, 1000, (8, 7)); pm = torch.ones_like(pids)
    pids[:4, :3], pm[:4, :3] = 2, 0                                 # half the prompts left-padded
    cfg = GenerationConfig(max_new_tokens=16, min_new_tokens=16, temperature=0.8, top_p=1.0, top_k=0)
    import rlprims.fast_decode as RG
    calls, real = [], RG.sample_softmax
    RG.sample_softmax = lambda *a, **k: calls.append(1) or real(*a, **k)     # the decode step looks it up in the module
    try: torch.manual_seed(0); b = generate_batch_fast(model, tok, pids, pm, cfg, eos_ids=[2])
    finally: RG.sample_softmax = real
    assert calls                                                            # plain sampling on CUDA goes through the Triton sampler
    torch.manual_seed(0); b2 = generate_batch_fast(model, tok, pids, pm, cfg, eos_ids=[2])
    assert torch.equal(b.completion_ids, b2.completion_ids)          # seeded from torch's RNG: reproducible
    assert b.completion_ids.shape == (8, 16) and not bool((b.completion_ids == 2).any())
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, temperature=0.8)
    torch.testing.assert_close(b.logprobs, fresh.cpu(), atol=2e-3, rtol=0)
