"""Synthetic tasks: answers are right by construction and exact match counts whole answers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from envdoctor.smoke.config import TASKS as CLI_TASKS  # noqa: E402
from reference_model import TASKS, exact_match, make_task  # noqa: E402
from reference_model.tasks import EQUALS, PLUS, QUERY  # noqa: E402

pytestmark = pytest.mark.torch


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_addition_answers_are_the_sum_least_significant_digit_first() -> None:
    idx, targets = make_task("add").batch(200, _gen())
    assert idx.shape == targets.shape == (200, 9)
    assert (idx[:, 2] == PLUS).all() and (idx[:, 5] == EQUALS).all()
    a, b = idx[:, 0] * 10 + idx[:, 1], idx[:, 3] * 10 + idx[:, 4]
    ans = targets[:, 5:8]
    assert torch.equal(ans[:, 0] + 10 * ans[:, 1] + 100 * ans[:, 2], a + b)
    assert torch.equal(idx[:, 6:8], ans[:, :2])  # teacher forcing: the input is the answer shifted
    assert (targets[:, :5] == -1).all() and (targets[:, 8] == -1).all()


def test_recall_answer_is_the_first_token() -> None:
    idx, targets = make_task("recall", 48).batch(50, _gen())
    assert (idx[:, -1] == QUERY).all()
    assert torch.equal(targets[:, -1], idx[:, 0]) and (targets[:, :-1] == -1).all()
    assert (idx[:, 1:-1] >= 14).all()  # filler letters never look like the digit to recall


def test_local_answers_are_lagged_copies() -> None:
    task = make_task("local", 32)
    idx, targets = task.batch(20, _gen())
    asked = targets != -1
    assert asked.sum(1).eq(task.span).all()
    assert torch.equal(targets[:, -task.span :], idx[:, -task.span - task.lag : -task.lag])


def test_exact_match_needs_every_answer_token() -> None:
    targets = torch.tensor([[-1, 3, 4], [-1, 3, 4]])
    logits = torch.nn.functional.one_hot(torch.tensor([[0, 3, 4], [0, 3, 5]]), 8).float()
    assert exact_match(logits, targets).tolist() == [True, False]


def test_task_names_agree_with_the_cli_and_bad_names_fail() -> None:
    assert set(TASKS) == set(CLI_TASKS)
    with pytest.raises(ValueError):
        make_task("sort")
    with pytest.raises(ValueError):
        make_task("recall", 8)
