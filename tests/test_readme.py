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
    # ... in a new virtual environment (what a newcomer gets), and again on the oldest releases setup.cfg allows.
    assert ci.index('python3 -m venv "$VENVS/newest"') < ci.index('pip install -e ".[test]"')
    oldest = ci.index('pip install --quiet -c .ci/oldest.txt -e ".[test]"')
    assert ci.index("HF_HUB_OFFLINE=1 python -m pytest -q", oldest) > oldest


def test_oldest_constraints_are_the_lower_bounds_of_setup_cfg():
    """.ci/oldest.txt pins each dependency at the lowest version setup.cfg declares: the range CI tests."""
    import configparser

    from packaging.requirements import Requirement

    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    declared = {}
    for line in setup["options"]["install_requires"].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            declared[requirement.name.lower().replace("-", "_")] = lower[0]
    pinned = {}
    for line in (REPO / ".ci" / "oldest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower().replace("-", "_")] = version
    # torch stays at the local CPU wheel (2.13.0) in both runs.
    assert {name: version for name, version in declared.items() if name != "torch"} == pinned


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
