"""Helpers shared by the tools in this folder: kernel timing, a random model of a benchmark shape and its prompts, the sampler's time."""
import sys, time
from pathlib import Path
import torch

def patch_interpreter_for_numpy2() -> None:
    "Triton's CPU interpreter turns a loop bound held in a tensor into an int with int(array of shape (1,)), which NumPy 2 refuses; `.item()` is the same number."
    import triton.runtime.interpreter as ti
    original = ti._patch_lang_tensor
    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))
    ti._patch_lang_tensor = patched

def graph_seconds(fn, reps: int = 200) -> float:
    "Seconds one call of `fn` takes on the GPU: a CUDA graph of 20 calls, replayed `reps // 20` times. Off a GPU: one call, timed once."
    if not torch.cuda.is_available(): t0 = time.perf_counter(); fn(); return time.perf_counter() - t0
    fn(); torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(20): fn()
    g.replay(); torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(max(1, reps // 20)): g.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (max(1, reps // 20) * 20)

def random_shape_model(shape: str):
    "`(model, tokenizer)`: a random-weight bf16 model of `bench_grpo.SHAPES[shape]` on the GPU (seed 0) and the embedded tokenizer."
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench_grpo import shape_dir
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    d = shape_dir(shape); torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(d), dtype=torch.bfloat16).cuda(), AutoTokenizer.from_pretrained(d)

def sum_prompts(tokenizer, rows: int, G: int = 8) -> tuple:
    "`(ids, mask)` of `rows` left-padded rows: `G` samples each of `rows // G` short arithmetic questions."
    from rlprims.generation import tokenize_prompts
    return tokenize_prompts(tokenizer, [f"What is {i} + {2 * i + 3}? Answer with just the number." for i in range(rows // G)], n=G)

def sampler_ms(sample, rows: int, vocab: int, reps: int = 100, **kw) -> float:
    "Milliseconds a call of `sample` (a `sample_softmax`, with keywords `kw`) takes on random `[rows, vocab]` bf16 logits on the GPU."
    z, seed, step = torch.randn(rows, vocab, device="cuda", dtype=torch.bfloat16) * 3, torch.tensor([1], device="cuda"), torch.tensor([0], device="cuda")
    sample(z, 1.0, seed, step, **kw); torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(reps): sample(z, 1.0, seed, step, **kw)
    torch.cuda.synchronize(); return (time.perf_counter() - t0) / reps * 1e3
