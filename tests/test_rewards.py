"Edge cases of rlprims.rewards (the notebook 02_rewards holds the main examples)."
import functools, warnings
import numpy as np
import pytest
import torch
from rlprims.core import Generation, Rollout, Conversation, Message
from rlprims.rewards import *
from rlprims.rewards import _to_reward


def mk(text, prompt="q", **metadata):
    n = max(len(text.split()), 1)
    return Rollout(prompt, Generation(text, torch.arange(n), None, torch.ones(n)), metadata=metadata)


def test_empty_batch():
    res = compute_rewards([], [format_reward("x"), length_penalty_reward()])
    assert res.rewards.shape == (0,) and res.rewards.dtype == torch.float32
    assert {k: v.shape for k, v in res.components.items()} == {"format": (0,), "length_penalty": (0,)}
    assert res.num_errors == 0


def test_single_fn_and_dict_weights():
    rs = [mk("a b"), mk("a")]
    res = compute_rewards(rs, length_penalty_reward(2, 5))
    assert torch.equal(res.rewards, torch.tensor([0.0, -0.5]))
    res = compute_rewards(rs, {"len": length_penalty_reward(2, 5), "fmt": format_reward("b")}, weights={"fmt": 3, "len": 2})
    assert torch.equal(res.rewards, torch.tensor([3.0, -1.0]))
    with pytest.raises(ValueError, match=r"unknown \['typo'\]"):
        compute_rewards(rs, {"len": length_penalty_reward()}, weights={"len": 1, "typo": 2})


def test_names_of_partials_and_callables():
    class Scorer:
        def __call__(self, r): return 1.0
    def base(r, k): return float(k)
    res = compute_rewards([mk("x")], [Scorer(), functools.partial(base, k=2), Scorer()])
    assert list(res.components) == ["Scorer", "partial", "Scorer_2"]
    assert res.rewards.item() == 4.0


def test_argument_errors():
    rs = [mk("x")]
    with pytest.raises(ValueError, match="on_error='ignore'"):
        compute_rewards(rs, format_reward("x"), on_error="ignore")
    with pytest.raises(ValueError, match="either weights or aggregator"):
        compute_rewards(rs, [format_reward("x")], weights=[1.0], aggregator=mean_aggregator)
    with pytest.raises(ValueError, match="fallback=nan"):
        compute_rewards(rs, format_reward("x"), on_error="fallback", fallback=float("nan"))
    with pytest.raises(TypeError, match="not callable"):
        compute_rewards(rs, {"a": 3})


def test_batched_errors_and_fallback():
    def sandbox(rollouts): raise RuntimeError("sandbox down")
    sandbox.batched = True
    rs = [mk("a"), mk("b"), mk("c")]
    with pytest.raises(ValueError, match="'sandbox' raised RuntimeError on a batch of 3") as e:
        compute_rewards(rs, sandbox)
    assert isinstance(e.value.__cause__, RuntimeError)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = compute_rewards(rs, [sandbox, format_reward("a")], on_error="fallback", fallback=-2.0)
    assert res.num_errors == 3 and len(w) == 1
    assert torch.equal(res.components["sandbox"], torch.full((3,), -2.0))
    assert torch.equal(res.rewards, torch.tensor([-1.0, -2.0, -2.0]))

    def partly_bad(rollouts): return [1.0, None, "2"]
    partly_bad.batched = True
    with pytest.raises(ValueError, match="'partly_bad' on rollout 1 returned None"):
        compute_rewards(rs, partly_bad)
    with pytest.warns(UserWarning, match="2 reward value"):
        res = compute_rewards(rs, partly_bad, on_error="fallback")
    assert res.num_errors == 2 and torch.equal(res.rewards, torch.tensor([1.0, 0.0, 0.0]))

    def scalar_out(rollouts): return 1.0
    scalar_out.batched = True
    with pytest.raises(ValueError, match="returned a float for 3 rollouts"):
        compute_rewards(rs, scalar_out, on_error="fallback")


def test_batched_may_return_tensor():
    def t(rollouts): return torch.tensor([0.5] * len(rollouts))
    t.batched = True
    assert torch.equal(compute_rewards([mk("a"), mk("b")], t).rewards, torch.tensor([0.5, 0.5]))


def test_aggregator_errors_name_it():
    with pytest.raises(ValueError, match="aggregator returned nan"):
        compute_rewards([mk("a")], [format_reward("a")], aggregator=lambda v: float("nan"))


def test_to_reward_numpy_bool_and_int():
    assert _to_reward(np.bool_(True), "f") == 1.0
    assert _to_reward(np.int64(3), "f") == 3.0


@pytest.mark.parametrize("text,expected", [
    (r"\boxed{\frac{1}{2}} hmm \boxed{{3}}", "{3}"),
    ("#### 1,000\n", "1,000"),
    ("####\nthe answer is 7", "7"),                     # empty #### line: fall back to the last number
    ("x = -3.5e", "-3.5"),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize("s,expected", [
    ("{3}", "{3}"), ("1,000", "1000"), ("2.000", "2"), ("-1/2", "-0.5"), (r"\$5", "5"), ("0.10", "0.1"),
    ("1e3", "1e3"), (12, "12"), (2.5, "2.5"), ("1,23", "1,23"),
])
def test_normalize_number(s, expected):
    assert normalize_number(s) == expected


def test_math_answer_reward_variants():
    ma = math_answer_reward()
    assert ma(mk("So it's -7.", answer=-7)) == 1.0
    assert ma(mk(r"\boxed{0.5}", answer=r"\boxed{\frac{1}{2}}")) == 1.0
    assert ma(mk("The total is 1,000 dollars.", answer="Work...\n#### 1000")) == 1.0
    assert ma(mk("nothing", answer="3")) == 0.0
    with pytest.raises(ValueError, match="no 'answer' field"):
        compute_rewards([mk("3")], ma)


def test_exact_match_custom_truth_and_none_parse():
    em = exact_match_reward(ground_truth_fn=lambda r: r.prompt.upper(), parse_fn=lambda t: None if not t else t)
    assert em(mk("ABC", prompt="abc")) == 1.0
    assert em(mk("", prompt="abc")) == 0.0


def test_tool_usage_min_zero_without_conversation():
    assert tool_usage_reward(min_tools=0)(mk("x")) == 1.0
    conv = Conversation((Message("assistant", "", tool_calls=({"name": "a"},)),))
    assert tool_usage_reward(1)(mk("x")._replace(conversation=conv)) == 1.0


def test_trl_adapter_missing_columns_and_precedence():
    seen = {}
    class RM:
        def __call__(self, prompts, completions, completion_ids, **kw):
            seen.update(kw, prompts=prompts, completion_ids=completion_ids)
            return [float(len(c)) for c in completions]
    fn = trl_reward_adapter(RM(), lang="en")
    assert fn.__name__ == "RM" and fn.batched
    rs = [mk("ab", prompt="p1", solution="x", lang="fr"), mk("abc", prompt="p2")]
    res = compute_rewards(rs, fn)
    assert torch.equal(res.rewards, torch.tensor([2.0, 3.0]))
    assert seen["solution"] == ["x", None] and seen["lang"] == "en" and seen["prompts"] == ["p1", "p2"]
    assert seen["completion_ids"] == [[0], [0]]
