"""Mixed precision and pi_old (issue: training that learns on a GPU). CPU only; the tiny random Llama, except where said."""
import json, math, warnings
import pytest
import torch
from rlprims.core import GenerationConfig, TrainingConfig, RolloutBatch, pad_right, RunConfig, Hooks
from rlprims.generation import load_tokenizer, compute_logprobs_for_tokens
from rlprims.algorithms import get_algorithm_config
from rlprims.precision import create_precision, prepare_for_training, disable_dropout, autocast
from rlprims.training import create_runner, training_iteration, train, tiny_test_model, create_addition_dataset, ADDITION_REWARDS, _tis_weights

GEN = GenerationConfig(max_new_tokens=6, temperature=1.0, top_k=0, top_p=1.0)
PROMPTS = create_addition_dataset(4, seed=3)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def varied_reward(rollout):
    "A reward that differs inside every group (so DAPO's filter keeps the groups)."
    return float(len(rollout.generation.token_ids) % 3) + 0.1 * float(rollout.generation.token_ids.sum() % 7)


def fixed_generator(replies, logprob=-0.5):
    "A generator that gives row i the reply `replies[i % len(replies)]` then EOS, whatever the model; sampler log-probs = `logprob`."
    def gen(model, tokenizer, prompt_ids, prompt_mask, config, compute_logprobs=True):
        rows = [tokenizer(replies[i % len(replies)], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                for i in range(prompt_ids.shape[0])]
        comp = pad_right([torch.tensor(r) for r in rows], tokenizer.pad_token_id)
        mask = pad_right([torch.ones(len(r)) for r in rows], 0)
        return RolloutBatch(prompt_ids, prompt_mask.float(), comp, mask, logprobs=torch.full(comp.shape, float(logprob)) * mask)
    return gen


def _iteration(tok, precision, optimizer_cls, lr, algorithm="grpo", generator=None, model=None, gen=GEN, **cfg):
    prec = create_precision(precision, "cpu")
    torch.manual_seed(0)
    model, sampler = prepare_for_training(model if model is not None else tiny_test_model(), prec)
    opt = optimizer_cls([p for p in model.parameters() if p.requires_grad], lr=lr)
    before = [p.detach().float().clone() for p in model.parameters()]
    st = training_iteration(model, tok, PROMPTS, gen, get_algorithm_config(0, algorithm, **cfg), varied_reward, opt,
                            num_generations=4, hooks=Hooks(generator=generator),
                            runner=create_runner(model, precision=prec, sampler_model=None if sampler is model else sampler))
    update = [p.detach().float() - b for p, b in zip(model.parameters(), before)]
    return st.metrics, update, model, sampler


def _rel(a, b):
    return (sum(((x - y) ** 2).sum() for x, y in zip(a, b)) / sum((y ** 2).sum() for y in b)).sqrt().item()


def _moved(u):
    return sum((x != 0).sum().item() for x in u) / sum(x.numel() for x in u)


def test_bf16_mixed_step_moves_weights_like_fp32(tok):
    "One update through training_iteration (AdamW at lr 1e-5; SGD at lr 1, whose update is the gradient): bf16-mixed moves the weights as fp32 does, pure bf16 barely."
    gen = fixed_generator(["The sum is 12", "It is 99 I think", "7", "The answer: 3 + 4 = 7"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sgd = {p: _iteration(tok, p, torch.optim.SGD, 1.0, generator=gen)[1] for p in ("fp32", "bf16-mixed")}
        adam = {p: _iteration(tok, p, torch.optim.AdamW, 1e-5, generator=gen)[1] for p in ("fp32", "bf16-mixed", "bf16")}
    assert _moved(sgd["fp32"]) > 0.1
    assert _rel(sgd["bf16-mixed"], sgd["fp32"]) < 0.01          # the update itself, within 1% of fp32's
    print({p: (_moved(u), _rel(u, adam["fp32"])) for p, u in adam.items()}, _rel(sgd["bf16-mixed"], sgd["fp32"]))
    assert _moved(adam["bf16-mixed"]) > 0.99 * _moved(adam["fp32"]) and _moved(adam["bf16"]) < 0.3 * _moved(adam["fp32"])
    assert _rel(adam["bf16-mixed"], adam["fp32"]) < 0.1 < 0.5 < _rel(adam["bf16"], adam["fp32"])


@pytest.mark.parametrize("algorithm", ["grpo", "dapo", "gspo"])
def test_on_policy_ratio_is_exactly_one_in_bf16(tok, algorithm):
    "bf16 compute, real sampling from the bf16 copy: the sampler and trainer disagree, yet the ratio is 1 and nothing is clipped."
    m, *_ = _iteration(tok, "bf16-mixed", torch.optim.AdamW, 1e-5, algorithm=algorithm)
    assert m.get("skipped_update", 0) == 0
    assert m["ratio_mean"] == 1.0 and m["ratio_max"] == 1.0
    assert m["clip_frac"] == 0.0 and m["clip_frac_low"] == 0.0 and m["clip_frac_high"] == 0.0
    assert m["sampler_logprob_diff"] > 1e-4                   # the mismatch is real, and it is measured
    assert m["sampler_kl"] >= 0 and math.isfinite(m["loss"])


def test_dropout_model_ratio_is_exactly_one(tok):
    "A GPT-2 with dropout 0.1 everywhere, trained through `train`: dropout is switched off, the ratio is exactly 1."
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256,
                                      resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)).train()
    ids = torch.randint(0, 100, (2, 8))
    assert not torch.equal(gpt2(ids).logits, gpt2(ids).logits)
    res = train(prompts=PROMPTS, reward_fn=varied_reward, num_steps=1, batch_size=2, num_generations=4, model=gpt2, tokenizer=tok,
                gen_config=GEN, algorithm="dapo", output_dir=_tmp(), run=RunConfig(progress=False, save_final=False))
    m = res.metrics.iloc[0]
    assert m["ratio_max"] == 1.0 and m["clip_frac"] == 0.0
    gpt2.train()
    assert torch.equal(gpt2(ids).logits, gpt2(ids).logits)


def _tmp():
    import tempfile
    return tempfile.mkdtemp()


def test_off_policy_old_logprobs_come_from_the_trainer(tok):
    "Two inner epochs, a sampler whose log-probs are wrong (-0.5 everywhere): pi_old is the trainer's pass, so the first ratio is ~1."
    gen = fixed_generator(["The sum is 12", "It is 99 I think", "7", "The answer: 3 + 4 = 7"], logprob=-0.5)
    m, *_ = _iteration(tok, "fp32", torch.optim.SGD, 1e-9, generator=gen, num_inner_epochs=2)
    assert abs(m["ratio_mean"] - 1.0) < 1e-4 and m["clip_frac"] == 0.0   # with the sampler's -0.5 as pi_old, ratios would be ~e^-10
    assert m["sampler_logprob_diff"] > 1.0                                 # the tiny model's log-probs are near -ln(49152), not -0.5


def test_truncated_importance_sampling(tok):
    "tis_cap weights tokens by min(pi_trainer / pi_sampler, cap): checked against the formula, then inside a step."
    lp = torch.tensor([[-1.0, -2.0, -0.1], [-3.0, 0.0, 0.0]])
    samp = torch.tensor([[-1.5, -1.0, -0.1], [-1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    w = _tis_weights(lp, samp, mask, cap=1.2)
    want = torch.tensor([[min(math.exp(0.5), 1.2), math.exp(-1.0), 1.0], [math.exp(-2.0), 0.0, 0.0]])
    torch.testing.assert_close(w, want)
    gen = fixed_generator(["The sum is 12", "It is 99 I think", "7", "The answer: 3 + 4 = 7"], logprob=-12.0)
    m, *_ = _iteration(tok, "fp32", torch.optim.SGD, 1e-3, generator=gen, tis_cap=2.0)
    # the tiny model gives these tokens about -10.8 nats, the sampler claimed -12: every weight is capped at 2
    assert m["tis_capped_frac"] == 1.0 and m["tis_weight_mean"] == 2.0
    with pytest.raises(ValueError, match="tis_cap"):
        _iteration(tok, "fp32", torch.optim.SGD, 1e-3, generator=gen, tis_cap=-1.0)


def test_greedy_temperature_zero_trains(tok):
    "do_sample=True with temperature=0 is greedy everywhere and never divides by zero."
    m, update, *_ = _iteration(tok, "fp32", torch.optim.AdamW, 1e-3, gen=GEN._replace(temperature=0.0))
    assert math.isfinite(m["loss"]) and m["skipped_nonfinite"] == 0 and _moved(update) > 0


def test_fp16_mixed_trains_on_cpu(tok):
    "fp16 compute with the loss scaler: the step is taken (or counted as an overflow) and the master weights stay fp32."
    m, update, model, sampler = _iteration(tok, "fp16-mixed", torch.optim.AdamW, 1e-5)
    assert {p.dtype for p in model.parameters()} == {torch.float32} and {p.dtype for p in sampler.parameters()} == {torch.float16}
    assert m["skipped_nonfinite"] == 0 and "skipped_overflow" not in m and _moved(update) > 0.9   # the scaled step was taken
    torch.testing.assert_close(sampler.model.norm.weight, model.model.norm.weight.half())   # the copy follows the update


def test_train_records_precision_and_keeps_fp32_master(tok, tmp_path):
    res = train(prompts=PROMPTS, reward_fn=ADDITION_REWARDS, num_steps=1, batch_size=2, num_generations=2, model=tiny_test_model().bfloat16(),
                tokenizer=tok, gen_config=GEN, output_dir=tmp_path, run=RunConfig(progress=False, precision="bf16-mixed"))
    assert {p.dtype for p in res.model.parameters()} == {torch.float32}
    assert json.loads((tmp_path / "config.json").read_text())["precision"] == "bf16-mixed"
    assert "sampler_logprob_diff" in res.metrics
