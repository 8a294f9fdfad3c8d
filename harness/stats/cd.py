"""The critical-difference diagram of Demšar (2006): runs on an axis of mean ranks (1 = best, left),
the Nemenyi critical difference as a scale bar, and a thick line joining runs that no Holm-corrected
pairwise test tells apart."""

from __future__ import annotations

from pathlib import Path

from harness.stats.paired import Friedman


def cliques(result: Friedman, alpha: float = 0.05) -> list[tuple[int, int]]:
    """Maximal runs of rank-adjacent runs (positions in rank order, inclusive) with no significant pair."""
    order = sorted(range(len(result.names)), key=lambda i: result.mean_ranks[i])
    apart = {(i, j) for i, j, _, adjusted in result.pairs if adjusted < alpha}
    apart |= {(j, i) for i, j in apart}
    spans: list[tuple[int, int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and all((order[a], order[end + 1]) not in apart for a in range(start, end + 1)):
            end += 1
        if end > start and not any(s <= start and end <= e for s, e in spans):
            spans.append((start, end))
    return spans


def draw(result: Friedman, path_stem: Path, title: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write the diagram as path_stem.<format> for each format; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(result.names)
    order = sorted(range(k), key=lambda i: result.mean_ranks[i])
    spans = cliques(result)
    below_bars = -0.3 - 0.15 * len(spans)  # names start under the clique bars
    rows = (k + 1) // 2
    bottom = below_bars - 0.35 * rows
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * (1.6 - bottom)))
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(bottom, 1.6)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", linewidth=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.12, color="black", linewidth=1)
        ax.text(r, 0.2, str(r), ha="center", va="bottom", fontsize=8)
    for number, (start, end) in enumerate(spans):
        y = -0.15 - 0.15 * number
        left, right = result.mean_ranks[order[start]], result.mean_ranks[order[end]]
        ax.plot([left - 0.03, right + 0.03], [y, y], linewidth=3, color="0.3", solid_capstyle="butt")
    for position, i in enumerate(order):
        rank = result.mean_ranks[i]
        left = position < rows
        y = below_bars - 0.35 * (position if left else k - 1 - position)
        x_text = 0.55 if left else k + 0.45
        ax.plot([rank, rank, x_text], [0, y, y], color="black", linewidth=0.8, zorder=0)
        ax.text(
            x_text, y + 0.04, f"{result.names[i]} ({rank:.2f})", ha="left" if left else "right", va="bottom", fontsize=8
        )
    if result.critical_difference is not None:
        ax.plot([1, 1 + result.critical_difference], [1.0, 1.0], color="black", linewidth=1.5)
        ax.text(
            1 + result.critical_difference / 2, 1.08, f"CD = {result.critical_difference:.2f}", ha="center", fontsize=8
        )
    ax.set_title(title, fontsize=9, pad=2)
    written = []
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        path = path_stem.with_suffix(f".{fmt}")
        fig.savefig(path, bbox_inches="tight", metadata={"Software": None} if fmt == "png" else None)
        written.append(path)
    plt.close(fig)
    return written
