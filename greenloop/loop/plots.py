"""Plots of a run's `metrics.jsonl`: frozen-set pass rate, median steps-to-green and
repeat-error rate against the cycle, the baseline drawn as a dashed line. The line follows
the model in use after each cycle (a rolled-back candidate leaves the promoted one in
place); candidates that were rolled back are drawn hollow, off the line. PNG files under
`plots/`."""

from __future__ import annotations

from pathlib import Path

PLOTS = (("pass_rate", "frozen-set pass rate"), ("median_steps_to_green", "median steps to green"),
         ("repeat_error_rate", "repeat-error rate"))


def read_metrics(folder: Path) -> list[dict]:
    from greenloop.io import read_jsonl

    path = Path(folder) / "metrics.jsonl"  # rewritten whole and renamed each cycle: never torn
    rows = [r.data for r in read_jsonl(path)] if path.exists() else []
    return sorted({r["cycle"]: r for r in rows}.values(), key=lambda r: r["cycle"])


def in_use(points: list[tuple[int, float, bool]]) -> list[tuple[int, float]]:
    """(cycle, value of the model in use after it) from (cycle, candidate's value, promoted)."""
    line, current = [], None
    for cycle, value, promoted in points:
        if promoted or current is None:
            current = value
        line.append((cycle, current))
    return line


def write_plots(folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(folder)
    if not rows:
        return []
    out = Path(folder) / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for key, title in PLOTS:
        points = [(r["cycle"], r.get(key), r.get("promoted", True)) for r in rows if r.get(key) is not None]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(*zip(*in_use(points)), color="tab:green", zorder=1, label="model in use")
        for promoted in (True, False):
            chosen = [(c, v) for c, v, p in points if p == promoted]
            if chosen:
                ax.scatter(*zip(*chosen), zorder=2, color="tab:green" if promoted else "white",
                           edgecolors="tab:green", label="promoted" if promoted else "rolled back")
        if rows[0]["cycle"] == 0 and rows[0].get(key) is not None:
            ax.axhline(rows[0][key], color="gray", linestyle="--", label="baseline (cycle 0)")
        ax.set_xlabel("cycle")
        ax.set_ylabel(title)
        ax.set_title(title)
        ax.set_xticks([c for c, _, _ in points])
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        path = out / f"{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
