"""A computed sensor's formula (issue 12): an arithmetic expression over other sensors of its site
and named constants, e.g. freeboard = crest - pond level.

The registry gives it as

    compute:
      expr: crest - pond            # + - * / **, unary -, abs() min() max() sqrt(), numbers
      inputs: {pond: PL-01}         # name in the expression -> a sensor id of the same site
      constants: {crest: 86.5}      # name -> a number (a design value)

or over a rolling window of one input's series (sensors/windows.py): `sum_over(rain, 3600)` (the
sum of its readings over the last hour), `mean_over(x, 28800)` (time-weighted mean over 8 h),
`rate_over(x, 86400)` (least-squares slope over a day, per day). The window is a number of
seconds written in the expression, so every sensor of one formula shape has the same windows.

Names keep sensor ids (which may hold `-` and `.`) out of the expression. The expression is parsed
with Python's `ast` and only the nodes above are admitted: no attribute, subscript, call of
anything else or name outside inputs and constants, so a registry file cannot run code.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,31}$")
MAX_EXPR_CHARS = 500
FUNCTIONS: Mapping[str, Callable[..., np.ndarray]] = {
    "abs": np.abs,
    "min": np.minimum,
    "max": np.maximum,
    "sqrt": np.sqrt,
}
_ARITY = {"abs": (1, 1), "min": (2, 8), "max": (2, 8), "sqrt": (1, 1)}
#: window functions: name -> the kind of sensors/windows.py; their first argument is an input's
#: name, their second the window in seconds, a number literal within WINDOW_S
WINDOW_FUNCTIONS: Mapping[str, str] = {"sum_over": "sum", "mean_over": "mean", "rate_over": "rate"}
WINDOW_S = (60.0, 31 * 86_400.0)
_OPERATORS: Mapping[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}


class FormulaError(ValueError):
    """A formula the registry must refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed, checked formula: `inputs` and `constants` in name order."""

    expr: str
    inputs: tuple[tuple[str, str], ...]  # (name, sensor id)
    constants: tuple[tuple[str, float], ...]  # (name, value)

    @property
    def input_ids(self) -> tuple[str, ...]:
        return tuple(sensor for _name, sensor in self.inputs)

    @property
    def windows(self) -> tuple[Window, ...]:
        """The window terms of the expression, each once, in the order they appear."""
        found: dict[str, Window] = {}
        nodes = ast.walk(ast.parse(self.expr, mode="eval"))
        for node in sorted(nodes, key=lambda n: getattr(n, "col_offset", -1)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                kind = WINDOW_FUNCTIONS.get(node.func.id)
                if kind is not None:
                    key = ast.unparse(node)
                    name, seconds = node.args
                    found.setdefault(key, Window(key, kind, name.id, float(seconds.value)))  # type: ignore[attr-defined]
        return tuple(found.values())

    def document(self) -> dict[str, Any]:
        """The registry mapping this formula was read from (docs/contracts.md §2)."""
        doc: dict[str, Any] = {"expr": self.expr, "inputs": dict(self.inputs)}
        if self.constants:
            doc["constants"] = dict(self.constants)
        return doc


@dataclass(frozen=True, slots=True)
class Window:
    """One window term of a formula, e.g. `sum_over(rain, 3600)` (its text is its `key`)."""

    key: str
    kind: str  # sensors/windows.py: sum, mean, rate
    input: str  # the input's name in the expression
    window_s: float


def parse_formula(raw: Any) -> Formula:
    """The registry's `compute` mapping as a Formula; raise FormulaError naming the problem."""
    if not isinstance(raw, Mapping):
        raise FormulaError("compute must be a mapping with expr, inputs and optional constants")
    unknown = set(raw) - {"expr", "inputs", "constants"}
    if unknown:
        raise FormulaError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))} (expr, inputs, constants)")
    expr = raw.get("expr")
    if not isinstance(expr, str) or not expr.strip() or len(expr) > MAX_EXPR_CHARS:
        raise FormulaError(f"expr must be a non-empty expression of at most {MAX_EXPR_CHARS} characters")
    inputs = _names(raw.get("inputs"), "inputs", lambda v: isinstance(v, str) and bool(v))
    if not inputs:
        raise FormulaError("inputs must name at least one sensor of the site")
    constants = _names(raw.get("constants") or {}, "constants", _is_number)
    both = set(inputs) & set(constants)
    if both:
        raise FormulaError(f"{', '.join(sorted(both))} is both an input and a constant")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise FormulaError(f"expr is not an expression: {e.msg}") from None
    used = _check(tree.body, set(inputs) | set(constants), set(inputs))
    unused = set(inputs) - used
    if unused:
        raise FormulaError(f"input(s) {', '.join(sorted(unused))} not used in expr")
    return Formula(
        expr=expr.strip(),
        inputs=tuple(sorted((k, str(v)) for k, v in inputs.items())),
        constants=tuple(sorted((k, float(v)) for k, v in constants.items())),
    )


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _names(raw: Any, key: str, valid: Callable[[Any], bool]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise FormulaError(f"{key} must be a mapping of name -> value")
    for name, value in raw.items():
        if (
            not isinstance(name, str)
            or not NAME_RE.match(name)
            or name in FUNCTIONS
            or name in WINDOW_FUNCTIONS
        ):
            raise FormulaError(f"{key}: {name!r} is not a name ([a-z_][a-z0-9_]*, not a function's)")
        if not valid(value):
            what = "a sensor id" if key == "inputs" else "a finite number"
            raise FormulaError(f"{key}.{name} must be {what}")
    return dict(raw)


def _check(node: ast.AST, names: set[str], inputs: set[str]) -> set[str]:
    """Refuse anything but the admitted nodes; return the names the expression uses."""
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _check(node.left, names, inputs) | _check(node.right, names, inputs)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _check(node.operand, names, inputs)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in WINDOW_FUNCTIONS:
        return _check_window(node, inputs)
    if isinstance(node, ast.Constant) and _is_number(node.value) and not isinstance(node.value, bool):
        return set()
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise FormulaError(f"{node.id!r} is neither an input nor a constant")
        return {node.id}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        lo, hi = _ARITY[node.func.id]
        if node.keywords or not lo <= len(node.args) <= hi:
            raise FormulaError(f"{node.func.id}() takes {lo}{'' if lo == hi else f' to {hi}'} argument(s)")
        used: set[str] = set()
        for arg in node.args:
            used |= _check(arg, names, inputs)
        return used
    raise FormulaError(
        f"not allowed in expr: {ast.unparse(node)!r} (+ - * / **, abs min max sqrt, sum_over mean_over "
        "rate_over, numbers)"
    )


def _check_window(node: ast.Call, inputs: set[str]) -> set[str]:
    """A window term: an input's name (not a constant, not an expression) and a literal window."""
    fn = node.func.id  # type: ignore[attr-defined]
    if node.keywords or len(node.args) != 2:
        raise FormulaError(f"{fn}() takes 2 arguments: an input's name and a window in seconds")
    name, seconds = node.args
    if not isinstance(name, ast.Name) or name.id not in inputs:
        raise FormulaError(
            f"{fn}(): the first argument must be the name of an input, not {ast.unparse(name)!r}"
        )
    lo, hi = WINDOW_S
    if (
        not (
            isinstance(seconds, ast.Constant)
            and _is_number(seconds.value)
            and not isinstance(seconds.value, bool)
        )
        or not lo <= seconds.value <= hi
    ):
        raise FormulaError(
            f"{fn}(): the window must be a number of seconds from {lo:.0f} to {hi:.0f}, "
            f"not {ast.unparse(seconds)!r}"
        )
    return {name.id}


def evaluate(expr: str, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The expression over arrays (one element per computed sensor of the same shape). Division
    by zero and the like give inf or NaN, which the caller treats as no result. A window term is
    looked up by its text (Window.key): the caller has computed it."""
    tree = ast.parse(expr, mode="eval")
    with np.errstate(all="ignore"):
        return np.asarray(_eval(tree.body, values), dtype=np.float64)


def _eval(node: ast.AST, values: Mapping[str, np.ndarray]) -> np.ndarray | float:
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        return np.negative(operand) if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in WINDOW_FUNCTIONS:
            return values[ast.unparse(node)]  # the window's value, from sensors/windows.py
        args = [_eval(a, values) for a in node.args]
        fn = FUNCTIONS[node.func.id]
        if fn is np.minimum or fn is np.maximum:
            out = args[0]
            for a in args[1:]:
                out = fn(out, a)
            return out
        return fn(args[0])
    raise FormulaError(f"not allowed in expr: {ast.unparse(node)!r}")
