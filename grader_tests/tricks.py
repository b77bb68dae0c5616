"""Planted tricks: a wrong answer plus code that changes how the kernel runs or judges later cells.

Each entry of `TRICKS` is (the answer cell for `double`, a cell of the student's own run after it).
Every answer is wrong (`double(2)` is 5, or writes to stderr, which nbgrader scores 0), so an honest
grade gives test_double 0. Without kernel_guard.py each trick makes the toy's test_double pass (but
`eq_anything`, which only bends a test that compares the student's object itself; the toy's tests
compare `float(double(x))`); with it, none does. test_kernel_guard.py runs them in a real kernel
(fast) and through `collabkit grade` (slow).
"""

from __future__ import annotations

WRONG = "def double(x):\n    return x + x + 1"

INPUT_TRANSFORMER = """def _no_asserts(lines):
    return [line.replace("assert ", "pass  # ") for line in lines]
get_ipython().input_transformers_cleanup.append(_no_asserts)"""

AST_TRANSFORMER = """import ast
class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.copy_location(ast.Pass(), node)
get_ipython().ast_transformers.append(_NoAsserts())"""

RUN_CELL_WRAPPER = """_shell = get_ipython()
_run_cell = _shell.run_cell
def _run_cell_quietly(raw_cell, *args, **kwargs):
    _shell._showtraceback = lambda *a, **k: None
    result = _run_cell(raw_cell, *args, **kwargs)
    result.error_in_exec = None
    return result
_shell.run_cell = _run_cell_quietly"""

RUN_CODE_CLASS = """from IPython.core.interactiveshell import InteractiveShell
async def _run_code_forgiving(self, code_obj, result=None, *, async_=False):
    try:
        exec(code_obj, self.user_global_ns, self.user_ns)
    except AssertionError:
        pass
    return False
InteractiveShell.run_code = _run_code_forgiving"""

CUSTOM_EXC_AND_REPLY = """_shell = get_ipython()
_shell.set_custom_exc((AssertionError,), lambda shell, etype, value, tb, tb_offset=None: None)
_send = type(_shell.kernel.session).send
def _send_ok(self, stream, msg_or_type, content=None, *args, **kwargs):
    if msg_or_type == "execute_reply" and isinstance(content, dict) and content.get("status") == "error":
        content = {"status": "ok", "execution_count": content.get("execution_count"), "user_expressions": {}, "payload": []}
    return _send(self, stream, msg_or_type, content, *args, **kwargs)
type(_shell.kernel.session).send = _send_ok"""

EVENTS = """_shell = get_ipython()
def _hide(info):
    _shell._showtraceback = lambda *a, **k: None
def _forgive(result):
    result.error_in_exec = None
_shell.events.register("pre_run_cell", _hide)
_shell.events.register("post_run_cell", _forgive)"""

STDERR_ANSWER = """import sys
def double(x):
    print("debug: doubling", x, file=sys.stderr)
    return 2 * x"""

STDERR_SINK = """import io, sys
sys.stderr = io.StringIO()"""

BUILTINS_ANSWER = """class _Wrong(int):
    pass
def double(x):
    return _Wrong(x + x + 1)"""

BUILTINS_FLOAT = """import builtins
_real_float = float
class _Anything(_real_float):
    def __eq__(self, other):
        return True
    __hash__ = _real_float.__hash__
class _FloatType(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, _real_float)
    def __subclasscheck__(cls, sub):
        return issubclass(sub, _real_float)
    def __call__(cls, x=0.0):
        return _Anything(x) if isinstance(x, _Wrong) else _real_float(x)
class _float(metaclass=_FloatType):
    pass
builtins.float = _float"""

NAMESPACE_BUILTINS = BUILTINS_FLOAT.replace(
    "builtins.float = _float", "__builtins__ = dict(vars(builtins), float=_float)"
)

EQ_ANSWER = """class _Anything(float):
    def __eq__(self, other):
        return True
    __hash__ = float.__hash__
def double(x):
    return _Anything(x + x + 1)"""

# name -> (answer for `double`, the student's extra cell after it)
TRICKS = {
    "input_transformer": (WRONG, INPUT_TRANSFORMER),
    "ast_transformer": (WRONG, AST_TRANSFORMER),
    "run_cell_wrapper": (WRONG, RUN_CELL_WRAPPER),
    "run_code_class": (WRONG, RUN_CODE_CLASS),
    "custom_exc_and_reply": (WRONG, CUSTOM_EXC_AND_REPLY),
    "events": (WRONG, EVENTS),
    "stderr_sink": (STDERR_ANSWER, STDERR_SINK),
    "builtins_float": (BUILTINS_ANSWER, BUILTINS_FLOAT),
    "namespace_builtins": (BUILTINS_ANSWER, NAMESPACE_BUILTINS),
    "eq_anything": (EQ_ANSWER, "pass"),
}
BENDS_UNGUARDED = set(TRICKS) - {"eq_anything"}  # the tricks that win test_double when nothing stops them
