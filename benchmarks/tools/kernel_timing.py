"""Helpers shared by the kernel tools in this folder (`tune_decode_attention.py`, `try_act_down.py`)."""
import time
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
