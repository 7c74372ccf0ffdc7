"""Every YAML config under recipes/ parses with the arguments of the recipe it is for: no typo goes unnoticed."""

import importlib.util
import re
from pathlib import Path

import pytest
from transformers import Seq2SeqTrainingArguments

from hf_seqkd.arguments import ModelArguments, parse_args
from hf_seqkd.data import DataArguments
from hf_seqkd.word_kd import KDSeq2SeqTrainingArguments

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in (REPO / "recipes").rglob("config.yaml"))


def recipe_arguments(config: Path):
    # The recipe named in the config's header comment (its launch line).
    found = re.search(r"recipes/(train_teacher|train_student|distill_data|prune_student)\.py", config.read_text())
    assert found, f"{config}: the header comment names no recipe"
    name = found.group(1)
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if name == "train_teacher":
        return (ModelArguments, DataArguments, Seq2SeqTrainingArguments)
    if name == "train_student":
        return (module.StudentArguments, ModelArguments, DataArguments, KDSeq2SeqTrainingArguments)
    if name == "distill_data":
        return (module.DistillDataArguments, module.SequenceDistillationConfig, DataArguments)
    return module.ARGUMENTS


def test_there_are_configs_for_every_table1_row():
    names = {config.parent.name for config in CONFIGS}
    quick = {f"student_{mode}" for mode in ("baseline", "word_kd", "seq_kd", "seq_inter", "combined")}
    assert quick | {"teacher", "teacher_4x1000", "seq_kd_data", "seq_inter_data"} <= names
    for size in ("2x500", "2x300"):
        assert {
            f"student_{size}_{mode}" for mode in ("baseline", "word_kd", "seq_kd", "seq_inter", "combined")
        } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_parses(config):
    parse_args(recipe_arguments(config), ["--config", str(config), "--output_dir", "/tmp/unused"])
