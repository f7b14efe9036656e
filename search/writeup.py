"""A run written up: ``report.md`` and its figures, for a results directory.

    symopt report RUN_DIR --control CONTROL_RUN --out results/my-run
    write_report(store, out, control=control_store)

What it holds: what the run spent (evaluations, rate, cache hits, wall time); what fitness 0
is (the tuned baseline per task); the best fitness against evaluations for the run and its
control on one figure (``search-progress.png``), with the population's median, the cache hit
rate and the programs' length over the run (``search-dynamics.png``); the hall of fame; the
best program task by task; the funnel with its spreads, p-values and verdicts; and where the
evaluations went, by mutation kind: the share of children that failed (and why), stopped at
the hurdle, hit the cache, or beat their parent.
"""

from __future__ import annotations

import collections
import math
import statistics
from pathlib import Path

from .calibration import Calibration
from .fitness import WORST, format_score, multiplier_text, multipliers
from .store import EvaluationRecord, RunStore

CURVE_NAME, DYNAMICS_NAME, REPORT_NAME = "search-progress.png", "search-dynamics.png", "report.md"


def history(store: RunStore) -> list[tuple]:
    """Every evaluation, in order (``RunStore.history``)."""
    return store.history()


def members(store: RunStore) -> list[tuple]:
    """Every child made, and the seeds, in order (``RunStore.children``)."""
    return store.children()


def best_so_far(store: RunStore) -> list[float]:
    """The best fitness after each evaluation (failures count as evaluations)."""
    out, best = [], -math.inf
    for row in history(store):
        fitness, error = row[2], row[3]
        if error is None and fitness is not None and math.isfinite(fitness):
            best = max(best, fitness)
        out.append(best)
    return out


def kind(mutation: str | None) -> str:
    """``insert`` / ``delete`` / ``modify`` (the first of several for a random-search child),
    ``restart``, ``warm start``."""
    if not mutation:
        return "warm start"
    first = mutation.split(" ", 1)[0]
    return first if first in ("insert", "delete", "modify", "restart") else mutation.split(";")[0][:20]


def where_they_went(store: RunStore) -> list[dict]:
    """Per mutation kind: children made (members joined), evaluated, failed (and the commonest
    reasons), stopped at the hurdle, served by the cache, and evaluated children that beat
    their parent."""
    fitness = {r[8]: r[2] for r in history(store)}
    for _, fit, _, _, program_hash, _ in members(store):
        fitness.setdefault(program_hash, fit)
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    reasons: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for _, _, source, mutation, _, _ in members(store):
        if source == "seed":
            continue
        by_kind[kind(mutation)]["children"] += 1
        if source in ("hash", "fingerprint"):
            by_kind[kind(mutation)]["cache"] += 1
    for _, _, fit, error, stopped, _, mutation, parent, _ in history(store):
        k = kind(mutation)
        counts = by_kind[k]
        counts["evaluated"] += 1
        if error:
            counts["failed"] += 1
            reasons[k][_reason(error)] += 1
        elif stopped:
            counts["stopped"] += 1
        parent_fitness = fitness.get(parent)
        if not error and parent_fitness is not None and parent_fitness != WORST and fit > parent_fitness:
            counts["improved"] += 1
    out = []
    for k, c in sorted(by_kind.items(), key=lambda kc: -kc[1]["evaluated"]):
        out.append({"kind": k, **{n: c[n] for n in ("children", "evaluated", "failed", "stopped", "cache", "improved")},
                    "reasons": ", ".join(f"{r} {n}" for r, n in reasons[k].most_common(3))})
    return out


def _reason(error: str) -> str:
    text = error.split(" (step")[0].split(",")[0]
    for word in ("diverged", "nan loss", "inf loss", "deadline", "non-finite"):
        if word in text:
            return word
    return text.split(":")[0][:30]


def write_report(store: RunStore, out: str | Path, *, control: RunStore | None = None, title: str | None = None,
                 initial_hash: str | None = None) -> Path:
    """``report.md`` and the figures in ``out`` (module docstring); the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_progress(store, out / CURVE_NAME, control)
    plot_dynamics(store, out / DYNAMICS_NAME)
    lines = [f"# {title or store.run_dir.name}", ""]
    lines += _spent(store, "the search")
    if control is not None:
        lines += _spent(control, "the control (random search)")
    lines += ["", f"![best fitness against evaluations]({CURVE_NAME})", "", f"![population, cache, length]({DYNAMICS_NAME})", ""]
    lines += _calibration(store)
    lines += _hall_of_fame(store, initial_hash)
    if control is not None:
        lines += ["## The control's best", ""] + _top(control, 5)
    lines += _funnel(store)
    lines += _where(store, "the search")
    if control is not None:
        lines += _where(control, "the control")
    path = out / REPORT_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _spent(store: RunStore, what: str) -> list[str]:
    c = store.counters()
    evaluations, elapsed = int(c.get("evaluations", 0)), c.get("elapsed_s", 0.0)
    rows = history(store)
    if rows and not elapsed:  # a session still running has not added its time yet
        elapsed = rows[-1][1] - rows[0][1]
    hits = (c.get("hash_hits", 0) + c.get("fingerprint_hits", 0)) / c["lookups"] if c.get("lookups") else 0.0
    best = store.best(1)
    return [f"- **{what}**: {evaluations:,} evaluations in {elapsed / 60:.0f} min ({evaluations / max(elapsed, 1):.1f}/s), "
            f"{int(c.get('children', 0)):,} children, cache hit rate {hits:.1%}, "
            f"{int(c.get('failures', 0)):,} failed, {int(c.get('stopped', 0)):,} stopped at the hurdle, "
            f"{int(c.get('infrastructure', 0))} lost by the infrastructure, {int(c.get('restarts', 0))} restarts; "
            f"best fitness {format_score(best[0].fitness) if best else '-'} "
            f"(held-out test {format_score(best[0].test_fitness) if best else '-'})."]


def _calibration(store: RunStore) -> list[str]:
    definition = store.fitness_record("definition") or {}
    grid = ", ".join(multiplier_text(m) for m in definition.get("lr_multipliers", []))
    baseline = definition.get("baseline", {}).get("program", "the baseline")
    lines = [f"## Fitness 0: {baseline} tuned per task", "",
             f"`{baseline}` swept over its lr in factors of 2, then beta1 x weight decay at the best lr and its "
             "neighbours; chosen on validation seeds, scored on held-out seeds. The warm start's best schedule peak "
             f"centres every candidate's grid of lr multipliers ({grid}).", "",
             "| task | warm start's best peak | baseline | valid loss | test loss | untrained |", "|---|---|---|---|---|---|"]
    keys = ["calibration"] + [k for k in store.fitness_keys() if k.startswith("calibration@")]
    for key in keys:
        for data in store.fitness_record(key) or ():
            c = Calibration.from_dict(data)
            b = c.baseline
            lines.append(f"| {c.key} | {c.center:g} | {b.setting.describe()} | {b.valid_loss:.4g} | {b.test_loss:.4g} | "
                         f"{c.initial['valid']:.4g} |")
    return lines + [""]


def _hall_of_fame(store: RunStore, initial_hash: str | None) -> list[str]:
    from symbolic_opt.analysis import analyze
    from symbolic_opt.printer import print_program

    lines = ["## Hall of fame: the fittest program of each length", "",
             "| length | hash | fitness | held-out test | lr multiplier per task | found at |", "|---|---|---|---|---|---|"]
    for r in store.hall_of_fame():
        mark = " (warm start)" if r.hash == initial_hash else ""
        lines.append(f"| {r.length} | `{r.hash}`{mark} | {format_score(r.fitness)} | {format_score(r.test_fitness)} | "
                     f"{multipliers(r.per_task)} | #{r.id} |")
    best = store.best(1)
    if best:
        b = best[0]
        lines += ["", f"### The best by proxy fitness: `{b.hash}`", "", "```python",
                  print_program(analyze(b.program).live_program()).rstrip(), "```", ""]
        lines += _per_task(b)
    return lines + [""]


def _per_task(record: EvaluationRecord) -> list[str]:
    lines = ["| task | lr multiplier | valid score | test score | valid loss (± sd over seeds) | baseline |",
             "|---|---|---|---|---|---|"]
    for key, r in record.per_task.items():
        if not isinstance(r, dict) or "valid" not in r:
            continue
        losses = r.get("valid_losses") or []
        spread = f" ± {statistics.stdev(losses):.3g}" if len(losses) > 1 else ""
        lines.append(f"| {key} | {multiplier_text(r['multiplier'])}{' (edge)' if r.get('on_edge') else ''} | {r['valid']:+.4f} | "
                     f"{format_score(r.get('test'))} | {r['valid_loss']:.4g}{spread} | {r['baseline_valid_loss']:.4g} |")
    return lines


def _top(store: RunStore, n: int) -> list[str]:
    lines = ["| hash | fitness | held-out test | mutations |", "|---|---|---|---|"]
    for r in store.best(n):
        lines.append(f"| `{r.hash}` | {format_score(r.fitness)} | {format_score(r.test_fitness)} | {(r.mutation or '')[:70]} |")
    return lines + [""]


def _funnel(store: RunStore) -> list[str]:
    from .funnel import TEST_NAME, pending

    rows, waiting = store.funnel(), pending(store)
    if not rows and not waiting:
        return []
    alpha = next((r.verdict.get("alpha") for r in rows if r.verdict and "alpha" in r.verdict), 0.05)
    seeds = next((r.verdict.get("n") for r in rows if r.verdict and "n" in r.verdict), "?")
    lines = ["## Funnel", "", f"Each stage on {seeds} validation and {seeds} held-out seeds, the baseline re-tuned at "
             f"that scale; passes: {TEST_NAME}, at p < {alpha:g}.", "",
             "| scale | hash | fitness ± sd (seeds) | baseline ± sd | p | test ± sd | passes | why |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        v = r.verdict or {}
        if "valid_mean" in v:
            cells = (f"{v['valid_mean']:+.4f} ± {v['valid_std']:.4f}", f"{v['baseline_valid_mean']:+.4f} ± "
                     f"{v['baseline_valid_std']:.4f}", f"{v['p']:.3g}", f"{v['test_mean']:+.4f} ± {v['test_std']:.4f}")
        else:
            cells = (format_score(r.fitness), "", "", format_score(r.test_fitness))
        lines.append(f"| {r.scale:g} | `{r.hash}` | {' | '.join(cells)} | {'yes' if r.beat_baseline else 'no'} | "
                     f"{v.get('why', r.error or '')} |")
    lines += [f"| {scale:g} | `{h}` | pending | | | | | not evaluated yet (symopt funnel RUN finishes it) |"
              for scale, h in waiting]
    return lines + [""]


def _where(store: RunStore, what: str) -> list[str]:
    lines = [f"## Where {what}'s evaluations went, by mutation kind", "",
             "| mutation | children | evaluated | failed | stopped at hurdle | cache hits | beat their parent | commonest failures |",
             "|---|---|---|---|---|---|---|---|"]
    for r in where_they_went(store):
        def share(n: int, of: int) -> str:
            return f"{n:,} ({n / of:.0%})" if of else str(n)
        lines.append(f"| {r['kind']} | {r['children']:,} | {r['evaluated']:,} | {share(r['failed'], r['evaluated'])} | "
                     f"{share(r['stopped'], r['evaluated'])} | {share(r['cache'], r['children'])} | "
                     f"{share(r['improved'], r['evaluated'])} | {r['reasons']} |")
    return lines + [""]


def plot_progress(store: RunStore, path: Path, control: RunStore | None = None) -> Path:
    """Best fitness so far against evaluations, for the run and its control, with every
    evaluation's fitness as a faint dot."""
    from .plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    lows = []
    for i, (s, label) in enumerate(((store, _strategy(store)), (control, f"{_strategy(control)} (control)"))):
        if s is None:
            continue
        rows = [(n, r[2]) for n, r in enumerate(history(s), 1) if r[3] is None and r[2] is not None and math.isfinite(r[2])]
        if rows:
            ax.scatter(*zip(*rows), s=2, alpha=0.15, color=f"C{i}")
            lows.append(sorted(f for _, f in rows)[len(rows) // 4])
        curve = best_so_far(s)
        ax.plot(range(1, len(curve) + 1), curve, color=f"C{i}", label=f"{label}: best so far", lw=2)
    ax.axhline(0.0, color="k", lw=0.8, ls="--", label="tuned AdamW (0)")
    tops = [max(best_so_far(s) or [0]) for s in (store, control) if s is not None]
    ax.set_ylim(min(lows + [-0.1]), max(tops + [0.0]) + 0.02)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("proxy fitness (validation; higher is better)")
    ax.set_title("best fitness against evaluations")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_dynamics(store: RunStore, path: Path, window: int = 200) -> Path:
    """Over the run's members: the median fitness of the last ``window`` that joined (the
    population), the share of them the cache served, and the mean live length of evaluated
    programs."""
    from .plots import _pyplot

    plt = _pyplot()
    children = [m for m in members(store) if m[2] != "seed"]
    joined = [m for m in children if m[5]]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=False)
    if joined:
        xs = range(window, len(joined) + 1, max(1, len(joined) // 400))
        med = [_median([m[1] for m in joined[x - window:x]]) for x in xs]
        hits = [sum(m[2] in ("hash", "fingerprint") for m in children[x - window:x]) / window
                for x in range(window, len(children) + 1, max(1, len(children) // 400))]
        axes[0].plot(list(xs), med)
        axes[0].axhline(0.0, color="k", lw=0.8, ls="--")
        axes[0].set_ylabel(f"median fitness of the\nlast {window} that joined")
        axes[0].set_xlabel("children that joined the population")
        axes[1].plot(list(range(window, len(children) + 1, max(1, len(children) // 400))), hits, color="C1")
        axes[1].set_ylabel("cache hit rate")
        axes[1].set_xlabel("children made")
    rows = history(store)
    lengths = [r[5] for r in rows if r[5] is not None]
    if lengths:
        step = max(1, len(lengths) // 400)
        xs = list(range(window, len(lengths) + 1, step))
        axes[2].plot(xs, [sum(lengths[x - window:x]) / window for x in xs], color="C2")
        axes[2].set_ylabel("live statements,\nmean of evaluated")
        axes[2].set_xlabel("evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _strategy(store: RunStore | None) -> str:
    """The strategy a run used (from its fitness definition)."""
    if store is None:
        return ""
    return (store.fitness_record("definition") or {}).get("strategy", "evolution")


def _median(values: list) -> float:
    """The median of the finished evaluations' fitness (failures are not a population's level)."""
    finite = [v for v in values if v is not None and v > WORST]
    return statistics.median(finite) if finite else math.nan
