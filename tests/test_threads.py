"""OpenMP waits passively unless the user chose otherwise: hf_seqkd sets it before torch loads, in each entry point."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TORCH_LOADERS = {"torch", "transformers", "accelerate", "datasets", "evaluate", "numpy", "sacrebleu"}


@pytest.mark.parametrize("chosen, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_hf_seqkd_sets_a_passive_wait_policy_unless_one_is_set(chosen, expected):
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if chosen:
        env["OMP_WAIT_POLICY"] = chosen
    code = "import sys, os, hf_seqkd; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected


@pytest.mark.parametrize("script", sorted((REPO / "recipes").glob("*.py")), ids=lambda p: p.name)
def test_recipes_import_hf_seqkd_before_anything_that_loads_torch(script):
    for node in ast.parse(script.read_text()).body:
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        roots = {name.split(".")[0] for name in names}
        if "hf_seqkd" in roots:
            return
        assert not roots & TORCH_LOADERS, f"{script.name} imports {roots & TORCH_LOADERS} before hf_seqkd"
    pytest.fail(f"{script.name} does not import hf_seqkd")
