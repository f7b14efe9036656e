"""How many children per second the search's driver makes: mutation, analysis, fingerprint.

    python benchmarks/children_rate.py [--children 3000] [--repeats 5]

Each row makes the same ``--children`` children of the AdamW warm start (``adamw_paper``;
``search.mutate.Mutator``, ``random.Random(0)``, each child a mutation of the warm start, as
at the start of a search) on one torch thread, and fingerprints each valid child with:
nothing (mutate + analyze alone), the fingerprint before issue 7 (``old_fingerprint`` below,
kept verbatim as the anchor: five steps from zero state, weights hashed to 7 digits), and
``search.fingerprint.fingerprint``. The last row is the new fingerprint on children of a
parent with a live group reduction (the warm start with ``clip_by_global_norm``), which
steps its probes a row at a time: the slow path. The compile cache is cleared before each
run: a search compiles every new child once.

Rows run interleaved, ``--repeats`` times each, so load from other processes falls on all of
them; printed per row: the best and the median children/s, the fingerprints that are
``None``, and the distinct fingerprints among the distinct hashes (what the cache can merge).
Target (issue 7): >= 300 children/s with the new fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import programs  # noqa: E402
from search.fingerprint import fingerprint  # noqa: E402
from search.mutate import Mutator  # noqa: E402
from symbolic_opt import compiler, parse, print_program  # noqa: E402
from symbolic_opt.ir import Program  # noqa: E402

OLD_SHAPES = ((4, 3), (5,))
OLD_LRS = (1.0, 0.7, 0.3, 0.9, 0.5, 0.1, 0.8, 0.2)


def old_fingerprint(program: Program, steps: int = 5) -> str | None:
    """The fingerprint as it was before issue 7 (search/fingerprint.py at c61298b)."""
    if steps <= 0:
        return None
    gen = torch.Generator().manual_seed(1234)
    try:
        compiled = compiler.compile_program(program, "eager")
        params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in OLD_SHAPES]
        states = compiled.init_state(params)
        trajectory = []
        with torch.no_grad():
            for step in range(steps):
                grads = [_old_gradient(s, gen) for s in OLD_SHAPES]
                scalars = {"lr": OLD_LRS[step % len(OLD_LRS)]}
                if "step" in compiled.scalars:
                    scalars["step"] = step + 1
                compiled(params, grads, states, **scalars)
                trajectory.append(torch.cat([p.reshape(-1) for p in params]).numpy().copy())
    except Exception:  # noqa: BLE001
        return None
    values = np.concatenate(trajectory)
    if not np.all(np.isfinite(values)):
        return None
    text = ",".join(f"{v + 0.0:.7g}" for v in values)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _old_gradient(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    magnitude = 10.0 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * 5 - 4)
    return torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude


def with_reduction(parent: Program) -> Program:
    """``parent`` with its gradient clipped by global norm first: a live group reduction."""
    text = print_program(parent)
    head, body = text.split("\n", 1)
    return parse(f"{head}\n    g = clip_by_global_norm(g, 1.0)\n{body}")


def run(parent: Program, n: int, fp: Callable[[Program], str | None] | None) -> tuple[float, dict]:
    """Children/s making ``n`` children of ``parent`` (fingerprinted with ``fp``), and counts."""
    mutator, rng = Mutator(), random.Random(0)
    compiler._compile.cache_clear()  # a search compiles each new child once: time that
    hashes, prints, nones = set(), set(), 0
    start = time.perf_counter()
    for _ in range(n):
        child = mutator.child(parent, rng)
        if child is not None and fp is not None:
            f = fp(child.program)
            hashes.add(child.hash)
            nones += f is None
            prints.add(f)
    rate = n / (time.perf_counter() - start)
    return rate, {"none": nones, "hashes": len(hashes), "fingerprints": len(prints - {None})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warm = programs.load("adamw_paper")
    rows = {
        "mutate + analyze": (warm, None),
        "+ old fingerprint (anchor)": (warm, old_fingerprint),
        "+ new fingerprint": (warm, fingerprint),
        "+ new, parent with a reduction": (with_reduction(warm), fingerprint),
    }
    fingerprint(warm), old_fingerprint(warm)  # fixed inputs drawn once per process, as in a search
    rates: dict[str, list[float]] = {name: [] for name in rows}
    counts: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, (parent, fp) in rows.items():
            rate, counts[name] = run(parent, args.children, fp)
            rates[name].append(rate)
    print(f"{args.children} children of adamw_paper, 1 torch thread, {args.repeats} runs per row (interleaved)\n")
    print(f"| {'pipeline':<32} | best ch/s | median ch/s | None | distinct fingerprints / hashes |")
    print(f"|{'-' * 34}|-----------|-------------|------|--------------------------------|")
    for name, rs in rates.items():
        c = counts[name]
        merge = f"{c['fingerprints']} / {c['hashes']}" if rows[name][1] else "-"
        none = str(c["none"]) if rows[name][1] else "-"
        print(f"| {name:<32} | {max(rs):9.0f} | {statistics.median(rs):11.0f} | {none:>4} | {merge:>30} |")


if __name__ == "__main__":
    main()
