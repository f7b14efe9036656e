"""The comparison's and the report's figures (matplotlib, PNG, no display needed).

    plot_bench(result, out)     # tuning-<task>.png and training-<task>.png per task
"""

from __future__ import annotations

import math
import re
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", text)


def plot_bench(result, out: Path) -> list[Path]:
    """Per task: the tuning curve (mean validation loss against lr, ± the seeds' standard
    deviation, at each program's chosen weight decay) and the training-loss curves at the
    tuned settings (the held-out seeds' mean and min-max band)."""
    plt = _pyplot()
    paths = []
    for task in result.tasks:
        cells = [c for p in result.programs if (c := result.cell(p, task)) is not None and c.tried]
        if not cells:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, c in enumerate(cells):
            chosen_wd = c.chosen.hyperparams.get("wd") if c.chosen else None
            for wd in sorted({s.hyperparams.get("wd") for s, _, _ in c.tried}, key=lambda w: (w is None, w or 0)):
                points = sorted((s.lr_peak, m, sd) for s, m, sd in c.tried
                                if s.hyperparams.get("wd") == wd and math.isfinite(m))
                if not points:
                    continue
                xs, ys, sds = zip(*points)
                chosen = wd == chosen_wd
                label = c.program + ("" if wd is None else f" (wd {wd:g})")
                ax.errorbar(xs, ys, yerr=sds, marker="o", ms=3, capsize=2, color=f"C{i}", label=label,
                            linestyle="-" if chosen else ":", alpha=1.0 if chosen else 0.45)
            if c.chosen is not None:
                ax.scatter([c.chosen.lr_peak], [c.valid_mean], s=80, facecolors="none", edgecolors=f"C{i}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (schedule peak)")
        ax.set_ylabel(f"validation loss (mean ± sd over {result.seeds} seeds)")
        ax.set_title(f"{task}: tuning curves (circled: chosen; dotted: other weight decays)")
        lows = [c.valid_mean for c in cells if c.ok]
        if lows:
            ax.set_ylim(min(lows) * 0.9, max(lows) * 2.0)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"tuning-{_slug(task)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, c in enumerate(cells):
            if not c.ok or not c.curves:
                continue
            curves = [_smooth(curve) for curve in c.curves]
            steps = range(1, len(curves[0]) + 1)
            columns = list(zip(*curves))
            mean = [sum(v) / len(v) for v in columns]
            ax.plot(steps, mean, color=f"C{i}", label=f"{c.program} at {c.chosen.describe()}")
            ax.fill_between(steps, [min(v) for v in columns], [max(v) for v in columns], color=f"C{i}", alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"training loss, smoothed (mean; band: min-max of {result.seeds} held-out seeds)", fontsize=8)
        ax.set_title(f"{task}: training at the tuned settings")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"training-{_slug(task)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _smooth(curve, fraction: float = 0.025) -> list[float]:
    """A trailing mean over ``fraction`` of the run: minibatch losses are noisy."""
    k = max(1, round(fraction * len(curve)))
    out, total = [], 0.0
    for i, x in enumerate(curve):
        total += x
        if i >= k:
            total -= curve[i - k]
        out.append(total / min(i + 1, k))
    return out
