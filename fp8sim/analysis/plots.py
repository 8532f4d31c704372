"""Matplotlib figures of FP8 GEMM error studies, built with the object API (no pyplot).

Every function returns a new `matplotlib.figure.Figure` (labelled axes with units, a
title, a legend, a grid) and touches no global state, so scripts, notebooks and tests
can make figures side by side. Save one with `save_figure(fig, path)`, which writes the
same bytes on every run (no dates or version stamps in the file, fixed fonts, fixed SVG
ids), so regenerated results leave a clean `git status`.

    >>> rows = [{"k": 128, "promote": 0, "dist": "normal", "max_rel_error": 1e-3,
    ...          "mean_rel_error": 1e-5}]
    >>> fig = error_vs_k(rows)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["error_vs_k", "error_vs_promote", "error_histogram", "scaling_comparison",
           "error_lines", "promote_label", "save_figure", "STYLE"]

STYLE = {"font.sans-serif": ["DejaVu Sans"], "svg.hashsalt": "fp8sim",
         "svg.fonttype": "path", "pdf.fonttype": 42}
"""rcParams `save_figure` draws with: the generic sans-serif family resolves to
matplotlib's bundled DejaVu Sans (the same file on every machine, whatever fonts or
matplotlibrc it has) and SVG element ids use a fixed salt, so a figure's file is
reproducible."""

_NO_STAMPS = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
              "pdf": {"CreationDate": None, "ModDate": None, "Producer": None,
                      "Creator": None}}


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 120) -> Path:
    """Writes `fig` reproducibly: the same figure gives the same bytes on every run.

    PNG, SVG and PDF files get no date and no software version stamp (`metadata`),
    text is drawn with `STYLE`'s bundled font and SVG ids use a fixed salt. Missing
    folders are created.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fmt = p.suffix.lstrip(".").lower()
    with matplotlib.rc_context(STYLE):
        fig.savefig(p, dpi=dpi, metadata=_NO_STAMPS.get(fmt))
    return p


MAX_LABEL = "relative error (max over outputs)"
MEAN_LABEL = "relative error (mean over outputs)"
_METRIC_LABELS = {"max_rel_error": MAX_LABEL, "mean_rel_error": MEAN_LABEL,
                  "median_rel_error": "relative error (median over outputs)",
                  "fro_rel_error": "relative error (normwise, ||D - exact||_F / ||exact||_F)"}


def promote_label(promote: int) -> str:
    """Human name of a promotion interval: 0 is 'no promotion'."""
    return "no promotion" if int(promote) == 0 else f"promote every {int(promote)}"


def _metric_label(metric: str) -> str:
    return _METRIC_LABELS.get(metric, metric.replace("_", " "))


def _new_axes(figsize: tuple[float, float]):
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _finish(ax, title: str, xlabel: str, ylabel: str, legend_title: str | None = None,
            inside_up_to: int = 6) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.12)
    n = len(ax.get_legend_handles_labels()[0])
    if n > inside_up_to:  # many lines: legend to the right, off the data
        ax.legend(title=legend_title, fontsize="small", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(title=legend_title, fontsize="small")


def _groups(rows: Iterable[Mapping], keys: Sequence[str]) -> dict[tuple, list[Mapping]]:
    out: dict[tuple, list[Mapping]] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def _series_label(keys: Sequence[str], values: tuple) -> str:
    parts = []
    for k, v in zip(keys, values, strict=True):
        if k == "promote":
            parts.append(promote_label(v))
        elif k in ("dist", "label", "case", "accumulator", "recipe", "formats"):
            parts.append(str(v))
        else:
            parts.append(f"{k.replace('_', ' ')} {v}")
    return ", ".join(parts)


def error_vs_k(rows: Sequence[Mapping], *, metric: str = "max_rel_error",
               series: Sequence[str] = ("promote", "dist"), show_mean: bool = False,
               title: str | None = None,
               reference: Mapping[str, tuple[float, float]] | None = None,
               figsize: tuple[float, float] = (10.0, 5.5)) -> Figure:
    """Relative error against K on log-log axes, one line per (promote, dist).

    Shows how the error of a long MMA chain grows with the number of summed elements
    and how promotion caps it. Lines of one colour share everything but `promote`;
    no promotion is solid with circles, promotion dashed with squares.

    Args:
        rows: dicts with keys k, the `series` keys (default promote and dist) and
            `metric` (and mean_rel_error when `show_mean`).
        metric: the error column plotted ("max_rel_error", "fro_rel_error", ...).
        series: the columns that tell lines apart.
        show_mean: also plot mean_rel_error with dotted lines of the same colour.
        title: figure title (a default says what is shown).
        reference: optional points to mark, {label: (k, error)}, e.g. a paper's figure.
        figsize: inches.

    Returns:
        The Figure.

    Raises:
        ValueError: rows is empty.
    """
    if not rows:
        raise ValueError("rows: expected at least one row")
    fig, ax = _new_axes(figsize)
    series = tuple(series)
    groups = _groups(rows, series)
    colour_keys = [i for i, k in enumerate(series) if k != "promote"]
    p_idx = series.index("promote") if "promote" in series else None
    colour_of: dict[tuple, str] = {}
    for key in groups:
        ck = tuple(key[i] for i in colour_keys)
        colour_of.setdefault(ck, f"C{len(colour_of) % 10}")
    for key, rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        rs = sorted(rs, key=lambda r: r["k"])
        ks = [r["k"] for r in rs]
        promoted = p_idx is not None and int(key[p_idx]) != 0
        colour = colour_of[tuple(key[i] for i in colour_keys)]
        label = _series_label(series, key)
        ax.plot(ks, [r[metric] for r in rs], "--" if promoted else "-",
                marker="s" if promoted else "o", color=colour, label=label)
        if show_mean:
            ax.plot(ks, [r["mean_rel_error"] for r in rs], ":", marker=".", color=colour,
                    alpha=0.7, label=f"{label} (mean)")
    for i, (label, (k, err)) in enumerate((reference or {}).items()):
        ax.plot([k], [err], marker="*", markersize=14, linestyle="none",
                color=["k", "m", "y", "c"][i % 4], label=label)
    ax.set_xscale("log", base=2)
    _log_y(ax)
    ylabel = _metric_label(metric) + ("; dotted: mean" if show_mean else "")
    _finish(ax, title or "FP8 GEMM error vs K (E4M3, bit-exact Hopper model)",
            "K (elements summed)", ylabel)
    return fig


def error_vs_promote(rows: Sequence[Mapping], *, metric: str = "max_rel_error",
                     series: str = "k", title: str | None = None,
                     reference: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                     figsize: tuple[float, float] = (9.0, 5.5)) -> Figure:
    """Relative error against the promotion interval, one line per value of `series`.

    A promotion interval of 0 (never promote) is drawn at x = K, where it belongs: an
    interval >= K promotes only once, at the end.

    Args:
        rows: dicts with keys promote, k, `series` and `metric`.
        metric: error column ("max_rel_error", "mean_rel_error", ...).
        series: the column that tells lines apart (e.g. "k" or "dist").
        title: figure title.
        reference: optional measured points, {label: [(interval, error), ...]}, e.g.
            an H100's captured outputs.
        figsize: inches.

    Returns:
        The Figure.

    Raises:
        ValueError: rows is empty.
    """
    if not rows:
        raise ValueError("rows: expected at least one row")
    fig, ax = _new_axes(figsize)
    never: dict[int, float] = {}  # K -> highest error of a never-promoted point drawn at x = K
    for i, (key, rs) in enumerate(sorted(_groups(rows, (series,)).items())):
        pts = sorted(((r["promote"] or r["k"]), r[metric]) for r in rs)
        # lines of different K often coincide: draw later ones thinner, with other markers
        ax.plot([p for p, _ in pts], [e for _, e in pts], ["-", "--", "-.", ":"][i % 4],
                marker="osD^v"[i % 5], markersize=max(8 - 1.5 * i, 3),
                linewidth=max(3.0 - 0.6 * i, 1.0), color=f"C{i}",
                label=key[0] if series in ("case", "label") else f"{series} = {key[0]}")
        for r in rs:
            if int(r["promote"]) == 0:
                ax.plot([r["k"]], [r[metric]], marker="o", markersize=13, linestyle="none",
                        markerfacecolor="none", markeredgecolor=f"C{i}", markeredgewidth=1.5)
                never[int(r["k"])] = max(never.get(int(r["k"]), 0.0), float(r[metric]))
    if never:  # one legend entry for the rings, and a label at each K
        ax.plot([], [], marker="o", markersize=13, linestyle="none", markerfacecolor="none",
                markeredgecolor="k", label="never promoted (drawn at interval = K)")
        for k, err in never.items():
            ax.annotate(f"never promoted\n(K = {k})", xy=(k, err), xytext=(-10, -12),
                        textcoords="offset points", ha="right", va="top", multialignment="right",
                        fontsize="small")
    for i, (label, pts) in enumerate((reference or {}).items()):
        ax.plot([p for p, _ in pts], [e for _, e in pts], marker="*", markersize=13,
                linestyle="none", color=["k", "m", "y", "c"][i % 4], label=label)
    ax.axvline(128, color="grey", linestyle=":", label="N_C = 128 (DeepSeek-V3)")
    ax.set_xscale("log", base=2)
    _log_y(ax)
    _finish(ax, title or "Error vs promotion interval (interval = K: promote only at the end)",
            "promotion interval (elements of K between FP32 promotions)", _metric_label(metric),
            inside_up_to=8)
    return fig


def error_histogram(rel_errors: Mapping[str, np.ndarray] | np.ndarray, *, bins: int = 60,
                    title: str | None = None,
                    figsize: tuple[float, float] = (8.0, 5.0)) -> Figure:
    """Histogram of per-output relative errors on a log axis, one outline per series.

    Args:
        rel_errors: an array of relative errors, or {label: array} to overlay several.
            Zeros (exact outputs) and non-finite values are counted in the legend, not
            drawn.
        bins: number of log-spaced bins.
        title: figure title.
        figsize: inches.

    Returns:
        The Figure.
    """
    if not isinstance(rel_errors, Mapping):
        rel_errors = {"relative error": rel_errors}
    fig, ax = _new_axes(figsize)
    data = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in rel_errors.items()}
    pos = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in data.values()] + [np.ones(0)])
    if pos.size:
        lo, hi = np.log10(pos.min()), np.log10(pos.max())
        edges = np.logspace(lo - 0.05, hi + 0.05 + (hi == lo), bins + 1)
    else:
        edges = np.logspace(-8, 0, bins + 1)
    for i, (label, v) in enumerate(data.items()):
        ok = np.isfinite(v) & (v > 0)
        n_zero = int(np.sum(v == 0))
        extra = f", {n_zero} exact" if n_zero else ""
        ax.hist(v[ok], bins=edges, histtype="step", linewidth=1.6, color=f"C{i}",
                label=f"{label} (n={v.size}{extra})")
        if ok.any():
            ax.axvline(v[ok].max(), color=f"C{i}", linestyle=":", alpha=0.8)
    ax.set_xscale("log")
    _finish(ax, title or "Distribution of per-output relative error (dotted: max)",
            "relative error |D - exact| / |exact| (per output)", "outputs (count)")
    return fig


def scaling_comparison(rows: Sequence[Mapping], *, label: str = "recipe",
                       parts: Sequence[str] = ("total", "quantization", "accumulation"),
                       metric: str = "fro_rel",
                       title: str | None = None,
                       figsize: tuple[float, float] = (9.0, 5.0)) -> Figure:
    """Grouped bars of the error split per scaling recipe (log y axis).

    Args:
        rows: dicts with key `label` and `{part}_{metric}` for each part, e.g.
            total_fro_rel, quantization_fro_rel, accumulation_fro_rel.
        label: column naming each group of bars.
        parts: which error parts to draw.
        metric: suffix of the columns ("fro_rel", "max_rel", "median_rel").
        title: figure title.
        figsize: inches.

    Returns:
        The Figure.

    Raises:
        ValueError: rows is empty.
    """
    if not rows:
        raise ValueError("rows: expected at least one row")
    fig, ax = _new_axes(figsize)
    xs = np.arange(len(rows))
    width = 0.8 / len(parts)
    for i, part in enumerate(parts):
        vals = [max(float(r[f"{part}_{metric}"]), 1e-12) for r in rows]
        bars = ax.bar(xs + (i - (len(parts) - 1) / 2) * width, vals, width, label=part,
                      color=f"C{i}")
        ax.bar_label(bars, labels=[f"{v:.1e}" for v in vals], fontsize=7, rotation=90,
                     padding=2)
    ax.set_xticks(xs, [str(r[label]) for r in rows], rotation=15)
    ax.set_yscale("log")
    ax.margins(y=0.25)
    names = {"fro_rel": "normwise", "max_rel": "max over outputs",
             "median_rel": "median over outputs"}
    _finish(ax, title or "Error split per scaling recipe",
            f"{label}", f"relative error ({names.get(metric, metric)})", legend_title="error part")
    return fig


def error_lines(rows: Sequence[Mapping], *, x: str, metric: str, series: str,
                panel: str | None = None, xlabel: str | None = None,
                ylabel: str | None = None, title: str | None = None, logx: bool = True,
                figsize: tuple[float, float] | None = None) -> Figure:
    """Error against any parameter on log axes: one line per `series`, one panel per `panel`.

    The general form of `error_vs_k` for studies whose x axis is something else (an
    outlier magnitude, accumulator width, ...).

    Args:
        rows: dicts with keys `x`, `metric`, `series` (and `panel`).
        x: column on the x axis.
        metric: error column on the y axis (log scale).
        series: column that tells lines apart (same colour in every panel).
        panel: column that splits the rows into side-by-side panels (shared y axis).
        xlabel, ylabel: axis labels (with units); defaults derive from the column names.
        title: figure title.
        logx: log-scale x axis.
        figsize: inches (default grows with the number of panels).

    Returns:
        The Figure.

    Raises:
        ValueError: rows is empty.
    """
    if not rows:
        raise ValueError("rows: expected at least one row")
    panels = list(dict.fromkeys(r[panel] for r in rows)) if panel else [None]
    names = list(dict.fromkeys(r[series] for r in rows))
    fig = Figure(figsize=figsize or (4.5 * len(panels) + 1.5, 5.0), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, pv in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            pts = sorted((r[x], r[metric]) for r in rows
                         if r[series] == name and (panel is None or r[panel] == pv))
            if pts:
                # coinciding lines stay visible: each later one thinner, other dash and marker
                ax.plot([p for p, _ in pts], [e for _, e in pts], ["-", "--", "-.", ":"][i % 4],
                        marker="osD^v*"[i % 6], markersize=max(9 - 1.5 * i, 3),
                        linewidth=max(2.8 - 0.5 * i, 1.0), color=f"C{i}", label=str(name))
        if logx:
            ax.set_xscale("log")
        _log_y(ax)
        _finish(ax, f"{panel} = {pv}" if panel else (title or ""),
                xlabel or x.replace("_", " "), ylabel or _metric_label(metric)
                if ax is axes[0] else "")
    if panel and title:
        fig.suptitle(title)
    return fig


def _log_y(ax) -> None:
    """A log y axis for the errors; linear, saying so, where no plotted error is positive
    (every output exact: a log axis has nothing to draw and matplotlib warns)."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()
          if line.get_transform() == ax.transData]  # not axvline's axes-fraction y
    if any(np.any(y > 0) for y in ys):
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "every error is 0 (exact)", transform=ax.transAxes, ha="center")
