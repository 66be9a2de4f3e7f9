"""Synthetic tasks made in code (no downloads), each with an exact-match accuracy on its answer.

Every task yields ``(idx, targets)`` of shape (B, T): ``targets`` holds the token the model must
predict at each position, or ``-1`` where nothing is asked. An example counts as correct only if
*every* answer token is the argmax (teacher forcing: when all argmaxes are right, greedy decoding
produces exactly the same answer, so this equals generation accuracy).

Shared vocabulary (32 tokens): digits ``0-9`` are 0..9, ``+`` 10, ``=`` 11, ``?`` 12, ``|`` 13 and
18 letters 14..31.

- ``recall`` (long range): a digit at position 0, letters as filler, then ``?`` and the answer is
  that digit. The distance is the whole sequence, beyond any local window: only the global
  (compressed) stage can carry it.
- ``local`` (short range): random letters; at each of the last ``span`` positions the answer is the
  letter ``lag`` positions back. Pooled block means cannot give an exact token: it needs the local
  stage.
- ``add`` (arithmetic): ``ab+cd=`` then the 3-digit sum, least significant digit first (the order
  in which carries are computed, which small transformers learn far faster).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VOCAB_SIZE = 32
PLUS, EQUALS, QUERY, BAR = 10, 11, 12, 13
LETTERS = torch.arange(14, 32)
TASKS = ("recall", "local", "add")


@dataclass(frozen=True)
class Task:
    name: str
    seq_len: int
    lag: int = 3
    span: int = 8

    @property
    def length(self) -> int:
        """Tokens per example (``add`` has a fixed length, the others use seq_len)."""
        return 9 if self.name == "add" else self.seq_len

    def batch(self, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of examples drawn with ``gen`` (CPU tensors)."""
        return {"recall": self._recall, "local": self._local, "add": self._add}[self.name](batch_size, gen)

    def _recall(self, n: int, gen: torch.Generator):
        T = self.seq_len
        idx = LETTERS[torch.randint(len(LETTERS), (n, T), generator=gen)]
        digit = torch.randint(10, (n,), generator=gen)
        idx[:, 0] = digit
        idx[:, -1] = QUERY
        targets = torch.full((n, T), -1)
        targets[:, -1] = digit
        return idx, targets

    def _local(self, n: int, gen: torch.Generator):
        T = self.seq_len
        idx = LETTERS[torch.randint(len(LETTERS), (n, T), generator=gen)]
        targets = torch.full((n, T), -1)
        targets[:, T - self.span :] = idx[:, T - self.span - self.lag : T - self.lag]
        return idx, targets

    def _add(self, n: int, gen: torch.Generator):
        a = torch.randint(100, (n,), generator=gen)
        b = torch.randint(100, (n,), generator=gen)
        s = a + b
        sum_lsb_first = list(reversed(_digits(s, 3)))
        cols = [*_digits(a, 2), torch.full_like(a, PLUS), *_digits(b, 2), torch.full_like(a, EQUALS)]
        idx = torch.stack(cols + sum_lsb_first[:2], dim=1)  # the model sees the answer shifted by one
        targets = torch.full_like(idx, -1)
        targets[:, 5:8] = torch.stack(sum_lsb_first, dim=1)
        idx = torch.cat([idx, torch.full_like(a[:, None], BAR)], dim=1)  # pad to length 9
        targets = torch.cat([targets, torch.full_like(a[:, None], -1)], dim=1)
        return idx, targets


def _digits(x: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The k decimal digits of x, most significant first."""
    return [(x // 10**i) % 10 for i in reversed(range(k))]


def make_task(name: str, seq_len: int = 64) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (choose {', '.join(TASKS)})")
    if name != "add" and seq_len < 16:
        raise ValueError("recall and local need seq_len >= 16")
    return Task(name, seq_len)


def exact_match(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example bool: every answer position (targets != -1) is predicted exactly."""
    asked = targets != -1
    right = (logits.argmax(-1) == targets) | ~asked
    return right.all(dim=1)
