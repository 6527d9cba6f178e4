"""`report.md` of a run: one row per cycle (frozen-set pass rate, the paired comparison with
the baseline and with the promoted checkpoint, the gate's decision), the per-family pass
rates of the baseline and of the final promoted checkpoint, and links to the plots."""

from __future__ import annotations

from pathlib import Path

from greenloop.loop.plots import PLOTS, read_metrics


def _rate(value) -> str:
    return "" if value is None else f"{value:.1%}"


def _cycle_row(row: dict) -> str:
    if row["cycle"] == 0:
        return (f"| 0 | base | {row['passed']}/{row['tasks']} ({_rate(row['pass_rate'])}) | "
                f"{_rate(row['confirm_half']['pass_rate'])} | | baseline |")
    if row.get("checkpoint") is None:
        return f"| {row['cycle']} | none | | | | {row['gate']} |"
    confirm, held = row["confirm_half"], row["gate_half"]
    return (f"| {row['cycle']} | {row['checkpoint']} | {row['passed']}/{row['tasks']} ({_rate(row['pass_rate'])}) "
            f"| {_rate(confirm['pass_rate'])}: +{confirm['gains']} −{confirm['losses']} vs baseline, "
            f"p = {confirm['p_better']:.3g} | +{held['gains']} −{held['losses']} vs {row['previous']} | {row['gate']} |")


def write_report(folder: Path) -> Path | None:
    rows = read_metrics(folder)
    if not rows:
        return None
    lines = ["# Self-improvement run", "",
             ("Frozen-set results per cycle. The gate decides on the gate half of the frozen set; the confirm half, "
              "which no decision looks at, measures the gain over the baseline: p is the one-sided exact McNemar "
              "p-value that the checkpoint is better than the baseline there (paired over the same tasks)."), "",
             "| cycle | checkpoint | frozen pass (all) | confirm half | gate half | gate |", "|---|---|---|---|---|---|"]
    lines += [_cycle_row(r) for r in rows]
    final = next((r for r in reversed(rows) if r.get("promoted") and r.get("checkpoint")), rows[0])
    families = sorted(set(rows[0]["family_pass_rates"]) | set(final["family_pass_rates"]))
    lines += ["", f"Per family: baseline and {final['checkpoint']} (the last promoted checkpoint).", "",
              "| family | baseline | final |", "|---|---|---|"]
    lines += [f"| {f} | {_rate(rows[0]['family_pass_rates'].get(f))} | {_rate(final['family_pass_rates'].get(f))} |"
              for f in families]
    lines += [""] + [f"![{title}](plots/{key}.png)" for key, title in PLOTS if (Path(folder) / "plots" / f"{key}.png").exists()]
    path = Path(folder) / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
