"""Draws docs/img/scale-out.png, the topologies of docs/scale-out.md.

python bench/draw_scale_out.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "scale-out.png"


def box(ax: plt.Axes, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02", facecolor=color, edgecolor="#333333"
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def arrow(
    ax: plt.Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str = "",
    style: str = "-",
    color: str = "#333333",
    dx: float = 0.0,
    dy: float = 0.12,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            linestyle=style,
            color=color,
            linewidth=1.3,
        )
    )
    if label:
        ax.text(
            (start[0] + end[0]) / 2 + dx,
            (start[1] + end[1]) / 2 + dy,
            label,
            ha="center",
            fontsize=7.5,
            color=color,
        )


def main() -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, title, clients in (
        (
            left,
            "PostgreSQL: PgBouncer, a hot standby, failover",
            "clients\n(Consistency-Token\nheader or cookie)",
        ),
        (right, "MariaDB Galera: write to one node, read from another", "clients"),
    ):
        ax.set_xlim(0, 10)
        ax.set_ylim(0, 7)
        ax.axis("off")
        ax.set_title(title, fontsize=11)
        box(ax, 0.2, 5.4, 2.6, 1.0, clients, "#eeeeee")
        box(
            ax,
            0.2,
            3.0,
            2.6,
            1.6,
            "catalog worker x N\nwrite pool + read pool\nreplica monitor",
            "#dbe9f6",
        )
        arrow(ax, (1.5, 5.4), (1.5, 4.6), "HTTP")

    write, read = "#1f4e79", "#2e7d32"
    box(left, 3.7, 4.4, 2.7, 1.1, "PgBouncer\ntransaction mode\n(optional)", "#fff2cc")
    box(left, 7.2, 4.4, 2.6, 1.1, "primary\n(read-write)", "#dbe9f6")
    box(left, 7.2, 1.2, 2.6, 1.1, "hot standby\n(pg_basebackup -R)", "#e2f0d9")
    arrow(left, (2.8, 4.2), (3.7, 4.9), "writes,\nsign-in", color=write, dx=-0.45, dy=0.3)
    arrow(left, (6.4, 4.95), (7.2, 4.95), "", color=write)
    arrow(
        left,
        (2.8, 3.4),
        (7.2, 1.8),
        "public reads (lag <= max, token replayed)",
        "--",
        read,
        dx=0.3,
        dy=-0.55,
    )
    arrow(left, (8.5, 4.4), (8.5, 2.3), "WAL stream\n(synchronous:\nno loss)", dx=0.85, dy=-0.3)
    left.text(
        0.2,
        0.3,
        "database_url: ?host=primary&host=standby&target_session_attrs=read-write\n"
        "-> after promotion, new connections find the new primary",
        fontsize=8,
        family="monospace",
    )

    box(right, 6.8, 5.0, 2.8, 1.0, "node 1 (writes)", "#dbe9f6")
    box(right, 6.8, 3.0, 2.8, 1.0, "node 2 (reads)", "#e2f0d9")
    box(right, 6.8, 1.0, 2.8, 1.0, "node 3", "#eeeeee")
    arrow(
        right,
        (2.8, 4.3),
        (6.8, 5.5),
        "every write to one node\n(no certification conflicts)",
        color=write,
        dx=-0.5,
        dy=0.3,
    )
    arrow(right, (2.8, 3.5), (6.8, 3.5), "public reads (Synced, token applied)", "--", read)
    arrow(right, (9.3, 5.0), (9.3, 4.0), "")
    arrow(right, (9.3, 3.0), (9.3, 2.0), "")
    right.text(6.85, 4.35, "write-sets certified on every node", fontsize=7.5)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(OUT)


if __name__ == "__main__":
    main()
