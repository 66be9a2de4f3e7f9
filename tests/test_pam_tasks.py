"""Synthetic tasks: answers are right by construction and exact match counts whole answers."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from envdoctor.smoke.config import TASKS as CLI_TASKS  # noqa: E402
from reference_model import TASKS, exact_match, make_task  # noqa: E402
from reference_model.tasks import EQUALS, PAIRS, PLUS, QUERY, in_eval_split  # noqa: E402

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


@pytest.mark.parametrize("name,seq_len", [("add", 9), ("recall", 16), ("local", 16), ("assoc", 32)])
def test_evaluation_inputs_never_appear_in_training(name: str, seq_len: int) -> None:
    task = make_task(name, seq_len)
    eval_x, _ = task.batch(512, torch.Generator().manual_seed(1), "eval")
    train_x, _ = task.batch(20_000, torch.Generator().manual_seed(2), "train")
    seen = {tuple(row) for row in train_x.tolist()}
    assert not any(tuple(row) in seen for row in eval_x.tolist())
    assert in_eval_split(eval_x).all() and not in_eval_split(train_x).any()
    if name == "add":  # 10,000 problems: without the split most evaluation problems would be trained on
        assert len({tuple(row) for row in eval_x.tolist()}) > 400 and len(seen) > 7500


def test_associative_recall_answers_the_value_of_the_queried_key() -> None:
    idx, targets = make_task("assoc", 40).batch(100, _gen())
    pairs = idx[:, : 2 * PAIRS].view(100, PAIRS, 2)
    assert all(len(set(row)) == PAIRS for row in pairs[:, :, 0].tolist())  # distinct keys
    assert (idx[:, -2] == QUERY).all() and (targets[:, :-1] == -1).all()
    for row, pair in zip(range(100), pairs, strict=True):
        (where,) = (pair[:, 0] == idx[row, -1]).nonzero()[0]
        assert targets[row, -1] == pair[where, 1]
    assert not torch.isin(idx[:, 2 * PAIRS : -2], pairs[:, :, 0]).any()  # filler never looks like a key
