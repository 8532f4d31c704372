"""The notebooks in notebooks/ execute without errors (nbclient, kernel "python3")."""

import time
import warnings
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 2


def _texts(nb) -> list[str]:
    """The text each code cell printed or returned (streams joined, images left out)."""
    out = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        text = ""
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                text += o["text"]
            elif "text/plain" in o.get("data", {}) and "image/png" not in o["data"]:
                text += o["data"]["text/plain"]
        out.append(text)
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    committed = _texts(nb)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # jupyter_client / zmq deprecations on this Python, not ours (pytest makes
        # warnings errors); only DeprecationWarnings from those packages are ignored.
        for module in ("jupyter_client", "zmq", "jupyter_core", "nbclient", "traitlets"):
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        client.execute()
    assert time.perf_counter() - t0 < 60
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    # `make notebooks` leaves git status clean: a rerun prints what is committed, in every
    # checkout (with or without ../shared/golden)
    assert _texts(nb) == committed
    # every figure cell produced an image
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images
