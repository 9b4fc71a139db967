"Edge cases for the tool section of rlprims.rollouts: parsers, safe calculator, timeouts, executor, summary."
import ast, builtins, inspect, os, time
import pytest
import rlprims.tools as R
from rlprims.tools import (parse_xml_tool_calls, parse_json_tool_calls, parse_tool_calls, safe_calculator, calculator_tool,
                              run_with_timeout, create_tool_executor, default_tool_executor, summarize_tool_calls,
                              format_tool_result)


# ---------------------------------------------------------------- parsers
def test_xml_single_quotes_whitespace_and_multiline():
    c = parse_xml_tool_calls("a <tool   name='calculator'  >\n  (1 +\n 2)\n</tool > b")
    assert c == [{"name": "calculator", "arguments": "(1 +\n 2)", "raw": "<tool   name='calculator'  >\n  (1 +\n 2)\n</tool >"}]


def test_json_parameters_key_nonobject_arguments_and_bad_name():
    assert parse_json_tool_calls('<tool_call>{"name": "f", "parameters": {"x": 1}}</tool_call>')[0]["arguments"] == {"x": 1}
    assert parse_json_tool_calls('<tool_call>{"name": "f"}</tool_call>')[0]["arguments"] == {}
    assert parse_json_tool_calls('<tool_call>{"name": "f", "arguments": "plain text"}</tool_call>')[0]["arguments"] == "plain text"
    for body in ['{"name": "f", "arguments": [1, 2]}', '{"name": 3}', '"calculator"', '', '{"name": "f",}']:
        c = parse_json_tool_calls(f"<tool_call>{body}</tool_call>")[0]
        assert c["name"] is None and "error" in c and c["arguments"] == body


def test_json_unclosed_at_end_and_mixed_order():
    t = ('<tool name="b">1</tool><tool_call>{"name": "a", "arguments": {}}</tool_call>'
         '<tool name="c">2</tool><tool_call>{"name": "d", "arguments": {"e": 1}}')
    assert [c["name"] for c in parse_tool_calls(t)] == ["b", "a", "c", "d"]
    assert [c["name"] for c in parse_xml_tool_calls(t)] == ["b", "c"]
    assert [c["name"] for c in parse_json_tool_calls(t)] == ["a", "d"]
    assert "".join(c["raw"] for c in parse_tool_calls(t)) == t          # raw spans tile the text here


def test_parsers_are_linear_on_adversarial_text():
    for s in ['<tool name="' * 20000, '<tool name="a"' * 20000, '<tool_call>' * 50000, "<tool " * 30000,
              ('<tool_call>' + '{"a":' * 5000) * 10, '<tool_call>' + '[' * 100_000 + '</tool_call>']:
        t0 = time.perf_counter()
        parse_tool_calls(s)
        assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("f", [parse_xml_tool_calls, parse_json_tool_calls, parse_tool_calls])
def test_parsers_reject_non_str(f):
    with pytest.raises(TypeError, match="text must be a str"): f(b"<tool_call>")


# ---------------------------------------------------------------- calculator
@pytest.mark.parametrize("expr,want", [
    ("1+2*3-4", 3), ("(1+2)*(3-4)", -3), ("2**10", 1024), ("-3**2", -9), ("(-3)**2", 9), ("--3", 3), ("+-+3", -3),
    ("17//5", 3), ("17%5", 2), ("-17//5", -4), ("7.5//2", 3.0), ("5.5%2", 1.5), ("1/8", 0.125), ("2**-1", 0.5),
    ("1_000 + 1", 1001), ("0x10 + 1", 17), ("1e3*2", 2000.0), ("2^3^2", 512), ("6 × 7", 42), ("9 ÷ 4", 2.25),
    ("3 − 5", -2), ("10 % 3 =", 1), ("((((1))))", 1), ("0**0", 1), ("-10**100", -10**100), ("0.5**100", 0.5**100),
])
def test_calculator_values(expr, want):
    got = safe_calculator(expr)
    assert got == want and type(got) is type(want)


HOSTILE = [
    "__import__('os').system('touch /tmp/rlprims_pwned')", "().__class__.__bases__", "().__class__.__bases__[0].__subclasses__()",
    "x", "__builtins__", "abs(-1)", "print(1)", "open('/etc/passwd')", "getattr(1, 'real')", "(1).real", "[1][0]",
    "9**9**9", "10**1000000", "2**-1000", "(10**50)**3", "10**60 * 10**60", "1e-300 ** -1", "10**99 * 10.0**99",
    "1e308 * 10", "'a'*10**9", "b'a'*10", "[1]*10**9", "(1,)*10**9", "{1: 2}", "{1}", "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 100 + "1" + ")" * 100, "-" * 120 + "1", "1" * 201, "1" * 150, "lambda: 1", "(lambda: 1)()",
    "[x for x in (1, 2)]", "(x for x in (1,))", "{x for x in (1,)}", "f'{1}'", "1 if 1 else 2", "1 < 2", "1 == 1",
    "not 1", "1 and 0", "1 or 0", "1 | 2", "1 & 2", "1 ^^ 2", "1 << 2", "1 >> 2", "~0", "True", "None", "...", "1j",
    "(x := 1)", "await x", "yield 1", "import os", "exec('1')", "eval('1')", "compile('1','','eval')", "float('inf')",
    "1e309", "1e309 - 1e309", "1 / 0", "1 // 0", "1 % 0", "1.0 % 0.0", "0 ** -1", "(-1) ** 0.5", "1 @ 2", "a.b.c",
    "2 +", "", "   ", "=", "1;2", "1\n2", "1\x00", "\u0661 + 1" * 40,
]


@pytest.mark.parametrize("expr", HOSTILE)
def test_calculator_refuses(expr):
    with pytest.raises(ValueError, match="^calculator: "):
        safe_calculator(expr)


def test_calculator_executes_nothing(monkeypatch, tmp_path):
    "eval/exec are never called, and compile (inside ast.parse) only ever builds a syntax tree."
    def forbidden(*a, **k): raise AssertionError("eval/exec called")
    real_compile = builtins.compile
    def ast_only_compile(src, fn, mode, flags=0, *a, **k):
        assert flags & ast.PyCF_ONLY_AST, "compile called to make code"
        return real_compile(src, fn, mode, flags, *a, **k)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    marker = tmp_path / "pwned"
    for expr in [f"__import__('os').system('touch {marker}')", "2+3", "9**9**9", "(lambda: 1)()"]:
        try: safe_calculator(expr)
        except ValueError: pass
    assert safe_calculator("2+3") == 5 and not marker.exists()
    assert parse_tool_calls('<tool_call>{"name": "calculator", "arguments": {"expression": "1"}}</tool_call>')[0]["name"] == "calculator"


def test_no_eval_in_tool_source():
    for f in [R._calc_node, R._calc_value, safe_calculator, calculator_tool, R._json_call, R._call_from_match,
              parse_tool_calls, create_tool_executor, run_with_timeout, R._timeout_child]:
        src = inspect.getsource(f)
        for bad in ("eval(", "exec(", "compile("): assert bad not in src, (f.__name__, bad)


def test_calculator_bounds_are_parameters():
    assert safe_calculator("1+1", max_len=3) == 2
    with pytest.raises(ValueError, match="longer than 3"): safe_calculator("1+1+1", max_len=3)
    with pytest.raises(ValueError, match="nesting deeper than 2"): safe_calculator("1+1+1", max_depth=2)
    with pytest.raises(ValueError, match="values larger than"): safe_calculator("1001", max_abs=1000)


def test_calculator_tool_arguments():
    assert calculator_tool(" 2 + 2 ") == "4"
    assert calculator_tool({"expression": "1/3"}) == "0.333333333333"
    assert calculator_tool({"x": "2*3", "y": "ignored"}) == "6"
    assert calculator_tool({"expression": 7}) == "7"
    assert calculator_tool("10**100") == str(10**100)
    with pytest.raises(TypeError): calculator_tool(None)
    with pytest.raises(TypeError): calculator_tool({"expression": True})
    with pytest.raises(ValueError, match="not allowed"): calculator_tool({"expression": "__import__('os')"})


# ---------------------------------------------------------------- run_with_timeout
def _raise_value_error(): raise ValueError("bad input")
def _return_lambda(): return lambda: 1
def _hard_exit(): os._exit(3)
def _sleep_then(x, delay=0.0): time.sleep(delay); return x


def test_run_with_timeout_results_and_errors():
    assert run_with_timeout(_sleep_then, [1, 2], delay=0.01) == [1, 2]
    with pytest.raises(ValueError, match="bad input"): run_with_timeout(_raise_value_error)
    with pytest.raises(RuntimeError, match="could not send the result"): run_with_timeout(_return_lambda)
    with pytest.raises(RuntimeError, match=r"exited \(code 3\)"): run_with_timeout(_hard_exit)
    with pytest.raises(TypeError, match="callable"): run_with_timeout(42)
    with pytest.raises(ValueError, match="positive"): run_with_timeout(_sleep_then, 1, timeout=-1)


def test_run_with_timeout_kills_sleeping_and_spinning_children():
    for fn in (lambda: time.sleep(30), lambda: any(iter(int, 1))):   # sleep, and an endless CPU-bound loop
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError): run_with_timeout(fn, timeout=0.3)
        assert time.perf_counter() - t0 < 2


def test_run_with_timeout_spawn():
    assert run_with_timeout(safe_calculator, "6*7", timeout=60, start_method="spawn") == 42
    with pytest.raises(TypeError, match="can't be pickled"): run_with_timeout(lambda: 1, start_method="spawn")


def test_run_with_timeout_thread_mode():
    assert run_with_timeout(_sleep_then, 5, use_process=False) == 5
    with pytest.raises(ValueError, match="bad input"): run_with_timeout(_raise_value_error, use_process=False)
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match="thread left running"): run_with_timeout(_sleep_then, 1, delay=1, timeout=0.1, use_process=False)
    assert time.perf_counter() - t0 < 0.9


# ---------------------------------------------------------------- executor
def _spin(args):
    while True: pass
def _big(args): return "x" * 10_000
def _number(args): return 3.5
def _fail(args): raise RuntimeError("tool broke")


@pytest.mark.parametrize("use_process", [True, False])
def test_executor_never_raises(use_process):
    ex = create_tool_executor({"calculator": calculator_tool, "big": _big, "number": _number, "fail": _fail},
                            timeout=1.0, use_process=use_process, max_result_chars=100)
    calls = [None, 42, [], {}, {"name": None}, {"name": ["calculator"]}, {"name": "calculator"},
             {"name": "calculator", "arguments": None}, {"name": "calculator", "arguments": "1/0"},
             {"name": "fail", "arguments": {}}, {"name": "nope", "arguments": {}}, {"name": "number"}, {"name": "big"},
             {"name": "calculator", "arguments": "2*21", "error": "parser said no"}]
    outs = [ex(c) for c in calls]
    for o in outs:
        assert set(o) >= {"name", "arguments", "result", "error", "latency"}
        assert (o["result"] is None) != (o["error"] is None), o
        assert isinstance(o["latency"], float) and o["latency"] >= 0
    errs = [o["error"] for o in outs]
    assert errs[0] == "malformed tool call: expected a dict, got NoneType"
    assert errs[3].startswith("unknown tool None; known: big, calculator, fail, number")
    assert errs[8] == "ValueError: calculator: division by zero is not allowed"
    assert errs[9] == "RuntimeError: tool broke"
    assert errs[10].startswith("unknown tool 'nope'")
    assert outs[11]["result"] == "3.5"
    assert outs[12]["result"].startswith("x" * 100) and "9900 more characters cut" in outs[12]["result"]
    assert errs[13] == "malformed tool call: parser said no"


def test_executor_times_out_a_spinning_tool():
    ex = create_tool_executor({"spin": _spin}, timeout=0.5)
    t0 = time.perf_counter()
    out = ex({"name": "spin", "arguments": ""})
    assert time.perf_counter() - t0 < 3
    assert out["error"] == "timed out after 0.5 s" and out["result"] is None and out["latency"] >= 0.5


def test_executor_validates_its_config():
    with pytest.raises(TypeError): create_tool_executor({"calculator": "not callable"})
    with pytest.raises(TypeError): create_tool_executor([calculator_tool])
    with pytest.raises(ValueError): create_tool_executor({}, timeout=0)
    assert create_tool_executor({})({"name": "x"})["error"] == "unknown tool 'x'; known: (none)"


def test_default_executor_end_to_end():
    text = '<tool name="calculator">15 * 23 + 17</tool><tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"2^10\\"}"}</tool_call>'
    outs = [default_tool_executor(c) for c in parse_tool_calls(text)]
    assert [format_tool_result(o) for o in outs] == ["Result: 362", "Result: 1024"]
    assert outs[0]["raw"] == '<tool name="calculator">15 * 23 + 17</tool>'


# ---------------------------------------------------------------- summary / formatting
def test_summary_and_format():
    calls = ({"name": "a", "error": None, "latency": 0.5}, {"name": "a", "error": "boom", "latency": None},
             {"name": "b", "result": "1"}, {"name": None, "error": "bad json"})
    s = summarize_tool_calls(calls)
    assert s["num_tool_calls"] == 4 and s["num_tool_errors"] == 2
    assert s["per_tool"] == {"a": {"calls": 2, "errors": 1, "latency_total": 0.5}, "b": {"calls": 1, "errors": 0, "latency_total": 0.0},
                             "<malformed>": {"calls": 1, "errors": 1, "latency_total": 0.0}}
    assert format_tool_result({"result": "", "error": None}) == "Result: "
    assert format_tool_result({"result": "5", "error": "x"}) == "Error: x"
