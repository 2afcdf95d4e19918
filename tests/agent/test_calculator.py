"""The calculator evaluates arithmetic and nothing else: user text is never run as code."""

from __future__ import annotations

import pytest
from threadline_agent.graphs.calculator import CalculationError, evaluate, find_expression, make_calculator_tool


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("12 * (3 + 4)", 84),
        ("2^10", 1024),
        ("7 / 2", 3.5),
        ("7 // 2 + 7 % 2", 4),
        ("-3 ** 2", -9),
        ("sqrt(16) + abs(-2)", 6),
        ("round(pi, 3)", 3.142),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("1_000 * 3", 3000),
    ],
)
def test_arithmetic_is_computed(expression: str, value: float) -> None:
    assert evaluate(expression) == pytest.approx(value)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('id')",
        "open('/etc/passwd').read()",
        "(1).__class__.__bases__",
        "[x for x in range(10)]",
        "lambda: 1",
        "x + 1",
        "9 ** 9 ** 9",
        "10 ** 1000",
        "1 / 0",
        "sqrt(-1)",
        "True + 1",
        "'a' * 3",
        "1 +",
        "1" * 201,
    ],
)
def test_anything_else_is_refused(expression: str) -> None:
    with pytest.raises(CalculationError):
        evaluate(expression)


@pytest.mark.parametrize(
    ("question", "expression"),
    [
        ("What is 12 * (3 + 4)?", "12 * (3 + 4)"),
        ("how much is 2^10", "2^10"),
        ("Compute sqrt(2) please", "sqrt(2)"),
        ("What does error 404 mean?", None),
        ("How are runs kept durable in 2026?", None),
        ("What happened on 2026-11-24?", None),
        ("What does ZX-4471 mean?", None),
    ],
)
def test_arithmetic_is_found_in_a_question(question: str, expression: str | None) -> None:
    assert find_expression(question) == expression


def test_the_tool_answers_a_refusal_as_a_result_not_a_crash() -> None:
    tool = make_calculator_tool()
    assert tool.invoke({"expression": "6 * 7"}) == "6 * 7 = 42"
    assert "could not compute" in tool.invoke({"expression": "__import__('os')"})
