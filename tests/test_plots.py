"""fp8sim.plots: every function returns a Figure with a title, labelled axes and a legend."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from fp8sim.analysis import plots


def _rows():
    return [{"k": k, "promote": p, "dist": d, "max_rel_error": 1e-3 * k / 128 / (1 + p),
             "mean_rel_error": 1e-4 * k / 128, "fro_rel_error": 2e-4 * k / 128}
            for k in (128, 256, 512) for p in (0, 128) for d in ("normal", "positive")]


def _check(fig, xlabel_part, ylabel_part):
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title()
    assert xlabel_part in ax.get_xlabel()
    assert ylabel_part in ax.get_ylabel()
    assert ax.get_legend() is not None
    assert any(line.get_visible() for line in ax.get_xgridlines())
    fig.canvas.draw()  # renders without error (Agg canvas of a bare Figure)


def test_error_vs_k():
    fig = plots.error_vs_k(_rows(), show_mean=True, reference={"paper": (4096, 0.02)})
    _check(fig, "K (elements summed)", "relative error (max over outputs)")
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    # one line per (promote, dist) plus its mean, plus the reference point
    assert len(fig.axes[0].get_lines()) == 4 * 2 + 1


def test_error_vs_promote():
    rows = [{"k": k, "promote": p, "max_rel_error": 1e-4 * (p or k)} for k in (1024, 4096)
            for p in (32, 128, 512, 0)]
    _check(plots.error_vs_promote(rows), "promotion interval", "relative error")


def test_error_histogram():
    rng = np.random.default_rng(0)
    fig = plots.error_histogram({"a": rng.random(100) * 1e-3, "b": np.r_[0.0, rng.random(50)]})
    _check(fig, "relative error", "count")
    _check(plots.error_histogram(np.zeros(3)), "relative error", "count")


def test_scaling_comparison():
    rows = [{"recipe": n, "total_fro_rel": 1e-2, "quantization_fro_rel": 9e-3,
             "accumulation_fro_rel": 1e-4} for n in ("fine", "tensor")]
    _check(plots.scaling_comparison(rows), "recipe", "relative error")


@pytest.mark.parametrize("fn", [plots.error_vs_k, plots.error_vs_promote, plots.scaling_comparison])
def test_empty_rows_raise(fn):
    with pytest.raises(ValueError, match="^rows:"):
        fn([])


def test_error_vs_promote_draws_never_at_k():
    rows = [{"k": 1024, "promote": p, "max_rel_error": e} for p, e in ((0, 3.0), (128, 1.0))]
    fig = plots.error_vs_promote(rows)
    xs = list(fig.axes[0].get_lines()[0].get_xdata())
    assert xs == [128, 1024]


def test_error_lines_panels():
    rows = [{"scale": s, "err": 1e-2 * s, "recipe": r, "kind": k}
            for s in (1, 10) for r in ("a", "b") for k in ("token", "channel")]
    fig = plots.error_lines(rows, x="scale", metric="err", series="recipe", panel="kind",
                            xlabel="outlier magnitude (x typical)", ylabel="relative error",
                            title="t")
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "relative error"
    assert all(ax.get_title() and ax.get_xlabel() for ax in fig.axes)
    fig.canvas.draw()


def test_no_pyplot():
    import inspect
    src = inspect.getsource(plots)
    assert "import matplotlib.pyplot" not in src and "from matplotlib import pyplot" not in src


@pytest.mark.parametrize("fn", [plots.error_vs_k, plots.error_vs_promote])
def test_every_error_zero_keeps_a_linear_axis_and_says_so(fn):
    """K = 1 sums one exact product: all errors are 0, which a log axis cannot show
    (matplotlib would warn on stderr); the axis stays linear with a note."""
    import warnings

    rows = [{"k": 1, "promote": p, "dist": "normal", "max_rel_error": 0.0} for p in (0, 128)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = fn(rows)
        fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_yscale() == "linear"
    assert any("every error is 0" in t.get_text() for t in ax.texts)
    assert fn(_rows()).axes[0].get_yscale() == "log"
