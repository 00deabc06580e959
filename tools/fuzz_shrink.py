"""Delta debugging of a failing recipe down to a small one that still fails.

Why: a fuzzer failure on a six-block graph with 40 channels is hard to read;
the same failure on one block with 4 channels usually names the bug. The
shrinker only needs `fails(recipe) -> bool` (the same failure kind again) and
works on the recipe, never on IR:

1. ddmin over the blocks (Zeller & Hildebrandt's complement removal);
2. each block's options toward the plainest value (no act, no BN after, no
   merge, groups 1, stride 1, k 1, xnor weights, the `where` binarizer, ...);
3. the recipe's own options (batch 1, small input, narrow stem, gap head).

Every candidate goes through graph_recipes.legalize, so dropping a block that
a residual add depended on gives a recipe that still builds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from graph_recipes import legalize

# option -> plainer values to try, in order
BLOCK_SIMPLER: dict[str, list] = {
    "act": ["none"], "bn_after": [False], "merge": ["none"], "pool_after_sign": ["none"], "groups": [1],
    "dilation": [1], "stride": [1], "k": [1], "padding": [0, 1], "weights": ["xnor_mean"],
    "binarizer": ["where"], "bn_before": [False], "cout": [1, 3, 8], "op": ["tanh"], "pool": ["max2"],
}


def _global_candidates(r: dict) -> Iterator[dict]:
    n, cin, h, w = r["input"]
    for inp in ([1, cin, h, w], [n, 1, h, w], [n, cin, max(5, h // 2), w], [n, cin, h, max(5, w // 2)],
                [n, cin, 5, w], [n, cin, h, 5]):
        yield {**r, "input": inp}
    for stem in (4, 8):
        if stem < r["stem"]:
            yield {**r, "stem": stem}
    yield {**r, "head": "gap"}
    yield {**r, "classes": 1}


def _block_candidates(r: dict) -> Iterator[dict]:
    for i, b in enumerate(r["blocks"]):
        for key, values in BLOCK_SIMPLER.items():
            if key not in b:
                continue
            for v in values:
                if v == b[key] or (key == "cout" and v >= b[key]):
                    continue
                blocks = list(r["blocks"])
                blocks[i] = {**b, key: v}
                yield {**r, "blocks": blocks}


def _key(r: dict) -> str:
    return json.dumps(r, sort_keys=True)


class Shrinker:
    """Greedy delta debugging with a budget of `fails` calls."""

    def __init__(self, fails: Callable[[dict], bool], budget: int = 60):
        self.fails, self.budget, self.tries = fails, budget, 0
        self.seen: set[str] = set()

    def _try(self, candidate: dict, current: dict) -> bool:
        candidate = legalize(candidate)
        k = _key(candidate)
        if k == _key(current) or k in self.seen or self.tries >= self.budget:
            return False
        self.seen.add(k)
        self.tries += 1
        return self.fails(candidate)

    def _ddmin_blocks(self, r: dict) -> dict:
        n = 2
        while len(r["blocks"]) >= 1 and self.tries < self.budget:
            blocks = r["blocks"]
            size = max(1, -(-len(blocks) // n))
            chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
            for j in range(len(chunks)):
                rest = [b for c in chunks[:j] + chunks[j + 1 :] for b in c]
                cand = legalize({**r, "blocks": rest})
                if self._try(cand, r):
                    r, n = cand, max(n - 1, 2)
                    break
            else:
                if size == 1:
                    return r
                n = min(2 * n, len(blocks))
        return r

    def shrink(self, recipe: dict) -> dict:
        """The smallest failing recipe found within the budget."""
        r = legalize(recipe)
        changed = True
        while changed and self.tries < self.budget:
            changed = False
            r2 = self._ddmin_blocks(r)
            changed |= r2 != r
            r = r2
            for make in (_block_candidates, _global_candidates):
                progress = True
                while progress and self.tries < self.budget:
                    progress = False
                    for cand in make(r):
                        if self._try(cand, r):
                            r, progress, changed = legalize(cand), True, True
                            break
        return r
