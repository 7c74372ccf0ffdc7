"""A wheel built from the checkout carries the card templates and the bundled corpus, and works from any folder."""

import importlib.util
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="building the wheel needs setuptools")
def test_wheel_ships_cards_and_corpus_and_works_outside_the_checkout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", str(REPO),
         "--wheel-dir", str(tmp_path / "dist")],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("hf_seqkd-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"hf_seqkd/hub_cards/teacher_model.md", "hf_seqkd/bible_es_en/train.jsonl.gz"} <= set(names)
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import hf_seqkd.data as data, hf_seqkd.hub as hub\n"
        "from hf_seqkd.data import DataArguments, load_parallel_dataset\n"
        "print(data.BUNDLED_CORPUS); print(hub.HUB_CARDS)\n"
        "splits = load_parallel_dataset(DataArguments(dataset_name='bible_es_en', source_lang='es', target_lang='en',"
        " max_eval_samples=3))\n"
        "print(len(splits['test']))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), HF_DATASETS_CACHE=str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    corpus, cards, test_rows = out.stdout.split()
    assert corpus == str(tmp_path / "site" / "hf_seqkd" / "bible_es_en") and test_rows == "3"
    assert cards == str(tmp_path / "site" / "hf_seqkd" / "hub_cards")


def test_no_script_changes_the_import_path():
    """Recipes, the Table 1 driver and benchmarks import the installed hf_seqkd: none edits sys.path or PYTHONPATH."""
    scripts = [*(REPO / "recipes").rglob("*.py"), *(REPO / "benchmarks").glob("*.py"), REPO / "quickstart.sh"]
    assert len(scripts) > 10
    patching = [path.name for path in scripts if re.search(r"sys\.path|PYTHONPATH", path.read_text())]
    assert not patching, f"{patching} change the import path"
