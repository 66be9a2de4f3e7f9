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
- ``assoc`` (associative recall, long range): ``PAIRS`` key->value pairs at the start (keys are
  distinct letters from the first half of the letters, values digits), filler letters from the other
  half, then ``?`` and one of the keys: the answer is its value. It needs to find *which* early
  position holds the key and read the token after it, beyond any local window.

Evaluation is held out: every example belongs to the training or the evaluation split by a hash of
its input tokens (one in ``EVAL_SHARE``), and :meth:`Task.batch` draws only from the split asked
for. ``add`` has only 10,000 problems: without the split most evaluation problems were seen in
training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VOCAB_SIZE = 32
PLUS, EQUALS, QUERY, BAR = 10, 11, 12, 13
LETTERS = torch.arange(14, 32)
KEYS, FILLER = LETTERS[:9], LETTERS[9:]  # assoc: keys never appear as filler
PAIRS = 4
TASKS = ("recall", "local", "add", "assoc")
SPLITS = ("train", "eval")
EVAL_SHARE = 8  # one input in 8 is reserved for evaluation


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

    def batch(
        self, batch_size: int, gen: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of examples of one split drawn with ``gen`` (CPU tensors): draw, keep the split's."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        make = {"recall": self._recall, "local": self._local, "add": self._add, "assoc": self._assoc}[
            self.name
        ]
        xs, ys, have = [], [], 0
        while have < batch_size:
            x, y = make(max(batch_size, 64), gen)
            keep = in_eval_split(x) == (split == "eval")
            xs.append(x[keep])
            ys.append(y[keep])
            have += int(keep.sum())
        return torch.cat(xs)[:batch_size], torch.cat(ys)[:batch_size]

    def _recall(self, n: int, gen: torch.Generator):
        T = self.seq_len
        idx = LETTERS[torch.randint(len(LETTERS), (n, T), generator=gen)]
        digit = torch.randint(10, (n,), generator=gen)
        idx[:, 0] = digit
        idx[:, -1] = QUERY
        targets = torch.full((n, T), -1)
        targets[:, -1] = digit
        return idx, targets

    def _assoc(self, n: int, gen: torch.Generator):
        T = self.seq_len
        idx = FILLER[torch.randint(len(FILLER), (n, T), generator=gen)]
        keys = KEYS[torch.rand(n, len(KEYS), generator=gen).argsort(1)[:, :PAIRS]]  # distinct per row
        values = torch.randint(10, (n, PAIRS), generator=gen)
        idx[:, 0 : 2 * PAIRS : 2], idx[:, 1 : 2 * PAIRS : 2] = keys, values
        pick = torch.randint(PAIRS, (n, 1), generator=gen)
        idx[:, -2] = QUERY
        idx[:, -1] = keys.gather(1, pick)[:, 0]
        targets = torch.full((n, T), -1)
        targets[:, -1] = values.gather(1, pick)[:, 0]
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


def in_eval_split(idx: torch.Tensor) -> torch.Tensor:
    """Per row: does this input belong to the evaluation split? A hash of its tokens, one in EVAL_SHARE."""
    h = torch.zeros(idx.shape[0], dtype=torch.int64)
    for column in idx.t():
        h = (h * 1_000_003 + column) % 2_147_483_647
    mixed = (h * 2_654_435_761) % 2**32  # Knuth's multiplicative hash: spread neighbouring inputs
    return (mixed >> 16) % EVAL_SHARE == 0


def _digits(x: torch.Tensor, k: int) -> list[torch.Tensor]:
    """The k decimal digits of x, most significant first."""
    return [(x // 10**i) % 10 for i in reversed(range(k))]


def make_task(name: str, seq_len: int = 64) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r} (choose {', '.join(TASKS)})")
    if name != "add" and seq_len < 16:
        raise ValueError("recall, local and assoc need seq_len >= 16")
    return Task(name, seq_len)


def exact_match(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example bool: every answer position (targets != -1) is predicted exactly."""
    asked = targets != -1
    right = (logits.argmax(-1) == targets) | ~asked
    return right.all(dim=1)
