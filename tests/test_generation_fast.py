"Edge cases of the fast decode loop and the chunked log-prob pass (rlprims.fast_decode, rlprims.generation), on a tiny CPU model."
import os
import pytest
import torch
import torch.nn.functional as F
from rlprims.core import GenerationConfig
from rlprims.fast_decode import generate_batch_fast, static_kv_attention, _has_triton
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

@pytest.mark.parametrize("slots", [None, 1])
def test_static_one_token_prompts(setup, slots):
    "Prompts of one token: their pass is still a prompt pass (it once took the decode path and failed), all at once and refilled."
    model, tok, _, _ = setup
    pids, pmask = torch.tensor([[tok.convert_tokens_to_ids("Hello")], [tok.convert_tokens_to_ids("Hi")]]), torch.ones(2, 1, dtype=torch.long)
    cfg = GenerationConfig(max_new_tokens=5, do_sample=False)
    a = generate_batch(model, tok, pids, pmask, cfg)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, static=True, slots=slots)
    assert torch.equal(a.completion_ids, b.completion_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)

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

def _record_compactions(monkeypatch):
    import rlprims.fast_decode as fd
    sizes, compact = [], fd._compact
    monkeypatch.setattr(fd, "_compact", lambda S, n: (sizes.append((len(S.rows), n)), compact(S, n)))
    return sizes

def _record_states(monkeypatch):
    "The decode states generate_batch_fast builds, one per call."
    import rlprims.fast_decode as fd
    states, new_state = [], fd._new_decode_state
    monkeypatch.setattr(fd, "_new_decode_state", lambda *a, **k: states.append(new_state(*a, **k)) or states[-1])
    return states

def test_compaction_changes_no_token(setup, monkeypatch):
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)          # 12 rows
    lengths = torch.tensor([2, 16, 3, 1, 5, 9, 4, 2, 12, 6, 3, 7])
    cfg = GenerationConfig(max_new_tokens=16, min_new_tokens=16, do_sample=False)
    sizes = _record_compactions(monkeypatch)
    a = generate_batch(model, tok, pids, pmask, cfg)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1)
    c = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1, compact=False)
    assert sizes == [(12, 4), (4, 2), (2, 1)]                    # 4 rows live after 6 tokens, 2 after 9, 1 after 12
    assert torch.equal(b.completion_ids, c.completion_ids) and torch.equal(b.completion_mask, c.completion_mask)
    for i, n in enumerate(lengths.tolist()): assert torch.equal(b.completion_ids[i, :n - 1], a.completion_ids[i, :n - 1])
    torch.testing.assert_close(b.logprobs, c.logprobs, atol=1e-5, rtol=0)

@pytest.mark.parametrize("slots,prompt_cache", [(5, None), (3, None), (1, None), (5, False), (3, False)])
def test_slots_refill_changes_no_token(setup, monkeypatch, slots, prompt_cache):
    "generate_batch_fast(slots=k): k rows at a time, a done row's place going to the next waiting row; greedy tokens, forced EOS and log-probs as decoding all rows at once. With the prompt cache (the default where it fits) the 3 distinct prompts run once, in ceil(3 / k) passes, and refills run none; without it, every refill runs its prompts."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)          # 12 rows, 3 distinct prompts
    lengths = torch.tensor([2, 16, 3, 1, 5, 9, 4, 2, 12, 6, 3, 7])
    cfg = GenerationConfig(max_new_tokens=16, min_new_tokens=16, do_sample=False)
    import rlprims.fast_decode as fd
    refills, refill, passes, prefill = [], fd._refill, [], fd._prefill_static
    monkeypatch.setattr(fd, "_refill", lambda m, S: (refills.append(len(S.queue)), refill(m, S)))
    monkeypatch.setattr(fd, "_prefill_static", lambda m, S, ids, *a, **k: (passes.append((len(refills), ids.shape[0])), prefill(m, S, ids, *a, **k))[1])
    states = _record_states(monkeypatch)
    a = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1)
    passes.clear()
    b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1, slots=slots, prompt_cache=prompt_cache)
    assert len(refills) >= -(-(12 - slots) // slots) and refills[0] == 12 - slots   # every waiting row got a place
    if prompt_cache is None:                                     # up front, before any refill: the distinct prompts, `slots` a pass
        assert passes == [(0, min(slots, 3 - i)) for i in range(0, 3, slots)] and states[-1].prompts.logits.shape[0] == 3
    else: assert states[-1].prompts is None and len(passes) == 1 + len(refills)   # the first rows' pass, then one a refill
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask)
    torch.testing.assert_close(fresh * b.completion_mask, b.logprobs, atol=1e-4, rtol=0)

def test_prompt_cache_where_it_fits(setup, monkeypatch):
    "prompt_cache=None: refills copy from the prompt cache where its keys, values and logits fit in a quarter of the memory the KV cache leaves; else each refill runs its prompts. True takes it regardless; the tokens are the same either way."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)          # 12 rows, 3 distinct prompts
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    lengths = torch.tensor([2, 6, 1, 5, 3, 6] * 2)
    import rlprims.fast_decode as fd
    states = _record_states(monkeypatch)
    P = pids.shape[1]
    need = 3 * (fd._kv_bytes_per_row(model, P) + model.config.vocab_size * 4)   # fp32 keys, values and logits of 3 prompts
    kv = 4 * fd._kv_bytes_per_row(model, P + 6 - 1)                             # the KV cache of 4 slots
    out = {}
    for room, flag in ((need * 1.01, None), (need * 0.99, None), (need * 0.99, True)):
        monkeypatch.setattr(fd, "_available_bytes", lambda dev, room=room: kv + 4 * room)
        b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1, slots=4, prompt_cache=flag)
        out[room, flag] = (states[-1].prompts is not None, b.completion_ids)
    assert [used for used, _ in out.values()] == [True, False, True]
    ids = [c for _, c in out.values()]
    assert torch.equal(ids[0], ids[1]) and torch.equal(ids[0], ids[2])

@pytest.mark.parametrize("refill_min", [3, 5, 100])
def test_slots_refill_min_waits_for_done_rows(setup, monkeypatch, refill_min):
    "refill_min=m: a refill comes once m rows are done (or the whole queue fits), so each prompt pass serves several rows; tokens, forced EOS and log-probs stay those of all rows at once (m >= slots: every row done)."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)          # 12 rows through 5 slots
    lengths = torch.tensor([2, 16, 3, 1, 5, 9, 4, 2, 12, 6, 3, 7])
    cfg = GenerationConfig(max_new_tokens=16, min_new_tokens=16, do_sample=False)
    import rlprims.fast_decode as fd
    refills, refill = [], fd._refill
    monkeypatch.setattr(fd, "_refill", lambda m, S: (refills.append((len(S.queue), int(S.done.sum()))), refill(m, S)))
    a = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1, slots=5, refill_min=refill_min)
    assert refills and all(done >= min(refill_min, 5, queue) for queue, done in refills)   # (refill_min=1 here refills 2, 1, 1, 2, 1 rows; more than the slots: all of them)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="refill_min"):
        generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, slots=5, refill_min=0)

def test_slots_refill_cache_holds_slots_rows(setup, monkeypatch):
    "Refilling decodes 12 rows in a KV cache of 2 rows of P + T - 1 slots each: a refilled row starts again at slot 0 of its row."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)
    states = _record_states(monkeypatch)
    cfg = GenerationConfig(max_new_tokens=5, min_new_tokens=5, do_sample=False)
    generate_batch_fast(model, tok, pids, pmask, cfg, static=True, check_every=1, slots=2, compact=False)
    K = states[0].keys[0]
    assert K.shape[0] == 2 and K.shape[2] == pids.shape[1] + 5 - 1 and states[0].col.shape == (2,)

def test_auto_slots_refill_when_the_cache_does_not_fit(setup, monkeypatch):
    "slots='auto' (the default): all rows where their KV cache fits, else as many as fit, refilling; one row too many for memory is a clear error."
    model, tok, pids, pmask = setup
    import rlprims.fast_decode as fd
    states = _record_states(monkeypatch)
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    lengths = torch.tensor([2, 6, 1, 5, 3, 6])
    a = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1)   # CPU: memory not counted
    per_row = fd._kv_bytes_per_row(model, pids.shape[1] + 6 - 1)
    monkeypatch.setattr(fd, "_available_bytes", lambda dev: 2.5 * per_row / 0.7)   # room for 2 rows
    b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=1, compact=False)   # (so the cache keeps its size)
    assert [S.slots for S in states] == [6, 2] and states[1].keys[0].shape[0] == 2
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="does not fit in GPU memory"):   # refilling can't keep EOS banned for only some steps
        generate_batch_fast(model, tok, pids, pmask, cfg._replace(min_new_tokens=3), static=True)
    monkeypatch.setattr(fd, "_available_bytes", lambda dev: 0.5 * per_row / 0.7)
    with pytest.raises(MemoryError, match="one row's KV cache"): generate_batch_fast(model, tok, pids, pmask, cfg, static=True)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_available_bytes_follow_a_memory_fraction():
    "On a GPU: the memory auto_slots counts is within the device's, and within a cap set by set_per_process_memory_fraction."
    import rlprims.fast_decode as fd
    total = torch.cuda.get_device_properties(0).total_memory
    free = fd._available_bytes("cuda")
    assert 0 < free <= total
    try:
        torch.cuda.set_per_process_memory_fraction(0.25, 0)
        capped = fd._available_bytes("cuda")
        assert capped <= 0.25 * total - torch.cuda.memory_allocated(0) + 1 and capped <= free
    finally: torch.cuda.set_per_process_memory_fraction(1.0, 0)

def test_slots_refill_worst_case_fits(setup):
    "Every row at the whole budget and the host looking less often than a row lasts: every row still gets its place and its whole budget."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)          # 12 rows through 2 slots: 6 waves
    cfg = GenerationConfig(max_new_tokens=5, min_new_tokens=5, do_sample=False)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, static=True, check_every=7, slots=2)
    a = generate_batch(model, tok, pids, pmask, cfg)
    assert bool((b.completion_mask == 1).all()) and torch.equal(a.completion_ids, b.completion_ids)

def test_slots_refill_sampled_lengths_and_budget(setup, monkeypatch):
    "Sampled with refills: every row ends at its EOS or at the budget, none longer, and the log-probs are the model's."
    model, tok, pids, pmask = setup
    pids, pmask = pids.repeat(2, 1), pmask.repeat(2, 1)
    eos = list(range(0, 49152, 5))                               # a fifth of the vocabulary ends a row: ragged natural lengths
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, top_p=1.0, top_k=0)
    torch.manual_seed(0)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, eos_ids=eos, static=True, check_every=1, slots=4)
    L = b.completion_mask.sum(-1).long()
    assert (b.completion_mask[:, 1:] <= b.completion_mask[:, :-1]).all() and L.max() <= 10 and L.min() >= 1
    for i, n in enumerate(L.tolist()):
        ended = int(b.completion_ids[i, n - 1]) % 5 == 0
        assert ended or n == 10                                  # EOS, or the whole budget
        assert not bool((b.completion_ids[i, :n - 1] % 5 == 0).any())   # no earlier EOS
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask)
    torch.testing.assert_close(fresh * b.completion_mask, b.logprobs, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="slots"): generate_batch_fast(model, tok, pids, pmask, cfg, slots=0)
    with pytest.raises(ValueError, match="slots < rows means refilling.*min_new_tokens.*pass forced_lengths"):
        generate_batch_fast(model, tok, pids, pmask, cfg._replace(min_new_tokens=3), slots=4)
    import rlprims.fast_decode as fd
    monkeypatch.setattr(fd, "auto_slots", lambda *args: 4)          # the default slots="auto", when the cache of all rows does not fit
    with pytest.raises(ValueError, match=r"cache of 12 rows does not fit in GPU memory \(room for 4\).*generate fewer rows at a time"):
        generate_batch_fast(model, tok, pids, pmask, cfg._replace(min_new_tokens=3), static=True)

def test_forced_lengths_long_tail(setup, monkeypatch):
    model, tok, pids, pmask = setup
    T = 24
    lengths = torch.tensor([1, 24, 3, 7, 2, 11])
    sizes = _record_compactions(monkeypatch)
    torch.manual_seed(0)
    cfg = GenerationConfig(max_new_tokens=T, min_new_tokens=T, temperature=1.0, top_p=1.0, top_k=0)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, check_every=4)
    assert torch.equal(b.completion_mask.sum(-1).long(), lengths) and b.completion_ids.shape == (6, 24)
    assert all(int(b.completion_ids[i, n - 1]) == tok.eos_token_id for i, n in enumerate(lengths.tolist()))
    assert sizes == [(6, 2), (2, 1)]                             # live rows: 3 after 4 steps -> 2 rows, 1 after 12 -> 1
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask)
    torch.testing.assert_close(fresh * b.completion_mask, b.logprobs, atol=1e-4, rtol=0)

@pytest.mark.parametrize("bad", [torch.tensor([0, 1, 1, 1, 1, 1]), torch.tensor([1, 2, 3]), torch.tensor([9, 1, 1, 1, 1, 1])])
def test_forced_lengths_checked(setup, bad):
    model, tok, pids, pmask = setup
    with pytest.raises(ValueError, match="forced_lengths"):
        generate_batch_fast(model, tok, pids, pmask, GenerationConfig(max_new_tokens=8), forced_lengths=bad)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (CUDA graphs, Triton)")
def test_gpu_compaction_with_graphs(setup, monkeypatch):
    model, tok, pids, pmask = setup
    gm = tiny_test_model(seed=1).cuda()
    pids, pmask = pids.repeat(8, 1), pmask.repeat(8, 1)          # 48 rows
    T = 64
    lengths = torch.randint(1, T + 1, (48,), generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(max_new_tokens=T, min_new_tokens=T, do_sample=False)
    sizes = _record_compactions(monkeypatch)
    b = generate_batch_fast(gm, tok, pids, pmask, cfg, forced_lengths=lengths)
    c = generate_batch_fast(gm, tok, pids, pmask, cfg, forced_lengths=lengths, compact=False)
    assert sizes and torch.equal(b.completion_mask.sum(-1).long(), lengths)
    assert torch.equal(b.completion_ids, c.completion_ids)
    torch.testing.assert_close(b.logprobs, c.logprobs, atol=1e-4, rtol=0)

def test_scoring_under_activation_checkpointing(setup):
    "Checkpointed layers write no KV cache in training: the shared-prompt scoring path is avoided (None) or refused (True)."
    from rlprims.precision import enable_activation_checkpointing
    _, tok, pids, pmask = setup
    plain, ckpt = tiny_test_model(seed=1).train(), enable_activation_checkpointing(tiny_test_model(seed=1).train())
    c = torch.randint(0, 1000, (6, 5), generator=torch.Generator().manual_seed(0))
    a = compute_logprobs_for_tokens(plain, pids, pmask, c, requires_grad=True)
    b = compute_logprobs_for_tokens(ckpt, pids, pmask, c, requires_grad=True)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="share_prefix"):
        compute_logprobs_for_tokens(ckpt, pids, pmask, c, requires_grad=True, share_prefix=True)
    with pytest.raises(ValueError, match="fuse_norms"):       # the recomputation would run the unfused norms: a CheckpointError in the backward
        compute_logprobs_for_tokens(ckpt, pids, pmask, c, requires_grad=True, fuse_norms=True)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (fused norms are the default there)")
def test_gpu_checkpointed_scoring_backward(setup):
    "On a GPU, bf16-mixed: a checkpointed model's scoring pass with default options runs its backward, with the plain model's log-probs and gradients."
    from rlprims.precision import enable_activation_checkpointing, create_precision, autocast
    _, tok, pids, pmask = setup
    prec = create_precision("bf16-mixed", "cuda")
    plain, ckpt = (tiny_test_model(seed=1).cuda().train() for _ in range(2))
    enable_activation_checkpointing(ckpt)
    c = torch.randint(0, 1000, (6, 5), generator=torch.Generator().manual_seed(0))
    out = []
    for m, fuse in ((plain, False), (ckpt, None)):            # None: the default, which must not fuse a checkpointed model's norms
        with autocast(prec): lp = compute_logprobs_for_tokens(m, pids, pmask, c, requires_grad=True, fuse_norms=fuse)
        lp.sum().backward()
        out.append((lp.detach(), torch.cat([q.grad.flatten() for q in m.parameters()])))
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0][1], out[1][1], atol=1e-3, rtol=1e-3)

@pytest.mark.parametrize("share_prefix", [False, True])
def test_pad_to_multiple_changes_no_logprob(setup, share_prefix):
    "compute_logprobs_for_tokens(pad_to_multiple=m): rounded widths (capped at the batch's width P + T) give the same log-probs, entropies and gradients."
    _, tok, pids, pmask = setup
    model = tiny_test_model(seed=2).train()
    c = torch.randint(0, 1000, (6, 9), generator=torch.Generator().manual_seed(1))
    cm = (torch.arange(9)[None] < torch.tensor([9, 3, 1, 6, 2, 5])[:, None]).float()   # ragged lengths, one row full
    out, widths = {}, {}
    model.get_input_embeddings().register_forward_hook(lambda mod, args, y: widths[m].add(y.shape[1]))   # the model's input widths
    for m in (1, 4, 64):                                    # 64: wider than prompt + T, so every micro-batch takes the whole width
        model.zero_grad(); widths[m] = set()
        lp, ent = compute_logprobs_for_tokens(model, pids, pmask, c, completion_mask=cm, micro_batch_size=2, requires_grad=True,
                                              return_entropy=True, share_prefix=share_prefix, sort_by_length=True, pad_to_multiple=m)
        (lp * cm).sum().backward()
        out[m] = (lp * cm, ent * cm, [p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert lp.shape == ent.shape == c.shape
    if not share_prefix:                                    # one pass of prompt + completion but its last token: width P + Tm - 1
        full = pids.shape[1] + c.shape[1] - 1
        assert len(widths[1]) == 3 and widths[64] == {full} and all((w + 1) % 4 == 0 or w == full for w in widths[4])
        assert len(widths[4]) == 2                          # the 3 widths above become 2
    for m in (4, 64):
        torch.testing.assert_close(out[m][0], out[1][0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[m][1], out[1][1], atol=1e-4, rtol=0)
        for g, g1 in zip(out[m][2], out[1][2]): torch.testing.assert_close(g, g1, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="pad_to_multiple"):
        compute_logprobs_for_tokens(model, pids, pmask, c, pad_to_multiple=0)

_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and _has_triton()   # set before Triton's import: its own library functions are built then
needs_triton = pytest.mark.skipif(not torch.cuda.is_available() and not _INTERPRETED,
                                  reason="needs a GPU, or Triton's CPU interpreter (TRITON_INTERPRET=1 in the environment)")

def _numpy2_interpreter(monkeypatch):
    "Triton's CPU interpreter turns a loop bound read from memory into an int with int(array of shape (1,)), which NumPy 2 refuses; `.item()` is the same number."
    import triton.runtime.interpreter as ti
    original = ti._patch_lang_tensor
    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.item()))
    monkeypatch.setattr(ti, "_patch_lang_tensor", patched)

def _triton_device(monkeypatch, model):
    "`(model, generate_batch_fast kwargs)` to run rlprims' Triton kernels: on the GPU, or in the interpreter on the CPU (the static loop)."
    if torch.cuda.is_available(): return model.cuda(), {}
    _numpy2_interpreter(monkeypatch)
    return model, dict(static=True)

@needs_triton
def test_fused_rotary_changes_no_token(setup, monkeypatch):
    "generate_batch_fast(fused_rotary=True): rotary_qk in the decode steps, the same greedy tokens, transformers' function back after."
    import transformers.models.llama.modeling_llama as llama
    import rlprims.fast_decode as fd
    model, tok, pids, pmask = setup
    model, kw = _triton_device(monkeypatch, tiny_test_model(seed=1))
    calls, rotary = [], fd.rotary_qk
    monkeypatch.setattr(fd, "rotary_qk", lambda *a: (calls.append(1), rotary(*a))[1])
    original = llama.apply_rotary_pos_emb
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    a = generate_batch_fast(model, tok, pids, pmask, cfg, fused_rotary=False, fused_layers=False, **kw)
    assert not calls
    b = generate_batch_fast(model, tok, pids, pmask, cfg, fused_rotary=True, fused_layers=False, **kw)
    assert llama.apply_rotary_pos_emb is original
    assert len(calls) >= (2 if torch.cuda.is_available() else 5 * 2)   # layers x decode steps; on CUDA, the steps run eagerly or captured
    assert torch.equal(a.completion_ids, b.completion_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)

def _tiny(kind: str, seed: int = 0):
    "A 2-layer random model of a fusable kind: Llama, Mistral, Qwen2 (with q/k/v biases) or Qwen3 (with per-head q/k norms), weights away from their defaults (norms' weights too)."
    import transformers as T
    torch.manual_seed(seed)
    common = dict(vocab_size=49152, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=256, eos_token_id=2, pad_token_id=2)
    if kind == "llama": m = tiny_test_model(seed=seed)
    elif kind == "qwen2": m = T.Qwen2ForCausalLM(T.Qwen2Config(**common))
    elif kind == "mistral": m = T.MistralForCausalLM(T.MistralConfig(**common, sliding_window=None))
    else: m = T.Qwen3ForCausalLM(T.Qwen3Config(**common, head_dim=16))
    for layer in m.model.layers:
        at = layer.self_attn
        for p in ([getattr(at, n).bias for n in ("q_proj", "k_proj", "v_proj")] + [getattr(at, n, None) for n in ("q_norm", "k_norm")]
                  + [layer.input_layernorm, layer.post_attention_layernorm]):
            if p is None: continue
            with torch.no_grad():
                if isinstance(p, torch.nn.Module): p.weight.normal_(1.0, 0.3)
                else: p.normal_(0.0, 0.5)
    return m

def test_fused_decoder_copies_in_a_narrower_dtype():
    "_fused_decoder(dtype=bf16) on an fp32 model: every matrix product's weight (and bias) copied in bf16, equal to the weight's own cast; the model's dtype (or None) copies only what it concatenates."
    from rlprims.fast_decode import _fused_decoder
    m = _tiny("qwen2", seed=3)
    Z = _fused_decoder(m, dtype=torch.bfloat16)
    assert Z.dtype == torch.bfloat16
    for L, layer in zip(Z.layers, m.model.layers):
        at, mlp = layer.self_attn, layer.mlp
        for w in (L.qkv_wt, L.qkv_b, L.o_w, L.gate_up_wt, L.down_w): assert w.dtype == torch.bfloat16
        assert torch.equal(L.qkv_wt, (torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight]) * layer.input_layernorm.weight).to(torch.bfloat16).t())
        assert torch.equal(L.qkv_b, torch.cat([at.q_proj.bias, at.k_proj.bias, at.v_proj.bias]).to(torch.bfloat16))
        assert torch.equal(L.o_w, at.o_proj.weight.to(torch.bfloat16)) and torch.equal(L.down_w, mlp.down_proj.weight.to(torch.bfloat16))
    assert Z.head_w.dtype == torch.bfloat16 and torch.equal(Z.head_w, m.lm_head.weight.to(torch.bfloat16))
    for dtype in (None, torch.float32):
        Z = _fused_decoder(m, dtype=dtype)
        assert Z.dtype is None and Z.layers[0].o_w is m.model.layers[0].self_attn.o_proj.weight and Z.layers[0].qkv_wt.dtype == torch.float32

@needs_triton
@pytest.mark.parametrize("kind", ["qwen2", "qwen3"])
def test_fused_layers_in_a_compute_dtype(setup, monkeypatch, kind):
    """generate_batch_fast(compute_dtype=half) on an fp32 model: the decode steps' attention reads half queries and a half
    cache; tokens as in fp32 and log-probs within half's rounding of an fp32 scoring. fp16 rather than bf16 on the CPU:
    Triton's interpreter runs bf16 fused steps far from PyTorch's numbers even for a bf16 model (`test_gpu_...` checks bf16)."""
    import rlprims.fast_decode as fd
    _, tok, pids, pmask = setup
    half = torch.float16 if not torch.cuda.is_available() else torch.bfloat16
    model, kw = _triton_device(monkeypatch, _tiny(kind))
    seen, attend = set(), fd.decode_attention
    monkeypatch.setattr(fd, "decode_attention", lambda q, K, V, *a, **k: (seen.add((q.dtype, K.dtype, V.dtype)), attend(q, K, V, *a, **k))[1])
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    want = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, **kw)
    assert seen == {(torch.float32,) * 3}; seen.clear()
    b = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, compute_dtype=half, **kw)
    assert seen == {(half,) * 3}
    if half == torch.float16:
        assert torch.equal(b.completion_ids, want.completion_ids)
        fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
        err = (fresh - b.logprobs).abs() * b.completion_mask
        assert 1e-6 < err.max() < 2e-3, err                  # half's rounding, no more: and not zero, so the steps did run in half
    with pytest.warns(UserWarning, match="compute_dtype"):    # no fused steps here: the weights' dtype, and a warning that says so
        generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=False, compute_dtype=half, **kw)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (CUDA graphs)")
def test_gpu_fused_layers_in_a_compute_dtype(setup):
    "On a GPU, an fp32 model decoding with compute_dtype=bf16 (CUDA graphs, compaction, forced lengths) samples log-probs as close to an fp32 scoring as a bf16 copy of the model does."
    _, tok, pids, pmask = setup
    model = _tiny("qwen2").cuda()
    pids, pmask = pids.repeat(8, 1), pmask.repeat(8, 1)
    lengths = torch.randint(1, 33, (48,), generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(max_new_tokens=32, min_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0)
    errors = {}
    for name, m, kw in (("bf16 copy", _tiny("qwen2").cuda().to(torch.bfloat16), {}), ("compute_dtype", model, dict(compute_dtype=torch.bfloat16))):
        torch.manual_seed(0)
        b = generate_batch_fast(m, tok, pids, pmask, cfg, forced_lengths=lengths, **kw)
        fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
        errors[name] = ((fresh - b.logprobs).abs() * b.completion_mask).sum().item() / b.completion_mask.sum().item()
    assert errors["compute_dtype"] < max(1.5 * errors["bf16 copy"], 0.02), errors


def test_fused_decoder_takes_known_kinds_only():
    "_fused_decoder: Llama, Mistral, Qwen2 and Qwen3 layers are fused (concatenated q/k/v, gate/up, each with its RMSNorm's weight folded in); a wrapped projection or a sliding window is not."
    from rlprims.fast_decode import _fused_decoder
    for kind in ("llama", "mistral", "qwen2", "qwen3"):
        m = _tiny(kind)
        Z = _fused_decoder(m)
        at, mlp = m.model.layers[1].self_attn, m.model.layers[1].mlp
        assert Z is not None and len(Z.layers) == 2 and Z.layers[1].idx == 1 and Z.layers[1].H == 4
        ln1, ln2 = m.model.layers[1].input_layernorm.weight, m.model.layers[1].post_attention_layernorm.weight
        assert not torch.equal(ln1, torch.ones_like(ln1))            # the norms' weights, folded into the products' weights [in, out]
        torch.testing.assert_close(Z.layers[1].qkv_wt, torch.cat([at.q_proj.weight, at.k_proj.weight, at.v_proj.weight]).t() * ln1[:, None])
        torch.testing.assert_close(Z.layers[1].gate_up_wt, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).t() * ln2[:, None])
        assert (Z.layers[1].qkv_b is None) == (kind != "qwen2") and (Z.layers[1].q_norm is None) == (kind != "qwen3")
    m = _tiny("qwen2")
    m.model.layers[1].mlp.up_proj = torch.nn.Sequential(m.model.layers[1].mlp.up_proj)   # e.g. an adapter around it
    assert _fused_decoder(m) is None
    m = _tiny("qwen2")
    m.model.layers[0].self_attn.sliding_window = 8
    assert _fused_decoder(m) is None
    import transformers as T
    torch.manual_seed(0)
    mistral = T.MistralForCausalLM(T.MistralConfig(vocab_size=1000, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                                                   num_attention_heads=4, num_key_value_heads=2, sliding_window=3))
    assert _fused_decoder(mistral) is None                       # Mistral keeps its window in the config

def test_fused_decoder_leaves_memory_to_the_kv_cache(monkeypatch):
    "The fused copies (concatenated q/k/v and gate/up) are made only when they fit in half the memory a KV cache of rows x slots leaves free."
    import rlprims.fast_decode as fd
    m = _tiny("llama")
    copies = sum(l.self_attn.q_proj.weight.numel() + 2 * l.self_attn.k_proj.weight.numel() + 2 * l.mlp.up_proj.weight.numel()
                 for l in m.model.layers) * 4                                  # fp32 bytes
    kv = 2 * 2 * 6 * 100 * m.model.layers[0].self_attn.k_proj.out_features * 4    # 2 layers x (K, V) x 6 rows x 100 slots
    monkeypatch.setattr(fd, "_available_bytes", lambda device: kv + 2 * copies + 8)
    assert fd._fused_decoder(m, rows=6, slots=100) is not None
    monkeypatch.setattr(fd, "_available_bytes", lambda device: kv + 2 * copies - 8)
    assert fd._fused_decoder(m, rows=6, slots=100) is None
    assert fd._fused_decoder(m) is not None                                      # no KV cache to leave room for

def _lora(model):
    "`model` with LoRA adapters (rank 4) on every projection, their B matrices non-zero so that they change the output."
    import peft
    m = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    torch.manual_seed(5)
    for mod in m.modules():
        if hasattr(mod, "lora_B"):
            for b in mod.lora_B.values(): torch.nn.init.normal_(b.weight, std=0.2)
    return m

def test_fused_decoder_merges_lora():
    "Under PEFT's LoRA, _fused_decoder's weights apply what the wrapped layers apply (adapters merged into copies); DoRA is left to the model."
    import peft
    from rlprims.fast_decode import _fused_decoder
    m = _lora(_tiny("qwen2")).eval()
    Z, at, mlp = _fused_decoder(m), m.get_base_model().model.layers[0].self_attn, m.get_base_model().model.layers[0].mlp
    x = torch.randn(3, 64)
    with torch.no_grad():
        L = Z.layers[0]
        ln1, ln2 = [m.get_base_model().model.layers[0].input_layernorm.weight, m.get_base_model().model.layers[0].post_attention_layernorm.weight]
        torch.testing.assert_close(x @ L.qkv_wt + L.qkv_b, torch.cat([at.q_proj(x * ln1), at.k_proj(x * ln1), at.v_proj(x * ln1)], 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(F.linear(x, L.o_w, L.o_b), at.o_proj(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(x @ L.gate_up_wt, torch.cat([mlp.gate_proj(x * ln2), mlp.up_proj(x * ln2)], 1), atol=1e-5, rtol=0)
        assert (at.o_proj(x) - at.o_proj.base_layer(x)).abs().max() > 1e-2      # the adapters do change the output
    dora = peft.get_peft_model(_tiny("llama"), peft.LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))
    assert _fused_decoder(dora) is None

@needs_triton
@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "qwen3", "qwen3-lora"])
def test_fused_layers_change_no_token(setup, monkeypatch, kind):
    "generate_batch_fast(fused_layers=True) decodes through _fused_forward: in fp32 the same greedy tokens and log-probs as the model's own forward."
    import rlprims.fast_decode as fd
    _, tok, pids, pmask = setup
    model, kw = _triton_device(monkeypatch, _lora(_tiny("qwen3")) if kind == "qwen3-lora" else _tiny(kind))
    calls, forward = [], fd._fused_forward
    monkeypatch.setattr(fd, "_fused_forward", lambda S: (calls.append(1), forward(S))[1])
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    a = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=False, **kw)
    assert not calls
    b = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, **kw)
    assert calls                                                 # the decode steps went through the fused forward
    assert torch.equal(a.completion_ids, b.completion_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)
    fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
    torch.testing.assert_close(fresh * b.completion_mask, b.logprobs, atol=1e-4, rtol=0)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (bf16 CUDA graphs)")
@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "qwen3"])
def test_gpu_fused_layers_bf16(setup, monkeypatch, kind):
    "On a GPU in bf16, with CUDA graphs and compaction: the fused forward's sampled log-probs agree with a fresh scoring pass as closely as the model's own forward does."
    _, tok, pids, pmask = setup
    model = _tiny(kind).cuda().to(torch.bfloat16)
    pids, pmask = pids.repeat(8, 1), pmask.repeat(8, 1)          # 48 rows
    lengths = torch.randint(1, 33, (48,), generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(max_new_tokens=32, min_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0)
    import rlprims.fast_decode as fd
    calls, forward = [], fd._fused_forward
    monkeypatch.setattr(fd, "_fused_forward", lambda S: (calls.append(1), forward(S))[1])
    errors = {}
    for fused in (False, True):
        torch.manual_seed(0)
        b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, fused_layers=fused)
        assert bool(calls) == fused                                  # the fused forward ran in the second pass only
        fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
        assert torch.equal(b.completion_mask.sum(-1).long(), lengths)
        errors[fused] = ((fresh - b.logprobs).abs() * b.completion_mask).sum().item() / b.completion_mask.sum().item()
    assert errors[True] < max(2 * errors[False], 0.02), errors

@needs_triton
def test_fused_rope_table_changes_no_token(setup, monkeypatch):
    "The fused steps read cos/sin from a table by position (made once per call, for rotary kinds that depend on the position alone): the same tokens and log-probs as calling the rotary module each step, with refills (rows at different positions)."
    import rlprims.fast_decode as fd
    _, tok, pids, pmask = setup
    model, kw = _triton_device(monkeypatch, _tiny("qwen2"))
    Z = fd._fused_decoder(model, rows=2, slots=12)
    dev = next(model.parameters()).device
    cos, sin = model.model.rotary_emb(torch.zeros(1, device=dev), torch.arange(13, device=dev)[None])
    assert torch.equal(Z.rope_table[0], cos[0]) and torch.equal(Z.rope_table[1], sin[0])
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    run = lambda: generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, forced_lengths=torch.tensor([2, 6, 1, 5, 3, 6]), check_every=1, slots=2, **kw)
    a = run()
    monkeypatch.setattr(fd, "_STATIC_ROPE", ())                  # no table: each step calls the rotary module
    assert fd._fused_decoder(model, rows=2, slots=12).rope_table is None
    b = run()
    assert torch.equal(a.completion_ids, b.completion_ids)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)

@needs_triton
def test_fused_layers_with_refills_change_no_token(setup, monkeypatch):
    "slots < rows through the fused forward (the Triton kernels read and write each row's own slot): the tokens and log-probs of decoding all rows at once."
    _, tok, pids, pmask = setup
    model, kw = _triton_device(monkeypatch, _tiny("qwen2"))
    lengths = torch.tensor([2, 6, 1, 5, 3, 6])
    cfg = GenerationConfig(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    a = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, forced_lengths=lengths, check_every=1, **kw)
    b = generate_batch_fast(model, tok, pids, pmask, cfg, fused_layers=True, forced_lengths=lengths, check_every=1, slots=2, **kw)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.completion_mask, b.completion_mask)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (bf16 CUDA graphs)")
def test_gpu_refills_bf16(setup):
    "On a GPU in bf16 with CUDA graphs: 48 long-tailed rows through 16 slots keep their forced lengths, and their log-probs agree with a fresh scoring pass as closely as without refills."
    _, tok, pids, pmask = setup
    model = _tiny("qwen2").cuda().to(torch.bfloat16)
    pids, pmask = pids.repeat(8, 1), pmask.repeat(8, 1)
    lengths = torch.randint(1, 33, (48,), generator=torch.Generator().manual_seed(0))
    cfg = GenerationConfig(max_new_tokens=32, min_new_tokens=32, temperature=1.0, top_p=1.0, top_k=0)
    errors = {}
    for slots in (None, 16):
        torch.manual_seed(0)
        b = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=lengths, slots=slots, check_every=4)
        assert torch.equal(b.completion_mask.sum(-1).long(), lengths)
        fresh = compute_logprobs_for_tokens(model, b.prompt_ids, b.prompt_mask, b.completion_ids, completion_mask=b.completion_mask).cpu()
        errors[slots] = ((fresh - b.logprobs).abs() * b.completion_mask).sum().item() / b.completion_mask.sum().item()
    assert errors[16] < max(2 * errors[None], 0.02), errors

@needs_triton
@pytest.mark.parametrize("banned", [False, True])
def test_sampler_spans_change_no_sample(monkeypatch, banned):
    "sample_softmax cut into 1, 3 or 16 spans a row: the same tokens (one uniform a row, the same whatever the spans; ties aside), the same log-probs."
    from rlprims.fast_decode import sample_softmax
    if not torch.cuda.is_available(): _numpy2_interpreter(monkeypatch)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    z = (torch.randn(6, 9000) * 2).to(dev)                  # three blocks of 4096 columns
    ban = torch.tensor([int(z[0].argmax())], device=dev) if banned else None
    seed, step = torch.tensor([5], device=dev), torch.tensor([3], device=dev)
    (t1, l1), *others = [sample_softmax(z, 0.7, seed, step, ban, spans=k) for k in (1, 3, 16)]
    for t, l in others:
        assert torch.equal(t, t1); torch.testing.assert_close(l, l1, atol=1e-5, rtol=0)
    torch.testing.assert_close(l1, torch.log_softmax(z / 0.7, -1).gather(1, t1[:, None])[:, 0], atol=1e-5, rtol=0)
    if banned: assert not bool((t1 == ban).any())

@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_attention_spans_match_softmax_attention(monkeypatch, dtype):
    "decode_attention with its slots cut into 1, 2, 3 or 16 spans (empty spans, a span all padding, a length no block divides) against masked softmax attention in PyTorch."
    from rlprims.fast_decode import decode_attention
    if not torch.cuda.is_available():
        if dtype == torch.bfloat16: pytest.skip("Triton's interpreter reads bf16 tensors wrongly (NumPy has no bf16); bf16 runs on a GPU")
        _numpy2_interpreter(monkeypatch)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    N, H, Hkv, D, Lmax = 3, 6, 2, 32, 120
    q = torch.randn(N, H, D, device=dev).to(dtype)
    K, V = (torch.randn(N, Hkv, Lmax, D, device=dev).to(dtype) for _ in range(2))
    mask = torch.ones(N, Lmax + 1, dtype=torch.bool, device=dev)
    mask[0, :40] = False                                    # longer than a span of 32 slots: that span sees nothing
    mask[1, 7:9] = False
    for L in (97, 20):                                      # 16 spans of 97 or 20 slots: most spans are empty
        col = torch.tensor([L - 1], device=dev)
        s = torch.einsum("nhd,nhld->nhl", q.double(), K[:, :, :L].double().repeat_interleave(H // Hkv, 1)) * D ** -0.5
        w = s.masked_fill(~mask[:, None, :L], float("-inf")).softmax(-1)
        want = torch.einsum("nhl,nhld->nhd", w, V[:, :, :L].double().repeat_interleave(H // Hkv, 1))
        if L == 20: want[0] = float("nan")                  # row 0 sees no slot at all: 0/0, as with one span
        for splits in (1, 2, 3, 16):
            got = decode_attention(q, K, V, mask, col, D ** -0.5, splits=splits).double()
            torch.testing.assert_close(got, want, atol=1e-4 if dtype == torch.float32 else 2e-2, rtol=0, equal_nan=True)
    with pytest.raises(ValueError, match="splits"): decode_attention(q, K, V, mask, col, D ** -0.5, splits=0)

def _attention_inputs(monkeypatch, seed: int, N: int, H: int, Hkv: int, D: int, L: int):
    "`(device, q [N, H, D], K, V [N, Hkv, L, D])`, random, where rlprims' Triton attention runs: the GPU, or the interpreter on the CPU."
    if not torch.cuda.is_available(): _numpy2_interpreter(monkeypatch)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    return dev, torch.randn(N, H, D, device=dev), *(torch.randn(N, Hkv, L, D, device=dev) for _ in range(2))

@needs_triton
@pytest.mark.parametrize("splits", [1, 3])
def test_decode_attention_reads_each_rows_own_slots(monkeypatch, splits):
    "decode_attention with col [N] (refilling): row n reads slots 0..col[n] only; NaN keys and values after them change nothing."
    from rlprims.fast_decode import decode_attention
    N, D, L = 3, 16, 90
    dev, q, K, V = _attention_inputs(monkeypatch, 1, N=N, H=4, Hkv=2, D=D, L=L)
    col = torch.tensor([89, 37, 5], device=dev)             # a row at the cache's end, and two refilled rows
    mask = torch.ones(N, L + 1, dtype=torch.bool, device=dev); mask[1, :3] = False   # row 1's prompt left-padded
    want = torch.stack([decode_attention(q[n:n + 1], K[n:n + 1], V[n:n + 1], mask[n:n + 1], col[n:n + 1], D ** -0.5, splits=splits)[0]
                        for n in range(N)])                 # one row at a time, the shared-slot path
    for n, c in enumerate(col.tolist()): K[n, :, c + 1:] = V[n, :, c + 1:] = float("nan")
    got = decode_attention(q, K, V, mask, col, D ** -0.5, splits=splits)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="col must hold"): decode_attention(q, K, V, mask, col[:2], D ** -0.5)

@needs_triton
@pytest.mark.parametrize("splits", [1, 2, 5])
def test_decode_attention_skips_each_rows_left_padding(monkeypatch, splits):
    "decode_attention with first [N]: slots before a row's first visible one are never read (NaN there changes nothing), the rest as without it."
    from rlprims.fast_decode import decode_attention
    D, L = 16, 200
    dev, q, K, V = _attention_inputs(monkeypatch, 2, N=4, H=4, Hkv=2, D=D, L=L)
    first = torch.tensor([0, 3, 70, 150], device=dev)       # left padding of 0, 3, 70 and 150 slots: within a block, and several blocks long
    mask = torch.arange(L + 1, device=dev)[None] >= first[:, None]
    for col in (torch.tensor([179], device=dev), torch.tensor([199, 40, 120, 160], device=dev)):   # one slot for all rows, and each row's own
        want = decode_attention(q, K, V, mask, col, D ** -0.5, splits=splits)
        Kn, Vn = K.clone(), V.clone()
        for n, f in enumerate(first.tolist()): Kn[n, :, :f] = Vn[n, :, :f] = float("nan")
        assert decode_attention(q, Kn, Vn, mask, col, D ** -0.5, splits=splits)[2:].isnan().all()   # without first, the padding is read
        torch.testing.assert_close(decode_attention(q, Kn, Vn, mask, col, D ** -0.5, splits=splits, first=first), want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="first must hold"): decode_attention(q, K, V, mask, col, D ** -0.5, first=first[:2])

def test_attention_splits_fill_the_multiprocessors(monkeypatch):
    "attention_splits: one span while rows x KV heads fill the GPU; else a power of two up to 16, each span at least 128 slots."
    import rlprims.fast_decode as fd
    monkeypatch.setattr(fd, "_multiprocessors", lambda dev: 132)   # an H200
    assert fd.attention_splits(128 * 2, 1088, "cuda") == 1 and fd.attention_splits(132, 1088, "cuda") == 1
    assert fd.attention_splits(64 * 2, 1088, "cuda") == 2        # 128 programs: ceil(132 / 128) = 2
    assert fd.attention_splits(16 * 2, 1088, "cuda") == 8        # ceil(132 / 32) = 5, up to a power of two
    assert fd.attention_splits(1, 1 << 16, "cuda") == 16         # at most 16
    assert fd.attention_splits(1, 300, "cuda") == 2 and fd.attention_splits(1, 100, "cuda") == 1   # spans of at least 128 slots

def test_logprobs_of_empty_completions(setup):
    "No completion tokens at all (T = 0): empty log-probs and entropies of shape [B, 0], padded or packed, not an error."
    model, _, pids, pmask = setup
    for pack in (False, True):
        lp, ent = compute_logprobs_for_tokens(model, pids, pmask, torch.zeros(len(pids), 0, dtype=torch.long), return_entropy=True, pack=pack)
        assert lp.shape == ent.shape == (len(pids), 0)


def test_session_checks_its_arguments(setup):
    "start_decode_session / session_add: min_new_tokens, budgets and prompt widths are refused with the reason."
    from rlprims.fast_decode import start_decode_session, session_add
    model, tok, pids, pmask = setup
    with pytest.raises(ValueError, match="min_new_tokens"):
        start_decode_session(model, tok, GenerationConfig(max_new_tokens=6, min_new_tokens=2), slots=2, prompt_len=pids.shape[1])
    with pytest.raises(ValueError, match="max_new_tokens >= 2"):
        start_decode_session(model, tok, GenerationConfig(max_new_tokens=1), slots=2, prompt_len=pids.shape[1])
    S = start_decode_session(model, tok, GenerationConfig(max_new_tokens=6), slots=2, prompt_len=pids.shape[1] - 1)
    with pytest.raises(ValueError, match="the session holds"): session_add(S, pids, pmask)
    with pytest.raises(ValueError, match="forced_lengths"): session_add(S, pids[:, 1:], pmask[:, 1:], forced_lengths=torch.full((6,), 7))

@pytest.mark.parametrize("slots,check_every,prompt_cache", [(1, 1, None), (3, 2, None), (8, 16, None), (3, 2, False)])
def test_session_rows_as_one_batch(setup, slots, check_every, prompt_cache):
    "Rows added in two lots, a run stopped early in between: each row's greedy tokens and log-probs are those of one generate_batch_fast call over all of them (places copying cached prompt passes, or running their own)."
    from rlprims.fast_decode import start_decode_session, session_add, session_run
    model, tok, pids, pmask = setup
    L = torch.tensor([3, 10, 1, 7, 5, 2])
    cfg = GenerationConfig(max_new_tokens=10, do_sample=False)
    want = generate_batch_fast(model, tok, pids, pmask, cfg, forced_lengths=L, static=True)
    S = start_decode_session(model, tok, cfg, slots=slots, prompt_len=pids.shape[1] + 2, check_every=check_every, prompt_cache=prompt_cache)
    assert session_add(S, pids[:4], pmask[:4], forced_lengths=L[:4]) == [0, 1, 2, 3]
    got = session_run(model, S, until=lambda S: len(S.finished) >= 1)
    assert 1 <= len(got) < 6
    if slots < 4:                                         # rows still waiting: their prompts' passes are kept (by default), one per distinct prompt
        assert len(S.prompt_of) == (0 if prompt_cache is False else len({x[4] for x in S.pending}))
    assert session_add(S, pids[4:], pmask[4:], forced_lengths=L[4:]) == [4, 5]
    got += session_run(model, S)
    assert sorted(r for r, *_ in got) == list(range(6)) and S.pending == [] and all(r is None for r in S.owner)
    for r, t, lp in got:
        assert torch.equal(t, want.completion_ids[r, :int(L[r])])
        torch.testing.assert_close(lp, want.logprobs[r, :int(L[r])], atol=1e-4, rtol=0)

def test_session_refresh_drops_cached_prompt_passes(setup):
    "Rows queued before an update and started after it: their prompt passes run again with the new weights (the cached ones are dropped), so they decode as the updated model does."
    from rlprims.fast_decode import start_decode_session, session_add, session_run, session_refresh
    _, tok, pids, pmask = setup
    L = torch.tensor([2, 9, 9, 4, 5, 3]); cfg = GenerationConfig(max_new_tokens=10, do_sample=False)
    model = tiny_test_model(seed=2)
    S = start_decode_session(model, tok, cfg, slots=2, prompt_len=pids.shape[1], check_every=1)
    session_add(S, pids, pmask, forced_lengths=L)
    got = session_run(model, S, until=lambda S: len(S.finished) >= 1)   # row 0 done; row 2 took its place; rows 3-5 wait
    assert [r for r, *_ in got] == [0] and [x[0] for x in S.pending] == [3, 4, 5] and len(S.prompt_of) == 2   # rows 3 and 4-5: two prompts
    with torch.no_grad():
        for p in model.parameters(): p.mul_(1.3)
    session_refresh(model, S)
    assert S.prompt_of == {}
    got = {r: t for r, t, _ in session_run(model, S)}
    want = generate_batch_fast(model, tok, pids[3:], pmask[3:], cfg, forced_lengths=L[3:], static=True)
    for r in (3, 4, 5): assert torch.equal(got[r], want.completion_ids[r - 3, :int(L[r])])

@needs_triton
def test_session_refresh_after_an_update(setup, monkeypatch):
    "Weights changed in place between runs: after session_refresh, rows started later decode as the updated model does; without it they do not (the fused copies were stale)."
    from rlprims.fast_decode import start_decode_session, session_add, session_run, session_refresh
    _, tok, pids, pmask = setup
    L = torch.tensor([3, 10, 1, 7, 5, 2]); cfg = GenerationConfig(max_new_tokens=10, do_sample=False)
    for refresh in (True, False):
        model, kw = _triton_device(monkeypatch, _tiny("qwen2"))
        S = start_decode_session(model, tok, cfg, slots=2, prompt_len=pids.shape[1], check_every=1, fused_layers=True,
                                 cuda_graphs=None if torch.cuda.is_available() else False)
        session_add(S, pids[:3], pmask[:3], forced_lengths=L[:3])
        got = session_run(model, S, until=lambda S: len(S.finished) >= 1)
        with torch.no_grad():
            for p in model.parameters(): p.mul_(1.3)           # an optimizer step, in place
        if refresh: session_refresh(model, S)
        later = session_add(S, pids[3:], pmask[3:], forced_lengths=L[3:])
        got = {r: (t, lp) for r, t, lp in got + session_run(model, S)}
        assert sorted(got) == list(range(6)) and all(len(got[r][0]) == int(L[r]) for r in got)   # rows spanning the update finish too
        want = generate_batch_fast(model, tok, pids[3:], pmask[3:], cfg, forced_lengths=L[3:], fused_layers=True, **kw)
        same = all(torch.equal(got[r][0], want.completion_ids[r - 3, :int(L[r])]) and
                   torch.allclose(got[r][1], want.logprobs[r - 3, :int(L[r])], atol=1e-3) for r in later)
        assert same == refresh
