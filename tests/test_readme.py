"""README commands: CI runs exactly the install and test commands, and every path the README names exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def bash_blocks(text):
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert 'pip install -e ".[test]"' in bash_blocks(README) and 'pip install -e ".[test]"' in ci
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in bash_blocks(README)
    assert "HF_HUB_OFFLINE=1 python -m pytest -q" in ci
    assert ci.index('pip install -e ".[test]"') < ci.index("HF_HUB_OFFLINE=1 python -m pytest -q")
    assert any(line.startswith("python -m pip install") and "torch==2.13.0" in line for line in ci)


def test_every_path_named_in_readme_and_recipes_exists():
    recipe_texts = [path.read_text() for path in (REPO / "recipes").rglob("*.py")]
    named = set()
    for text in [README, *recipe_texts]:
        for match in re.finditer(r"\b((?:recipes|benchmarks|data|hf_seqkd|tests)/[\w./-]*\w)", text):
            if not text[match.end() :].startswith("*"):  # a glob such as recipes/bible_es_en/student_*/
                named.add(match.group(1))
    named = {path for path in named if not path.startswith(("data/bible_es_en/teacher",))}
    assert "recipes/train_teacher.py" in named
    missing = [path for path in sorted(named) if not (REPO / path).exists()]
    assert not missing, f"named but missing: {missing}"
