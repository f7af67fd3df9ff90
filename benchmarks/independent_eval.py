"""Score arithmetic checkpoints per slice with plain transformers and nothing from `grpo`.

The second opinion the default run's figures need (issue 12): its own expression generator (operands
0-9 joined by + - *, no parentheses, a seed of its own), greedy decoding through `generate`, the
answer read as the integer after the last "=" of the completion. Expressions are not filtered by the
project's held-out hash, so some were training prompts; every checkpoint is scored on the same ones.

    python benchmarks/independent_eval.py src/grpo/models/assets/arith-warmstart runs/RUN/final
"""

from __future__ import annotations

import argparse
import random
import re

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def value(tokens: list[str], precedence: bool) -> int:
    """The expression's value, with * first (precedence) or strictly left to right."""
    if precedence:  # products first: the value is the sum of the signed products
        terms = [int(tokens[0])]
        for op, operand in zip(tokens[1::2], tokens[2::2]):
            if op == "*":
                terms[-1] *= int(operand)
            else:
                terms.append(int(operand) if op == "+" else -int(operand))
        return sum(terms)
    total = int(tokens[0])
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        total = total + int(operand) if op == "+" else total - int(operand) if op == "-" else total * int(operand)
    return total


def expressions(rng: random.Random, ops: int, kind: str | None, count: int) -> list[tuple[str, int]]:
    """Up to `count` distinct expressions of `ops` operators; kind: "precedence", "left_to_right" or None."""
    found: dict[str, int] = {}
    for _ in range(200 * count):
        tokens = [str(rng.randint(0, 9))]
        for _ in range(ops):
            tokens += [rng.choice("+-*"), str(rng.randint(0, 9))]
        right, naive = value(tokens, True), value(tokens, False)
        if kind is None or (kind == "precedence") == (right != naive):
            found["".join(tokens)] = right
        if len(found) == count:
            break
    return list(found.items())


@torch.no_grad()
def accuracy(path: str, items: list[tuple[str, int]], batch: int = 256) -> float:
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    right = 0
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        inputs = tokenizer([text + "=" for text, _ in chunk], return_tensors="pt", padding=True)
        out = model.generate(**inputs, do_sample=False, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id)
        completions = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        for completion, (_, answer) in zip(completions, chunk):
            found = re.search(r"=\s*(-?\d+)\s*$", "=" + completion.strip())
            right += bool(found) and int(found.group(1)) == answer
    return right / len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--per-slice", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261205)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    by_ops = {n: expressions(rng, n, None, args.per_slice) for n in (1, 2, 3)}
    half = args.per_slice // 2
    slices = {
        "precedence (2-3 ops)": [e for n in (2, 3) for e in expressions(rng, n, "precedence", half)],
        "left_to_right (2-3 ops)": [e for n in (2, 3) for e in expressions(rng, n, "left_to_right", half)],
        **{f"ops{n}": items for n, items in by_ops.items()},
    }
    print("slice".ljust(26) + "".join(f"{m[-28:]:>30}" for m in args.models))
    scores = {m: {name: accuracy(m, items) for name, items in slices.items()} for m in args.models}
    for name, items in slices.items():
        print(f"{name} (n={len(items)})".ljust(26) + "".join(f"{scores[m][name]:>30.3f}" for m in args.models))
    mean = {m: sum(scores[m][f"ops{n}"] for n in (1, 2, 3)) / 3 for m in args.models}
    print("all (mean of ops1-3)".ljust(26) + "".join(f"{mean[m]:>30.3f}" for m in args.models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
