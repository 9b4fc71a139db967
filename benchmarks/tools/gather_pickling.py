#!/usr/bin/env python
"""Two CPU processes on gloo: the time to gather one step's RolloutResult (64 rows x 128 tokens each), with torch's own pickling of
the tensors against `rlprims.distributed._to_bytes` (NumPy arrays). Run: `python benchmarks/tools/gather_pickling.py`."""
import os, time, pickle, torch, torch.distributed as dist, torch.multiprocessing as mp
def run(rank):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from rlprims.core import Rollout, Generation, RolloutBatch
    from rlprims.rollouts import RolloutResult, concat_rollout_results
    from rlprims.distributed import _all_gather
    N, P, T = 64, 60, 128
    b = RolloutBatch(prompt_ids=torch.randint(0, 1000, (N, P)), prompt_mask=torch.ones(N, P), completion_ids=torch.randint(0, 1000, (N, T)),
                     completion_mask=torch.ones(N, T), logprobs=torch.randn(N, T), group_ids=torch.arange(N) // 8, rewards=torch.rand(N))
    ros = [Rollout("prompt text " * 20, Generation("completion " * 40, b.completion_ids[i].clone(), b.logprobs[i].clone(), b.completion_mask[i].clone(), {"truncated": False}),
                   1.0, 0.0, None, {"answer": "12", "group_id": i // 8}) for i in range(N)]
    res = RolloutResult(ros, b, {"correct": torch.rand(N)}, None, 0, 128)
    def old(obj):
        out = [None, None]; dist.all_gather_object(out, obj); return out
    for name, f in (("torch pickling", old), ("_to_bytes", lambda o: _all_gather(o, 2)), ("torch pickling", old), ("_to_bytes", lambda o: _all_gather(o, 2))):
        ts = []
        for _ in range(20):
            dist.barrier(); t0 = time.perf_counter(); parts = f(res); ts.append(time.perf_counter() - t0)
        ts.sort()
        if rank == 0: print(f"{name:15s} median {ts[10]*1e3:.1f} ms per gather")
        assert torch.equal(parts[rank].rollouts[5].generation.token_ids, res.rollouts[5].generation.token_ids)
    dist.destroy_process_group()
if __name__ == "__main__": mp.spawn(run, nprocs=2)
