"""Every YAML config under recipes/ parses with the arguments of the recipe it is for: no typo goes unnoticed."""

import importlib.util
import re
from pathlib import Path

import pytest

from hf_seqkd.arguments import parse_args
from hf_seqkd.modes import MODES

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / "recipes").rglob("config.yaml"))


def recipe_arguments(config: Path):
    # The recipe named in the config's header comment (its launch line).
    found = re.search(r"recipes/(train_teacher|train_student|distill_data|prune_student)\.py", config.read_text())
    assert found, f"{config}: the header comment names no recipe"
    return script_arguments(REPO / "recipes" / f"{found.group(1)}.py")


def script_arguments(script: Path):
    """The argument dataclasses a recipe (or benchmark) script parses: its `ARGUMENTS`."""
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ARGUMENTS


def test_there_are_configs_for_every_table1_row():
    names = {config.parent.name for config in CONFIGS}
    quick = {f"student_{mode}" for mode in MODES}
    assert quick | {"teacher", "teacher_4x1000", "seq_kd_data", "seq_inter_data"} <= names
    for size in ("2x500", "2x300"):
        assert {f"student_{size}_{mode}" for mode in MODES} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_parses(config):
    # The configs name the outputs of earlier stages (the teacher, its Seq-KD data), which do not exist here.
    parse_args(recipe_arguments(config), ["--config", str(config), "--output_dir", "/tmp/unused"], check_inputs=False)
