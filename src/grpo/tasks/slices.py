"""Named held-out slices of the arithmetic task: where a run gains, and where it forgets.

One overall accuracy hides what training did. A run that learns operator precedence on the
expressions it trains on can at the same time get worse on expressions of another kind, or of
another length, and the overall number says nothing. So the arithmetic task declares slices of its
held-out set, each a fixed list of distinct expressions, and every evaluation reports each one:

    precedence     ops in [min_ops, max_ops], reading left to right gives a wrong value ("2+2*6")
    left_to_right  ops in [min_ops, max_ops], reading left to right gives the right value ("2*6+2")
    ops1 .. opsK   exactly k operators, both kinds, for k = 1 .. max_ops
    longer         max_ops + 1 operators, both kinds: longer than any training prompt
    all            1 .. max_ops operators, both kinds: the mean of ops1 .. opsK, so every count weighs
                   the same (its examples are theirs, each scored once)

Held out means never a training prompt. A slice that overlaps what the training split can draw
keeps only expressions whose hash puts them in the test bucket, as the task's own held-out set does.
A slice the training split can never draw from (operator counts outside the trained range, or the
left-to-right kind under `precedence_only`) is held out by construction and needs no bucket: that
keeps small slices such as `ops1` (300 expressions exist with single digits) complete instead of a
tenth of it. The rule is per slice, never per expression, so a slice's mix of kinds and lengths is
the generator's, not skewed by the bucket.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from grpo.tasks.api import Example, HeldOutSlice

Kind = Literal["precedence", "left_to_right", "any"]
SLICE_SEED = 4321  # one fixed draw order per slice, independent of the run's seed


@dataclass(frozen=True)
class SliceSpec:
    """A named region of expression space: operator counts [min_ops, max_ops] and a kind."""

    name: str
    description: str
    min_ops: int
    max_ops: int
    kind: Kind

    def overlaps_training(self, min_ops: int, max_ops: int, precedence_only: bool) -> bool:
        """Whether a task trained on [min_ops, max_ops] operators could draw an expression of this slice."""
        counts = self.min_ops <= max_ops and min_ops <= self.max_ops
        return counts and not (precedence_only and self.kind == "left_to_right")


def arithmetic_slice_specs(min_ops: int, max_ops: int) -> list[SliceSpec]:
    """The slices of an arithmetic task trained on [min_ops, max_ops] operators (see the module)."""
    span = f"{min_ops}-{max_ops}" if min_ops < max_ops else f"{min_ops}"
    specs = [
        SliceSpec("precedence", f"{span} ops, left-to-right reading is wrong", min_ops, max_ops, "precedence"),
        SliceSpec("left_to_right", f"{span} ops, left-to-right reading is right", min_ops, max_ops,
                  "left_to_right"),
    ]
    specs += [SliceSpec(f"ops{k}", f"{k} op{'s' if k > 1 else ''}, all expressions", k, k, "any")
              for k in range(1, max_ops + 1)]
    longer = max_ops + 1
    specs.append(SliceSpec("longer", f"{longer} ops (longer than training), all expressions", longer, longer, "any"))
    return specs


def mean_slice(name: str, description: str, parts: list[HeldOutSlice]) -> HeldOutSlice:
    """A slice whose accuracy is the unweighted mean of `parts`' accuracies (e.g. every operator count
    weighing the same, though one count has far fewer distinct expressions than another)."""
    examples = tuple(example for part in parts for example in part.examples)
    return HeldOutSlice(name, description, examples, tuple(part.name for part in parts))


def build_slice(
    spec: SliceSpec,
    size: int,
    draw_text: Callable[[random.Random, int], str],
    kind_of: Callable[[str], Kind],
    is_test: Callable[[str], bool] | None,
    answer: Callable[[str], str],
) -> HeldOutSlice:
    """Up to `size` distinct held-out examples of `spec`, the same list every time (fewer only when
    fewer exist: 200 draws per wanted example find every one of a small space such as `ops1`).

    `draw_text(rng, num_ops)` draws an expression; `kind_of` says which kind it is; `is_test`, for a
    slice that overlaps the training split, must hold for every expression kept (None: no bucket).
    """
    rng = random.Random(f"{SLICE_SEED}:{spec.name}")
    seen: set[str] = set()
    examples: list[Example] = []
    for _ in range(200 * size):
        text = draw_text(rng, rng.randint(spec.min_ops, spec.max_ops))
        if text in seen or (spec.kind != "any" and kind_of(text) != spec.kind):
            continue
        if is_test is not None and not is_test(text):
            continue
        seen.add(text)
        examples.append(Example(prompt=f"{text}=", answer=answer(text)))
        if len(examples) == size:
            break
    return HeldOutSlice(spec.name, spec.description, tuple(examples))
