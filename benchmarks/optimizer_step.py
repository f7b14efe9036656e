"""Step time of compiled Lion on each backend against lion-pytorch and torch.optim.AdamW,
against the floor of moving a Lion step's bytes at this machine's copy bandwidth.

    python benchmarks/optimizer_step.py [--suite a,b] [--quick] [--threads 2] [--repeats 15]
    symopt bench [--suite a] [--quick]

Suites (fp32): (a) one tensor of 16M elements, (b) 200 tensors of 80k elements (16M in all).
Rows: ``symbolic_opt.Lion`` with ``backend=`` eager, foreach, fused (``torch.compile``);
``lion_pytorch.Lion`` (its default per-tensor loop) and ``lion_pytorch.foreach.Lion``;
``torch.optim.AdamW`` with ``foreach=True`` and ``fused=True``. Every optimizer steps a real
parameter list with gradients, through ``opt.step()``.

The floor: a Lion step reads w, g, m and writes w, m, 20 bytes per fp32 element; at the copy
bandwidth measured in the same run (``dst.copy_(src)`` counted as reading and writing every
byte once, on two tensors as large together as w, g and m, so in the same cache regime: this
machine's last-level cache may be hundreds of MB) that takes ``20 * N / bandwidth``. A step
can beat it by up to 1.5x: a copy's destination is read into cache before it is written
(write-allocate), a third stream the count leaves out, while a step writes only w and m,
which it reads anyway. So the table also shows a stricter floor, FLOOR': the same bytes at
the bandwidth of ``a.add_(b)``, which reads two tensors and writes back one it read, like a
step (12 bytes per element counted). AdamW moves 28 bytes per element (reads w, g, m, v; writes w, m, v):
its "x floor" is against its own 28-byte floor.

Everything is measured in one process, rows interleaved (each repeat times every row once,
in a shuffled order), so machine noise hits every row alike; each figure is the median over
repeats of the mean step time of a short batch, after warm-up (the fused backend compiles
during warm-up). Bandwidths are the fastest of 20 runs: a floor is what the machine can do. Other processes on the machine add noise: compare the ratios, which come
from the same run, rather than absolute times across runs.

The library table (``--library``, or ``--only-library``): every program of ``programs/``
on the fused, foreach and eager backends, against torch.optim's fused and foreach
implementation of the same algorithm where torch has one (``TORCH_EQUIVALENTS``), and against
the program's own floor (``step_floor.py``: its bytes, one pass, plus a second read of what a
reduction the update needs reads, at the read-modify-write bandwidth of ``a.add_(b)`` measured
among the rows, a row of its own so it sees the same noise; or its costliest one-argument op
alone over the same elements, when that is slower; the "bound" column says which). One program at a time:
its rows, torch's and the floor interleaved, each figure the best of the repeats. Targets
(issue 11): fused within 1.1x torch's fused step where torch has one, else within 1.3x the floor.

Targets (issue 2): fused <= 1.3x the floor on (a) and >= 5x faster than lion-pytorch's
default there; foreach no slower than lion-pytorch's foreach on both suites. Also printed:
optimizer state bytes per parameter element, and the time to parse + analyze + generate
code for a 20-statement program (target < 5 ms), the compile cache bypassed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # step_floor, when loaded by symopt speed

import torch  # noqa: E402

import step_floor  # noqa: E402

LION_BYTES_PER_ELEMENT = 20  # reads w, g, m; writes w, m (fp32)
ADAMW_BYTES_PER_ELEMENT = 28  # reads w, g, m, v; writes w, m, v
SUITES = {
    "a": ("(a) 1 x 16M", [16 * 2**20]),
    "b": ("(b) 200 x 80k", [80_000] * 200),
}
LR, BETAS, LION_WD, ADAMW_WD = 1e-4, (0.9, 0.99), 0.1, 0.01

TWENTY_STATEMENTS = """
def train(w, g, m, v, lr, step, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.01):
    m = interp(g, m, beta1)
    g2 = square(g)
    v = interp(g2, v, beta2)
    b1 = power(beta1, step)
    b1 = 1 - b1
    b2 = power(beta2, step)
    b2 = 1 - b2
    mhat = exact_div(m, b1)
    vhat = exact_div(v, b2)
    denom = sqrt(vhat)
    denom = denom + eps
    update = exact_div(mhat, denom)
    n = global_norm(update)
    scale = clip(n, 1.0)
    scale = exact_div(scale, n)
    update = update * scale
    decay = w * wd
    update = update + decay
    lr = lr * 1.0
    update = update * lr
    return update, m, v
"""


TORCH_EQUIVALENTS: dict[str, tuple[str, dict]] = {
    # library program -> (torch.optim class, its arguments); lr and the programs' defaults otherwise
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {"weight_decay": 0.01}),
    "adam_amsgrad": ("Adam", {"amsgrad": True}),
    "adamw_amsgrad": ("AdamW", {"amsgrad": True, "weight_decay": 0.01}),
    "adagrad": ("Adagrad", {}),
    "adamax": ("Adamax", {}),
    "nadam": ("NAdam", {}),
    "radam": ("RAdam", {}),
    "rmsprop": ("RMSprop", {}),
    "rmsprop_centered": ("RMSprop", {"centered": True}),
    "rmsprop_momentum": ("RMSprop", {"momentum": 0.9}),
    "rmsprop_centered_momentum": ("RMSprop", {"centered": True, "momentum": 0.9}),
    "sgd": ("SGD", {"momentum": 0.9}),
}
PROGRAM_HYPERPARAMETERS: dict[str, dict] = {"sgd": {"momentum": 0.9}}
"""Hyperparameters the library table sets (SGD with momentum, as torch's row)."""
FUSED_TARGET, FLOOR_TARGET = 1.1, 1.3


def _torch_has_fused(cls) -> bool:
    import inspect

    return "fused" in inspect.signature(cls).parameters


def library_rows(name: str) -> list[Row]:
    """The rows of one library program: ours on each backend, torch's equivalents."""
    import symbolic_opt

    hyper = PROGRAM_HYPERPARAMETERS.get(name, {})

    def ours(backend: str):
        return lambda ps: symbolic_opt.SymbolicOptimizer(ps, name, lr=LR, backend=backend, **hyper)

    out = [Row(f"{name} {b}", ours(b)) for b in ("fused", "foreach", "eager")]
    if name in TORCH_EQUIVALENTS:
        cls_name, kwargs = TORCH_EQUIVALENTS[name]
        cls = getattr(torch.optim, cls_name)
        if _torch_has_fused(cls):
            out.append(Row("torch fused", lambda ps: cls(ps, lr=LR, fused=True, **kwargs)))
        out.append(Row("torch foreach", lambda ps: cls(ps, lr=LR, foreach=True, **kwargs)))
    return out


class _AddStep:
    """``a.add_(b)`` on tensors of 1.5 x the suite's elements, as an optimizer-like row: the
    read-modify-write bandwidth, measured among the rows it is the floor of."""

    def __init__(self, elements: int):
        self.a, self.b = torch.randn(elements * 3 // 2), torch.randn(elements * 3 // 2)

    def step(self) -> None:
        self.a.add_(self.b)

    def bandwidth(self, seconds: float) -> float:
        return 3 * self.a.numel() * self.a.element_size() / seconds


def time_library_program(name: str, suite: str, repeats: int, steps: int, warmup: int) -> tuple[dict[str, float], step_floor.Floor]:
    """Best over ``repeats`` of the mean step time of a batch of ``steps``, per row of one
    program, interleaved in a shuffled order; and its floor, at the r-m-w bandwidth measured
    among them."""
    sizes = SUITES[suite][1]
    live = []
    for i, row in enumerate(library_rows(name)):
        opt = row.make(parameters(sizes, seed=i))
        for _ in range(warmup):
            opt.step()
        live.append((row.name, opt))
    add = _AddStep(sum(sizes))
    for _ in range(warmup):
        add.step()
    live.append(("a.add_(b)", add))
    samples: dict[str, list[float]] = {n: [] for n, _ in live}
    rng = random.Random(0)
    order = list(live)
    for _ in range(repeats):
        rng.shuffle(order)
        for row_name, opt in order:
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            samples[row_name].append((time.perf_counter() - start) / steps)
    best = {n: min(v) for n, v in samples.items()}
    del live, order
    gc.collect()
    return best, step_floor.floor(name, sum(sizes), add.bandwidth(best.pop("a.add_(b)")))


def library_table(suites: list[str], repeats: int, steps: int, warmup: int, names: list[str] | None = None) -> str:
    """Every library program's fused, foreach and eager step against torch's fused and
    foreach equivalents and against its floor (module docstring), as a Markdown table."""
    import programs

    names = names or programs.names()
    head = ("| suite | program | fused ms | foreach ms | eager ms | torch fused ms | torch foreach ms | floor ms "
            "| bound | fused / torch fused | fused / floor | foreach / torch foreach | target |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for suite in suites:
        for name in names:
            t, bound = time_library_program(name, suite, repeats, steps, warmup)
            fused, floor = t[f"{name} fused"], bound.seconds
            tf, tfe = t.get("torch fused"), t.get("torch foreach")
            if tf is not None:
                verdict = f"{'met' if fused <= FUSED_TARGET * tf else 'missed'} (<= {FUSED_TARGET}x torch fused)"
            else:
                verdict = f"{'met' if fused <= FLOOR_TARGET * floor else 'missed'} (<= {FLOOR_TARGET}x floor)"

            def ms(x):
                return "" if x is None else f"{x * 1e3:.2f}"

            def ratio(a, b):
                return "" if a is None or b is None else f"{a / b:.2f}"

            lines.append(
                f"| {SUITES[suite][0]} | {name} | {ms(fused)} | {ms(t[f'{name} foreach'])} | {ms(t[f'{name} eager'])} "
                f"| {ms(tf)} | {ms(tfe)} | {ms(floor)} | {bound.bound} | {ratio(fused, tf)} | {ratio(fused, floor)} "
                f"| {ratio(t[f'{name} foreach'], tfe)} | {verdict} |"
            )
            print(lines[-1], flush=True)
    return "\n".join(lines)


@dataclass
class Row:
    name: str
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer] | None
    lion_step: bool = True  # whether the floor applies (a Lion step's bytes)


def rows() -> list[Row]:
    import lion_pytorch
    import lion_pytorch.foreach

    import symbolic_opt

    def ours(backend: str):
        return lambda ps: symbolic_opt.Lion(ps, lr=LR, betas=BETAS, weight_decay=LION_WD, backend=backend)

    return [
        Row("symbolic_opt Lion, eager", ours("eager")),
        Row("symbolic_opt Lion, foreach", ours("foreach")),
        Row("symbolic_opt Lion, fused", ours("fused")),
        Row("lion-pytorch Lion (default loop)", lambda ps: lion_pytorch.Lion(ps, lr=LR, betas=BETAS, weight_decay=LION_WD)),
        Row("lion-pytorch foreach Lion", lambda ps: lion_pytorch.foreach.Lion(ps, lr=LR, betas=BETAS, weight_decay=LION_WD)),
        Row("torch AdamW foreach", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=ADAMW_WD, foreach=True), False),
        Row("torch AdamW fused", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=ADAMW_WD, fused=True), False),
    ]


def parameters(sizes: list[int], seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = []
    for n in sizes:
        p = torch.nn.Parameter(torch.randn(n, generator=gen))
        p.grad = torch.randn(n, generator=gen)
        params.append(p)
    return params


def _fastest(fn: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    """The shortest of ``repeats`` timings of ``fn()``: a floor is what the machine can do,
    so the best run estimates it (noise only ever adds time)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def copy_bandwidth(repeats: int, elements: int) -> float:
    """Bytes per second of ``dst.copy_(src)``, counted as reading and writing each byte once."""
    src, dst = torch.randn(elements), torch.randn(elements)
    return 2 * src.numel() * src.element_size() / _fastest(lambda: dst.copy_(src), repeats)


def rmw_bandwidth(repeats: int, elements: int) -> float:
    """Bytes per second of ``a.add_(b)``: reads a and b, writes a back (12 bytes per fp32 element)."""
    a, b = torch.randn(elements), torch.randn(elements)
    return 3 * a.numel() * a.element_size() / _fastest(lambda: a.add_(b), repeats)


def time_rows(suite: str, repeats: int, steps: int, warmup: int) -> dict[str, float]:
    """Median over repeats of the mean ``opt.step()`` time of a batch of ``steps``, per row;
    rows interleaved in a shuffled order each repeat."""
    sizes = SUITES[suite][1]
    live = []
    for i, row in enumerate(rows()):
        params = parameters(sizes, seed=i)
        opt = row.make(params)
        for _ in range(warmup):
            opt.step()
        live.append((row, opt))
    samples: dict[str, list[float]] = {row.name: [] for row, _ in live}
    order = list(live)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for row, opt in order:
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            samples[row.name].append((time.perf_counter() - start) / steps)
    del live, order
    gc.collect()
    return {name: statistics.median(values) for name, values in samples.items()}


def state_bytes_per_element() -> dict[str, float]:
    """Optimizer state bytes per parameter element after one step (fp32; ``step`` counters,
    0-d, do not count)."""
    import symbolic_opt

    makers = {
        "symbolic_opt Lion": lambda ps: symbolic_opt.Lion(ps, lr=LR),
        "torch AdamW": lambda ps: torch.optim.AdamW(ps, lr=LR),
        "symbolic_opt AdamW": lambda ps: symbolic_opt.AdamW(ps, lr=LR),
    }
    out = {}
    for name, make in makers.items():
        params = parameters([1000, 24], seed=0)
        opt = make(params)
        opt.step()
        state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor) and t.dim() > 0)
        out[name] = state / sum(p.numel() for p in params)
    return out


def compile_times(repeats: int) -> dict[str, float]:
    """Median seconds to parse, analyze and generate the source of a 20-statement program,
    and to load that source (Python's compile + exec), calling the stages directly so that
    ``compile_program``'s cache is not involved."""
    from symbolic_opt import analyze, parse
    from symbolic_opt.codegen import generate, target
    from symbolic_opt.compiler import _load
    from symbolic_opt.lowering import plan

    program = parse(TWENTY_STATEMENTS)
    assert len(program.body) == 20, len(program.body)
    stages: dict[str, list[float]] = {"parse": [], "analyze": [], "generate (eager)": [], "generate (foreach)": [], "load": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        program = parse(TWENTY_STATEMENTS)
        t1 = time.perf_counter()
        analysis = analyze(program)
        t2 = time.perf_counter()
        eager = generate(plan(analysis, target("eager")))
        t3 = time.perf_counter()
        generate(plan(analysis, target("foreach")))
        t4 = time.perf_counter()
        _load(eager.source, analysis.hash, "eager")
        t5 = time.perf_counter()
        for stage, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[stage].append(seconds)
    return {stage: statistics.median(values) for stage, values in stages.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="a,b", help="a, b or a,b (see the module docstring)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a rough table in seconds")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=None, help="timed batches per row (default 15, quick 4)")
    parser.add_argument("--library", action="store_true", help="also the table of every library program")
    parser.add_argument("--only-library", action="store_true", help="only the library table")
    parser.add_argument("--programs", default=None, help="library programs for the table (default: all), comma-separated")
    args = parser.parse_args(argv)
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (4 if args.quick else 15)
    steps, warmup = (2, 2) if args.quick else (4, 5)

    print(f"machine: {machine()}")
    if args.library or args.only_library:
        names = [n.strip() for n in args.programs.split(",")] if args.programs else None
        print("library programs, step time (best of repeats), one program at a time with its anchors:", flush=True)
        table = library_table(suites, repeats, steps, warmup, names)
        print("\n" + table)
        if args.only_library:
            return
    elements = sum(SUITES[suites[0]][1])  # both suites hold 16M elements
    bandwidth = copy_bandwidth(repeats=20, elements=elements * 3 // 2)
    rmw = rmw_bandwidth(repeats=20, elements=elements * 3 // 2)
    print(
        f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s (dst.copy_(src), {elements * 3 // 2 * 4 / 2**20:.0f} MB each, "
        f"as large together as w, g and m; read + write counted); read-modify-write (a.add_(b)): {rmw / 1e9:.1f} GB/s"
    )
    header = f"{'suite':<15} {'optimizer':<34} {'step ms':>9} {'x floor':>8} {'x lion-pytorch':>15}"
    lines = [header, "-" * len(header)]
    for suite in suites:
        title, sizes = SUITES[suite]
        elements = sum(sizes)
        floor = LION_BYTES_PER_ELEMENT * elements / bandwidth
        times = time_rows(suite, repeats, steps, warmup)
        reference = times["lion-pytorch Lion (default loop)"]
        lines.append(f"{title:<15} {'FLOOR: 20 B/element at copy bandwidth':<34} {floor * 1e3:>9.2f} {1.0:>8.2f} {floor / reference:>15.2f}")
        strict = LION_BYTES_PER_ELEMENT * elements / rmw
        label = "FLOOR': 20 B/el, r-m-w bandwidth"
        lines.append(f"{'':<15} {label:<34} {strict * 1e3:>9.2f} {strict / floor:>8.2f} {strict / reference:>15.2f}")
        for row in rows():
            t = times[row.name]
            own_floor = floor if row.lion_step else floor * ADAMW_BYTES_PER_ELEMENT / LION_BYTES_PER_ELEMENT
            ratio_floor = f"{t / own_floor:>8.2f}" if row.lion_step else f"{'(' + format(t / own_floor, '.2f') + ')':>8}"
            lines.append(f"{'':<15} {row.name:<34} {t * 1e3:>9.2f} {ratio_floor} {t / reference:>15.2f}")
    print("\n".join(lines))
    print("x floor: step time / the floor (AdamW's, in parentheses, against its own 28-byte floor); "
          "x lion-pytorch: step time / lion-pytorch's default loop's (lower is faster)")
    state = state_bytes_per_element()
    print("state bytes per parameter element (fp32): " + ", ".join(f"{k} {v:g}" for k, v in state.items()))
    stages = compile_times(repeats=50 if args.quick else 200)
    total = sum(v for k, v in stages.items() if k != "generate (foreach)")
    print(
        "20-statement program, parse + analyze + generate + load (eager), cache bypassed: "
        f"{total * 1e3:.2f} ms (" + ", ".join(f"{k} {v * 1e3:.2f}" for k, v in stages.items()) + " ms)"
    )


if __name__ == "__main__":
    main()
