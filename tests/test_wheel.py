"""The package as a user installs it: ``python -m build`` makes a wheel that holds the model, and the wheel, installed
into a fresh virtual environment, runs the README's first run with no repository in sight.

The fresh environment borrows its dependencies (numpy, onnxruntime, ...) from the environment running the tests, through
a ``.pth`` file, so the test needs no network. stemclean itself comes only from the wheel: the borrowed folder is
appended to ``sys.path`` and its editable-install hooks are not run (``.pth`` files are read only in site folders).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from conftest import REPO, run_readme_line
from test_shipped_model import check_first_run_output, copy_example_inputs, needs_examples, needs_model

from stemclean import consistency, engine


def _build_wheel(tmp_path: Path) -> Path:
    """``python -m build --wheel`` on a copy of the sources, so the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "stemclean", source / "stemclean", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist")]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("stemclean-*.whl")
    return wheel


def _fresh_venv(folder: Path, wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; returns its ``bin`` folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    subprocess.run([*install, "--quiet"], check=True)
    # Only now, so that pip never sees (or offers to replace) the stemclean installed where the dependencies live.
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "borrowed-dependencies.pth").write_text("\n".join(sorted(borrowed)) + "\n")
    return folder / "bin"


@needs_model
@needs_examples
def test_the_built_wheel_ships_the_model_and_cleans_the_example(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    shipped = f"stemclean/models/{engine.DEFAULT_MODEL.name}"
    assert shipped in names and shipped.replace(".onnx", ".json") in names
    assert f"stemclean/models/{consistency.SHARES_FILE.name}" in names, "track's consistency step reads it"
    assert not [n for n in names if n.endswith(".pt")], "torch weights are for training, not for the wheel"

    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    work = tmp_path / "user"
    work.mkdir()
    output = copy_example_inputs(work)
    env = {k: v for k, v in os.environ.items() if k not in (engine.MODEL_ENV, "PYTHONPATH")}
    done = run_readme_line("stemclean run examples/", work, env, bin_dir=bin_dir)
    assert done.returncode == 0, done.stderr
    check_first_run_output(output)

    info = subprocess.run([bin_dir / "stemclean", "info", "--json"], cwd=work, env=env, capture_output=True, text=True)
    details = json.loads(info.stdout)
    assert details["model_found"] and Path(details["model"]).is_relative_to(tmp_path / "venv")
    assert details["card"]["file"] == engine.DEFAULT_MODEL.name
