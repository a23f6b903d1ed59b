"""Plots: the report notebooks' figures. Each function returns a matplotlib ``Figure`` (not managed by pyplot,
so a notebook shows it once, where the cell returns it) and takes tables from ``analysis``.

``use_cjk_font()`` registers Noto Sans CJK SC from the ``mplfonts`` package so Chinese labels render as
glyphs, not empty boxes; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib import font_manager, rcParams
from matplotlib.figure import Figure

from . import peers
from .analysis import load_crops, peer_columns, plate_titles
from .sources import Source

CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"


def use_cjk_font() -> str:
    """Register the CJK font shipped by ``mplfonts`` and put it first for sans-serif text; returns its name."""
    import mplfonts

    path = Path(mplfonts.__file__).parent / "fonts" / CJK_FONT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; reinstall mplfonts (pip install -e '.[report]')")
    font_manager.fontManager.addfont(str(path))
    name = font_manager.FontProperties(fname=str(path)).get_name()
    rcParams["font.family"] = "sans-serif"
    rcParams["font.sans-serif"] = [name, *[f for f in rcParams["font.sans-serif"] if f != name]]
    rcParams["axes.unicode_minus"] = False
    return name


def _has_photos(fig: Figure) -> bool:
    return any(ax.images for ax in fig.axes)


def register_formats(shell) -> None:
    """Show figures in IPython as PNG, but figures holding photos (plate galleries) as JPEG: 3-4× smaller
    notebooks and HTML. Call after ``%matplotlib inline``, which resets the formatters."""
    from IPython.core.pylabtools import print_figure

    png, jpeg = (shell.display_formatter.formatters[m] for m in ("image/png", "image/jpeg"))
    png.for_type(Figure, lambda fig: None if _has_photos(fig) else print_figure(fig, "png", bbox_inches="tight"))
    jpeg.for_type(Figure, lambda fig: print_figure(fig, "jpeg", bbox_inches="tight", pil_kwargs={"quality": 88})
                  if _has_photos(fig) else None)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """BGR, grey [H, W] or [H, W, 1] uint8 → RGB for imshow."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def note(text: str) -> Figure:
    """A one-line figure in place of an empty gallery."""
    fig = Figure(figsize=(8, 0.4))
    ax = fig.subplots()  # IPython shows no PNG for a figure without axes
    ax.axis("off")
    ax.text(0, 0.5, text, va="center", transform=ax.transAxes)
    return fig


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int = 4,
               title: str = "", cell: tuple[float, float] = (3.0, 1.3), empty: str = "no images") -> Figure:
    """Images in a grid, each with its title (plates: ``True: …  pred: …``); axes switched off."""
    if len(images) == 0:
        return note(f"{title}: {empty}" if title else empty)
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(images):
            ax.imshow(to_rgb(images[i]), interpolation="nearest" if images[i].shape[1] < 200 else "antialiased")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def plate_gallery(source: Source, rows: pd.DataFrame, title: str, confidence: bool = False, ncols: int = 4) -> Figure:
    """The raw crops of ``rows`` (evaluation rows), titled ``True: …  pred: …``; a one-line note when empty."""
    if len(rows) == 0:
        return note(f"{title}: no plates")
    return image_grid(load_crops(source, rows["name"].tolist()), plate_titles(rows, confidence), ncols, title)


def peer_gallery(source: Source, wins: pd.DataFrame, absent: dict[str, str], title: str, ncols: int = 3,
                 limit: int = 12) -> Figure:
    """``analysis.peer_wins`` (the first ``limit`` plates): each crop titled with the truth, this model's reading
    and each peer's; a note naming the peers that are not installed, or saying none read a plate this model
    missed."""
    if absent and len(absent) == len(peers.PEERS):
        return note(f"{title}: skipped, no peer installed ({'; '.join(sorted(set(absent.values())))})")
    if len(wins) == 0:
        return note(f"{title}: none" + (f" (not installed: {', '.join(absent)})" if absent else ""))
    readers = peer_columns(wins)
    shown = wins.head(limit)
    titles = [f"true {r.true}  here {r.pred}\n" + "  ".join(f"{p} {getattr(r, p)}" for p in readers)
              for r in shown.itertuples()]
    if len(wins) > limit:
        title = f"{title} ({len(wins)} plates, the first {limit} shown)"
    return image_grid(load_crops(source, shown["name"].tolist()), titles, ncols, title, cell=(4.2, 1.6))


def augment_grid(draws: np.ndarray, texts: Sequence[str]) -> Figure:
    """``analysis.augment_draws`` output: one row per plate, its model input first, then the draws."""
    titles = [t if d == 0 else f"augmented {d}" for t in texts for d in range(draws.shape[1])]
    return image_grid(list(draws.reshape(-1, *draws.shape[2:])), titles, ncols=draws.shape[1],
                      title="augmentation: the same plates, several draws", cell=(2.2, 0.95))


def count_bars(counts: pd.Series, title: str, xlabel: str = "", log: bool = True) -> Figure:
    """Bars of ``counts`` (index → count), each labelled with its count; log scale shows the rare ones. A one-line
    note when there is nothing to count."""
    if not (counts > 0).any():
        return note(f"{title}: nothing to count")
    fig = Figure(figsize=(max(6.0, 0.32 * len(counts) + 2), 3.6), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar([str(i) for i in counts.index], counts.to_numpy(), color="#3b6ea5")
    ax.bar_label(bars, fontsize=7, padding=1)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("plates" + (" (log scale)" if log else ""))
    ax.margins(x=0.01, y=0.12)
    return fig


def size_histograms(sizes: pd.DataFrame, title: str = "") -> Figure:
    """Histograms of the ``width`` and ``height`` columns (raw crop sizes, pixels)."""
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    for ax, col in zip(fig.subplots(1, 2), ("width", "height"), strict=True):
        ax.hist(sizes[col], bins=30, color="#3b6ea5")
        ax.set_xlabel(f"{col} (pixels)")
        ax.set_ylabel("crops")
        ax.set_title(f"{col}: median {sizes[col].median():.0f}, range {sizes[col].min()}–{sizes[col].max()}")
    if title:
        fig.suptitle(title)
    return fig


def training_curves(m: pd.DataFrame) -> Figure:
    """Loss (train, validation) and validation accuracies per epoch, from a run's ``metrics.csv``."""
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(m["epoch"], m["train_loss"], "o-", label="train")
    loss_ax.plot(m["epoch"], m["val_loss"], "o-", label="validation")
    loss_ax.set(title="loss (province CE + CTC)", xlabel="epoch", ylabel="loss")
    loss_ax.legend()
    for col, label in (("val_word_acc", "word"), ("val_char_acc", "character"), ("val_province_acc", "province")):
        acc_ax.plot(m["epoch"], m[col], "o-", label=label)
    acc_ax.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.set_xticks(m["epoch"])
    return fig


def error_histogram(table: pd.DataFrame) -> Figure:
    """Grouped bars of the share of plates per number of wrong characters, one group per column of ``table``."""
    shares = table / table.sum()
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(shares.columns)
    x = np.arange(len(shares))
    for i, col in enumerate(shares.columns):
        ax.bar(x + (i - (len(shares.columns) - 1) / 2) * width, shares[col].fillna(0), width, label=col)
    ax.set_xticks(x, [str(i) for i in shares.index])
    ax.set(xlabel="wrong characters per plate", ylabel="share of plates", yscale="log",
           title="wrong characters per plate")
    ax.legend(fontsize=8)
    return fig


def robustness_curves(table: pd.DataFrame, title: str = "") -> Figure:
    """``robustness.curves`` output: one panel per degradation, word accuracy against its strength, one line per
    set (and per model when ``table`` has a ``model`` column), each starting from the clean crops."""
    from .robustness import LABELS

    kinds = [k for k in dict.fromkeys(table["degradation"]) if k != "none"]
    ncols = 4
    nrows = -(-len(kinds) // ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.6 * nrows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    groups = ["set", "model"] if "model" in table else ["set"]
    for ax, kind in zip(axes, kinds, strict=False):
        for key, g in table.groupby(groups, sort=False):
            clean = g[g["degradation"] == "none"]["word_acc"].iloc[0]
            part = g[g["degradation"] == kind]  # strengths in the order they degrade, as curves() lists them
            xs, ys = part["strength"].tolist(), part["word_acc"].tolist()
            if kind == "margin":  # numeric: the clean crop is margin 0, between cut and loose
                xs, ys = zip(*sorted([*zip(xs, ys, strict=True), (0.0, clean)]), strict=True)
            else:  # categorical, from clean to the strongest
                ticks = ["clean", *(f"{v:g}" for v in xs)]
                xs, ys = list(range(len(ticks))), [clean, *ys]
                ax.set_xticks(xs, ticks)
            label = " · ".join(map(str, key)) if isinstance(key, tuple) else str(key)
            ax.plot(xs, ys, "o-", ms=3, label=label)
        ax.set_title(kind, fontsize=10)
        ax.set_xlabel(LABELS[kind], fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[len(kinds):]:
        ax.axis("off")
    axes[0].set_ylabel("word accuracy")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig
