"""A calculator for the agent that never runs user text as code.

The expression is parsed with :mod:`ast` and only numbers, arithmetic operators and a short list
of math functions and constants are evaluated; names, attributes, calls to anything else and
oversized powers are refused, so a prompt cannot turn the tool into ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable

from langchain_core.tools import BaseTool, StructuredTool, ToolException

CALCULATOR_TOOL = "calculator"
MAX_EXPRESSION_CHARS = 200
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e100

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
# What an arithmetic expression inside a sentence may be made of (used to find one in a question).
_EXPRESSION = re.compile(r"(?:\d[\d_]*\.?\d*|\.\d+|sqrt|log10|log|exp|sin|cos|tan|abs|pi|[-+*/%^(),\s])+")


class CalculationError(ValueError):
    """The expression is not arithmetic this calculator evaluates, or its value is out of range."""


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression (``^`` means power); raises CalculationError otherwise."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise CalculationError(f"{expression!r} is not an arithmetic expression") from exc
    try:
        value = _value(tree.body)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise CalculationError(f"{expression!r} cannot be computed: {exc}") from exc
    if isinstance(value, complex) or not math.isfinite(value) or abs(value) > _MAX_MAGNITUDE:
        raise CalculationError(f"{expression!r} has no finite real value within range")
    return value


def _value(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise CalculationError(f"exponents above {_MAX_EXPONENT} are not computed")
        value = _BINARY[type(node.op)](left, right)
        # Checked at every step, so no intermediate grows into a huge integer that is slow to compute.
        if not isinstance(value, complex) and abs(value) > _MAX_MAGNITUDE:
            raise CalculationError(f"values beyond {_MAX_MAGNITUDE:g} are out of range")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and 0 < len(node.args) <= 4
    ):
        return _FUNCTIONS[node.func.id](*(_value(arg) for arg in node.args))
    raise CalculationError(f"{ast.unparse(node)!r} is not arithmetic this calculator evaluates")


def format_number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def find_expression(text: str) -> str | None:
    """The arithmetic in a question ("what is 12 * (3 + 4)?" -> "12 * (3 + 4)"), or None."""
    candidates = [m.group().strip(" ,") for m in _EXPRESSION.finditer(text)]
    for candidate in sorted(candidates, key=len, reverse=True):
        has_operation = re.search(r"[-+*/%^]|sqrt|log|exp|sin|cos|tan|abs", candidate.lstrip("-+"))
        # "2026-11-24" and "555-1234" are a date and a phone number far more often than subtractions.
        if re.search(r"\d", candidate) and has_operation and not re.search(r"\d-\d", candidate):
            try:
                evaluate(candidate)
            except CalculationError:
                continue
            return candidate
    return None


def make_calculator_tool() -> BaseTool:
    def calculator(expression: str) -> str:
        try:
            return f"{expression} = {format_number(evaluate(expression))}"
        except CalculationError as exc:
            raise ToolException(f"The calculator could not compute this: {exc}.") from exc

    return StructuredTool.from_function(
        func=calculator,
        name=CALCULATOR_TOOL,
        description=(
            "Evaluate an arithmetic expression exactly: + - * / // % and ^ or ** for powers, parentheses, "
            "sqrt, log, log10, exp, sin, cos, tan, abs, round, min, max, pi and e. Use it for any calculation."
        ),
        handle_tool_error=True,
    )
