"""Reports on a run: the hall of fame, the funnel, and a fitness-over-time plot.

    symopt report RUN_DIR        # prints the hall of fame, writes RUN_DIR/fitness.png
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from .fitness import format_score, multiplier_text, multipliers
from .store import EvaluationRecord, RunStore

PLOT_NAME = "fitness.png"


def hall_of_fame_table(store: RunStore, initial_hash: str | None = None) -> Table:
    """The fittest program of each length (live statements); the best overall is marked."""
    records = store.hall_of_fame()
    best = max(records, key=lambda r: r.fitness, default=None)
    table = Table(title="hall of fame: the fittest program of each length (lr x: each task's chosen multiplier, "
                        "! at the grid's end)", title_justify="left")
    for name, justify in (("length", "right"), ("hash", "left"), ("fitness", "right"), ("test", "right"),
                          ("found", "right"), ("lr x (per task)", "left"), ("", "left")):
        table.add_column(name, justify=justify)
    for r in records:
        marks = []
        if best is not None and r.id == best.id:
            marks.append("best")
        if r.hash == initial_hash:
            marks.append("warm start")
        if r.stopped:
            marks.append("stopped at the hurdle")
        table.add_row(str(r.length), r.hash, format_score(r.fitness), format_score(r.test_fitness), f"#{r.id}",
                      multipliers(r.per_task), ", ".join(marks))
    return table


def record_table(record: EvaluationRecord) -> Table:
    """One evaluation task by task: where its learning rate landed, its scores and losses
    against the tuned baseline's."""
    table = Table(title=f"{record.hash}: fitness {format_score(record.fitness)}, test {format_score(record.test_fitness)}"
                  + (f" ({record.stopped})" if record.stopped else ""), title_justify="left")
    for name in ("task", "lr multiplier", "lr peak", "valid score", "test score", "valid loss", "baseline", "untrained"):
        table.add_column(name, justify="left" if name == "task" else "right")
    for key, r in record.per_task.items():
        if not isinstance(r, dict):
            continue
        if "error" in r:
            table.add_row(key, "failed", "", "", "", r["error"][:60], "", "")
            continue
        m = r.get("multiplier")
        mult = "" if m is None else multiplier_text(m) + (" (edge)" if r.get("on_edge") else "")
        table.add_row(key, mult, _num(r.get("lr_peak")), format_score(r.get("valid")), format_score(r.get("test")),
                      _num(r.get("valid_loss")), _num(r.get("baseline_valid_loss")), _num(r.get("initial_valid_loss")))
    return table


def _num(x) -> str:
    return "" if x is None else f"{x:.4g}"


def funnel_table(store: RunStore) -> Table | None:
    """The funnel's verdicts, and the programs it has taken in but not judged yet (pending)."""
    from .funnel import TEST_NAME, pending

    rows, waiting = store.funnel(), pending(store)
    if not rows and not waiting:
        return None

    table = Table(title=f"funnel: re-evaluated at larger scales against AdamW tuned there ({TEST_NAME})",
                  title_justify="left")
    for name in ("scale", "hash", "fitness", "± sd", "baseline ± sd", "p", "test", "passes", "seconds"):
        table.add_column(name, no_wrap=True, justify="left" if name == "hash" else "right")
    for r in rows:
        v = r.verdict or {}
        passes = "" if r.beat_baseline is None else ("yes" if r.beat_baseline else "no")
        if r.error:
            table.add_row(f"{r.scale:g}", r.hash[:12], "failed", "", "", "", "", passes, f"{r.seconds or 0:.1f}")
            continue
        spread = f"{v['valid_std']:.4f}" if "valid_std" in v else ""
        base = f"{v['baseline_valid_mean']:+.4f} ± {v['baseline_valid_std']:.4f}" if "baseline_valid_mean" in v else ""
        p = f"{v['p']:.3g}" if "p" in v else ""
        table.add_row(f"{r.scale:g}", r.hash[:12], format_score(r.fitness), spread, base, p,
                      format_score(r.test_fitness), passes, f"{r.seconds or 0:.1f}")
    for scale, h in waiting:
        table.add_row(f"{scale:g}", h[:12], "pending", "", "", "", "", "", "")
    return table


def calibration_table(store: RunStore) -> Table | None:
    """What fitness 0 is at each scale: the warm start's best peak and the tuned baseline per task."""
    from .calibration import Calibration

    keys = [k for k in ("calibration", *(f"calibration@{s:g}" for s in sorted({r.scale for r in store.funnel()})))]
    table = Table(title="fitness 0: AdamW tuned per task (lr, beta1, weight decay) on validation", title_justify="left")
    for name in ("task", "warm start's best peak", "baseline setting", "valid loss", "test loss", "untrained", "tried"):
        table.add_column(name, justify="left" if name in ("task", "baseline setting") else "right")
    shown = 0
    for key in keys:
        for data in store.fitness_record(key) or ():
            c = Calibration.from_dict(data)
            b = c.baseline
            table.add_row(c.key, f"{c.center:g}", b.setting.describe() + (" (edge)" if b.on_edge else ""),
                          f"{b.valid_loss:.4g}", f"{b.test_loss:.4g}", f"{c.initial['valid']:.4g}", str(b.tried))
            shown += 1
    return table if shown else None


def print_report(store: RunStore, console: Console | None = None, initial_hash: str | None = None) -> None:
    """The hall of fame, the best program, its comparison with the warm start, and the funnel."""
    console = console or Console()
    calibration = calibration_table(store)
    if calibration is not None:
        console.print(calibration)
    console.print(hall_of_fame_table(store, initial_hash))
    best = store.best(1)
    if best:
        console.print(_program_panel(best[0], "best program by proxy fitness (redundant statements dropped)"))
        console.print(record_table(best[0]))
    initial = store.record(initial_hash) if initial_hash else None
    if best and initial:
        b, i = best[0], initial
        verdict = "beats" if b.fitness > i.fitness and b.test_fitness > i.test_fitness else "does not beat"
        console.print(
            f"best vs warm start: proxy {format_score(b.fitness)} vs {format_score(i.fitness)}, "
            f"held-out test {format_score(b.test_fitness)} vs {format_score(i.test_fitness)}: the best {verdict} it on both.",
            highlight=False)
        against = "beats" if b.fitness > 0 and b.test_fitness > 0 else "does not beat"
        seeds = len(next((r["valid_losses"] for r in b.per_task.values() if isinstance(r, dict) and r.get("valid_losses")), []))
        console.print(f"best vs the tuned baseline (0 by definition): the best {against} it on both splits "
                      f"(one evaluation on {seeds} seeds; the funnel tests it with more, and a t-test).", highlight=False)
    table = funnel_table(store)
    if table is not None:
        console.print(table)
        for scale in sorted({r.scale for r in store.funnel()}):
            stage = [r for r in store.funnel() if r.scale == scale and r.role == "candidate"]
            passed = [r for r in stage if r.beat_baseline]
            console.print(f"funnel at scale {scale:g}: {len(passed)} of {len(stage)} beat the tuned baseline by more "
                          "than the noise" + (f" ({', '.join(r.hash for r in passed)})" if passed else ""), highlight=False)
            for r in stage:
                why = r.error or (r.verdict or {}).get("why")
                if why:
                    console.print(f"  {r.hash[:12]}: {why}", highlight=False)


def print_summary(store: RunStore, summary, console: Console) -> None:
    """What ``symopt search`` prints at the end of a session."""
    initial_hash = summary.initial.hash if summary.initial else None
    print_report(store, console, initial_hash)
    console.print(
        f"{summary.session_evaluations} new evaluations in {summary.seconds:.0f}s "
        f"({summary.evals_per_s:.1f}/s), {summary.evaluations} in the run; cache hit rate "
        f"{summary.cache_hit_rate:.1%}; valid children {summary.valid_child_rate:.1%}; stopped by {summary.stopped_by}.",
        highlight=False)
    console.print(f"run directory: {summary.run_dir}   (symopt report {summary.run_dir}; "
                  f"symopt search --resume {summary.run_dir})", highlight=False)


def plot_fitness(store: RunStore, path: Path | None = None) -> Path:
    """Every evaluation's proxy fitness over time, and the best so far, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = path or store.run_dir / PLOT_NAME
    points = [(t, f) for t, f in store.timeline() if math.isfinite(f)]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if points:
        t0 = points[0][0]
        xs = [(t - t0) / 60 for t, _ in points]
        ys = [f for _, f in points]
        best, running = [], -math.inf
        for y in ys:
            running = max(running, y)
            best.append(running)
        lo = sorted(ys)[len(ys) // 20] if len(ys) > 20 else min(ys)  # keep the worst 5% from flattening the plot
        ax.scatter(xs, ys, s=4, alpha=0.3, label="evaluations")
        ax.plot(xs, best, color="C3", label="best so far")
        pad = 0.05 * (max(ys) - lo + 1e-12)
        ax.set_ylim(lo - pad, max(ys) + pad)
        ax.legend(loc="lower right")
    ax.set_xlabel("minutes since the first evaluation")
    ax.set_ylabel("proxy fitness (higher is better)")
    ax.set_title(f"search {store.run_dir.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _program_panel(record: EvaluationRecord, title: str) -> Panel:
    """The program without its redundant statements (the store keeps it as found)."""
    from symbolic_opt.analysis import analyze
    from symbolic_opt.printer import print_program

    live = print_program(analyze(record.program).live_program())
    text = Syntax(live.rstrip(), "python", theme="ansi_dark")
    subtitle = f"{record.hash}   fitness {format_score(record.fitness)}   test {format_score(record.test_fitness)}"
    return Panel(text, title=title, subtitle=subtitle)
