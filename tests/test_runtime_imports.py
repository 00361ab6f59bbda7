"""The runtime must not need torch: only stemclean/train may import it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "stemclean"


def test_no_runtime_module_imports_torch():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "train" in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(PACKAGE)}: {n}" for n in names if n.split(".")[0] == "torch"]
    assert offenders == []


def test_cli_and_engine_load_without_torch():
    code = "import sys, stemclean, stemclean.cli, stemclean.engine, stemclean.batch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
