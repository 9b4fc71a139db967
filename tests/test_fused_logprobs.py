"The LM head's Triton passes for token_logprobs (rlprims.fused_logprobs): against PyTorch's passes, on a GPU or in Triton's CPU interpreter (TRITON_INTERPRET=1); skipped elsewhere."
import os
import pytest
import torch
from rlprims.fast_decode import _has_triton
from rlprims.generation import token_logprobs, compute_logprobs_for_tokens, _add_outer_
import rlprims.generation as G
from rlprims.training import tiny_test_model

_GPU = torch.cuda.is_available() and _has_triton()
needs_triton = pytest.mark.skipif(not _GPU and not (_has_triton() and os.environ.get("TRITON_INTERPRET") == "1"),
                                  reason="needs a CUDA GPU with Triton, or Triton's interpreter (TRITON_INTERPRET=1)")
gpu_only = pytest.mark.skipif(not _GPU, reason="needs a CUDA GPU with Triton")
DEV = "cuda" if torch.cuda.is_available() else "cpu"

def _both(h, W, y, temperature, chunk, w8, **kw):
    "token_logprobs without and with the kernels: (log-probs, entropies, grad h, grad W) each."
    out = []
    for fused in (False, True):
        lp, ent = token_logprobs(h, y, temperature, return_entropy=True, head_weight=W, chunk_tokens=chunk, fused=fused, **kw)
        out.append((lp, ent, *torch.autograd.grad((lp * w8).sum(), [h, W])))
    return out

@needs_triton
@pytest.mark.parametrize("temperature,chunk", [(1.0, 1024), (0.6, 7)])   # one chunk; several, the last one short
def test_fused_head_matches_pytorch_fp32(temperature, chunk):
    torch.manual_seed(0)
    h = torch.randn(3, 11, 8, device=DEV, requires_grad=True)
    W = torch.randn(4200, 8, device=DEV, requires_grad=True)    # two blocks of 4096 columns
    y, w8 = torch.randint(0, 4200, (3, 11), device=DEV), torch.randn(3, 11, device=DEV)
    plain, fused = _both(h, W, y, temperature, chunk, w8)
    for a, b in zip(fused, plain): torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)
    assert (fused[1] >= 0).all()

@needs_triton
def test_fused_head_matches_pytorch_bf16_autocast():
    "Mixed precision: fp32 weights, bf16 products; both paths read the same bf16 logits, so they agree to fp32 rounding (gradients: bf16's)."
    torch.manual_seed(1)
    h = torch.randn(2, 9, 16, device=DEV, requires_grad=True)
    W = (torch.randn(3000, 16, device=DEV) * 0.5).requires_grad_()
    y, w8 = torch.randint(0, 3000, (2, 9), device=DEV), torch.rand(2, 9, device=DEV)
    with torch.autocast(DEV, dtype=torch.bfloat16): plain, fused = _both(h, W, y, 0.8, 5, w8)
    torch.testing.assert_close(fused[0], plain[0], atol=1e-5, rtol=0); torch.testing.assert_close(fused[1], plain[1], atol=1e-4, rtol=0)
    for a, b in zip(fused[2:], plain[2:]):
        assert ((a - b).abs().max() / b.abs().max()).item() < 2e-2

def test_add_outer_matches_plain_product():
    "acc += a.T @ b: in place, fp32 (and on CUDA bf16 inputs, the fp32-output product) against the plain formula."
    torch.manual_seed(2)
    for dev, dt in [("cpu", torch.float32), ("cpu", torch.bfloat16)] + ([("cuda", torch.bfloat16)] if torch.cuda.is_available() else []):
        acc0 = torch.randn(50, 6, device=dev)
        a, b = torch.randn(9, 50, device=dev).to(dt), torch.randn(9, 6, device=dev).to(dt)
        acc = acc0.clone()
        out = _add_outer_(acc, a, b)
        assert out.data_ptr() == acc.data_ptr() and out.dtype == torch.float32
        torch.testing.assert_close(acc, acc0 + a.float().t() @ b.float(), atol=1e-2 if dt != torch.float32 else 1e-5, rtol=1e-2)

@gpu_only
def test_training_scores_with_the_kernels_by_default(monkeypatch):
    "On CUDA, compute_logprobs_for_tokens(requires_grad=True) runs the kernels by default: same log-probs and weight gradients as PyTorch's passes."
    model = tiny_test_model(seed=3).cuda().train()
    torch.manual_seed(3)
    p, c = torch.randint(0, 49152, (4, 5), device="cuda"), torch.randint(0, 49152, (4, 7), device="cuda")
    pm, cm = torch.ones_like(p), torch.ones_like(c)
    calls, real = [], G._fused_head
    def run(fused):
        monkeypatch.setattr(G, "_fused_head", lambda flag, dev: calls.append(fused) or (real(flag, dev) if fused else False))
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lp, ent = compute_logprobs_for_tokens(model, p, pm, c, completion_mask=cm, requires_grad=True, return_entropy=True, micro_batch_size=2)
        lp.sum().backward()
        return lp.detach(), ent, model.get_output_embeddings().weight.grad.clone()
    plain, fused = run(False), run(True)
    assert real(None, "cuda") and True in calls
    torch.testing.assert_close(fused[0], plain[0], atol=1e-4, rtol=0); torch.testing.assert_close(fused[1], plain[1], atol=1e-3, rtol=0)
    assert ((fused[2] - plain[2]).abs().max() / plain[2].abs().max()).item() < 2e-2
