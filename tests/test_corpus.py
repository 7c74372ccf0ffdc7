"""Checks on the bundled Spanish-English Bible corpus (data/bible_es_en, built by
data/build_bible_corpus.py; see data/README.md)."""

import hashlib
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "bible_es_en"
SPLITS = ("train", "validation", "test")

# Exact counts of the committed build (also stated in data/README.md).
EXPECTED_PAIRS = {"train": 28227, "validation": 1050, "test": 1790}
# Plausible ranges, so a rebuild that moves a few verses fails loudly only here.
PAIR_RANGES = {"train": (27500, 29000), "validation": (1000, 1100), "test": (1700, 1900)}

TEST_BOOKS = {"Ruth", "Ecclesiastes", "Lamentations", "Amos", "Jonah", "John", "Galatians", "James"}
VALID_BOOKS = {"Judges", "Song of Songs", "Habakkuk", "Ephesians", "1 Peter"}
ID_RE = re.compile(r"^(?P<book>[1-3]? ?[A-Z][A-Za-z ]*?) (?P<c>\d+):(?P<v>\d+)(?:-(?:\d+:)?\d+)?$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    files = {split: str(CORPUS / f"{split}.jsonl.gz") for split in SPLITS}
    return datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path_factory.mktemp("hf_cache")))


def readme_table():
    """{split: (pairs, es_tokens, en_tokens)} parsed from data/README.md."""
    rows = re.findall(
        r"^\| (train|validation|test) \| (\d+) \| (\d+) \| (\d+) \|$",
        (DATA / "README.md").read_text(encoding="utf-8"),
        flags=re.M,
    )
    return {split: tuple(map(int, nums)) for split, *nums in rows}


def books(ds):
    return {ID_RE.match(i).group("book") for i in ds["id"]}


def test_schema(corpus):
    for split in SPLITS:
        assert set(corpus[split].column_names) == {"id", "translation"}
        assert set(corpus[split][0]["translation"]) == {"es", "en"}
    assert corpus["train"][0]["id"] == "Genesis 1:1"
    assert corpus["train"][0]["translation"]["es"].startswith("En el principio crió Dios")


def test_row_counts(corpus):
    table = readme_table()
    assert set(table) == set(SPLITS)
    for split in SPLITS:
        n = corpus[split].num_rows
        low, high = PAIR_RANGES[split]
        assert low <= n <= high
        assert n == EXPECTED_PAIRS[split] == table[split][0]


def test_token_counts_match_readme(corpus):
    table = readme_table()
    for split in SPLITS:
        pairs = corpus[split]["translation"]
        assert sum(len(p["es"].split()) for p in pairs) == table[split][1]
        assert sum(len(p["en"].split()) for p in pairs) == table[split][2]


def test_checksums_match_readme():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    for split in SPLITS:
        digest = hashlib.sha256((CORPUS / f"{split}.jsonl.gz").read_bytes()).hexdigest()
        assert f"{digest}  bible_es_en/{split}.jsonl.gz" in readme


def test_splits_are_whole_books(corpus):
    train, valid, test = (books(corpus[s]) for s in SPLITS)
    assert test == TEST_BOOKS
    assert valid == VALID_BOOKS
    assert not (train & valid or train & test or valid & test)
    assert len(train) == 66 - len(TEST_BOOKS) - len(VALID_BOOKS)


def test_ids_well_formed_and_unique(corpus):
    ids = [i for split in SPLITS for i in corpus[split]["id"]]
    assert all(ID_RE.match(i) for i in ids)
    assert len(ids) == len(set(ids))


def test_texts_clean(corpus):
    for split in SPLITS:
        for pair in corpus[split]["translation"]:
            for side in ("es", "en"):
                text = pair[side]
                assert text and text == text.strip(), pair
                assert "<" not in text and ">" not in text, pair
                assert "  " not in text, pair
