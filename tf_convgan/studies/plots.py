"""Figures of the Dirac-GAN and 2D studies (matplotlib, Agg backend: no display needed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tf_convgan import run_dir  # noqa: E402


def _save(fig, path, dpi):
    with run_dir.atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def dirac_panel(ax, panel):
    """One method: the vector field (arrows, normalised) and its simGD / altGD trajectories.

    panel: dict with title, grid (theta, psi 2-D arrays), field (u_theta, u_psi), trajectories
    {"simGD": [T, 2], "altGD": [T, 2]}, limit."""
    theta, psi = panel["grid"]
    u, v = panel["field"]
    norm = np.hypot(u, v) + 1e-12
    ax.quiver(theta, psi, u / norm, v / norm, color="0.55", scale=30, width=0.004)
    colors = {"simGD": "tab:red", "altGD": "tab:blue"}
    for label, points in panel["trajectories"].items():
        ax.plot(points[:, 0], points[:, 1], color=colors.get(label), lw=1.0, label=label)
        ax.plot(points[:1, 0], points[:1, 1], "o", color="k", ms=3)
    ax.plot([0], [0], "*", color="gold", ms=10, mec="k", zorder=5)
    lim = panel["limit"]
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(panel["title"], fontsize=9)
    ax.set_xlabel("theta", fontsize=8)
    ax.set_ylabel("psi", fontsize=8)
    ax.tick_params(labelsize=7)


def dirac_figure(panels, path, *, cols=5, dpi=80):
    """All methods side by side, one panel each, written as PNG."""
    rows = int(np.ceil(len(panels) / cols))
    cols = min(cols, len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.1 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        dirac_panel(ax, panel)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    _save(fig, path, dpi)


def toy2d_figure(frames, path, *, limit, cols=None, dpi=70):
    """Frames of 2D runs, `cols` per row: D's logits as filled contours, real data (grey) and
    generator samples (red). frames: list of dicts with title, real, fake [n, 2], and
    d_grid (x, y, logits 2-D arrays) or None, and optionally their own axis `limit`."""
    cols = cols or len(frames)
    rows = int(np.ceil(len(frames) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(frames):]:
        ax.axis("off")
    for ax, frame in zip(axes.flat, frames):
        if frame.get("d_grid") is not None:
            x, y, logits = frame["d_grid"]
            ax.contourf(x, y, logits, levels=20, cmap="coolwarm", alpha=0.6)
        ax.scatter(*frame["real"].T, s=2, c="0.3", alpha=0.4, lw=0)
        ax.scatter(*frame["fake"].T, s=2, c="red", alpha=0.6, lw=0)
        lim = frame.get("limit", limit)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(frame["title"], fontsize=9)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    _save(fig, path, dpi)
