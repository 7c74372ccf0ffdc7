"""Loading parallel data (bundled, JSONL, TSV), tokenizing with .map, and YAML + CLI argument parsing."""

import gzip
import json

import pytest
from helpers import SOURCES, TARGETS
from transformers import Seq2SeqTrainingArguments

from hf_seqkd.arguments import ModelArguments, parse_args
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts, tokenize_parallel_dataset


def write_jsonl(path, pairs, compress=False):
    rows = "".join(json.dumps({"translation": {"es": es, "en": en}}) + "\n" for es, en in pairs)
    if compress:
        with gzip.open(path, "wt") as handle:
            handle.write(rows)
    else:
        path.write_text(rows)
    return str(path)


def test_bundled_corpus_loads_by_name():
    raw = load_parallel_dataset(DataArguments(dataset_name="bible_es_en", max_train_samples=5, max_eval_samples=3))
    assert (len(raw["train"]), len(raw["validation"]), len(raw["test"])) == (5, 3, 3)
    sources, targets = source_and_target_texts(raw["train"], DataArguments(dataset_name="bible_es_en"))
    assert sources[0].startswith("En el principio") and targets[0].startswith("In the beginning")


def test_local_jsonl_and_tsv_give_the_same_pairs(tmp_path):
    pairs = list(zip(SOURCES, TARGETS))
    tsv = tmp_path / "train.tsv"
    tsv.write_text("".join(f"{es}\t{en}\n" for es, en in pairs))
    from_tsv = load_parallel_dataset(DataArguments(train_file=str(tsv)))["train"]
    from_jsonl = load_parallel_dataset(
        DataArguments(train_file=write_jsonl(tmp_path / "train.jsonl.gz", pairs, compress=True))
    )["train"]
    assert from_tsv["translation"] == from_jsonl["translation"] == [{"es": es, "en": en} for es, en in pairs]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({}, ValueError, "No data"),
        ({"dataset_name": "bible_es_en", "train_file": "x.jsonl"}, ValueError, "not both"),
        ({"dataset_name": "bible_es_en", "target_lang": "es"}, ValueError, "both 'es'"),
        ({"train_file": "missing.jsonl"}, FileNotFoundError, "missing.jsonl"),
        ({"dataset_name": "bible_es_en", "source_lang": "de"}, ValueError, r"languages \['en', 'es'\], not \['de'\]"),
    ],
)
def test_bad_data_arguments_say_what_to_fix(kwargs, error, message):
    with pytest.raises(error, match=message):
        load_parallel_dataset(DataArguments(**kwargs))


def test_missing_translation_column_is_reported(tmp_path):
    path = tmp_path / "flat.jsonl"
    path.write_text(json.dumps({"es": "hola", "en": "hello"}) + "\n")
    with pytest.raises(ValueError, match="no `translation` column"):
        load_parallel_dataset(DataArguments(train_file=str(path)))


def test_tokenize_drops_long_training_pairs_and_truncates_evaluation(tmp_path, tokenizer, caplog):
    pairs = list(zip(SOURCES, TARGETS))
    lengths = [(len(tokenizer(es)["input_ids"]), len(tokenizer(text_target=en)["input_ids"])) for es, en in pairs]
    source_limit = sorted(s for s, _ in lengths)[len(pairs) // 2]
    target_limit = sorted(t for _, t in lengths)[-2]
    files = {name: write_jsonl(tmp_path / f"{name}.jsonl", pairs) for name in ("train", "validation")}
    args = DataArguments(
        train_file=files["train"],
        validation_file=files["validation"],
        max_source_length=source_limit,
        max_target_length=target_limit,
    )
    with caplog.at_level("INFO"):
        tokenized = tokenize_parallel_dataset(load_parallel_dataset(args), tokenizer, args)
    kept = sum(s <= source_limit and t <= target_limit for s, t in lengths)
    assert 0 < kept < len(pairs) - 1
    assert len(tokenized["train"]) == kept
    assert f"kept {kept} of {len(pairs)} pairs" in caplog.text
    assert len(tokenized["validation"]) == len(pairs)
    assert max(len(ids) for ids in tokenized["validation"]["input_ids"]) == source_limit
    row = tokenized["train"][0]
    assert set(row) == {"input_ids", "attention_mask", "labels"} and row["labels"][-1] == tokenizer.eos_token_id


def test_yaml_config_with_cli_overrides(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "dataset_name: bible_es_en\nhidden_size: 64\nlayers: 3\noutput_dir: out\nlearning_rate: 0.002\n"
        "predict_with_generate: true\n"
    )
    model_args, data_args, training_args = parse_args(
        (ModelArguments, DataArguments, Seq2SeqTrainingArguments),
        ["--config", str(config), "--hidden_size", "32", "--report_to", "none"],
    )
    assert model_args.hidden_size == 32 and model_args.layers == 3
    assert model_args.config_overrides() == {"hidden_size": 32, "encoder_layers": 3, "decoder_layers": 3}
    assert data_args.dataset_name == "bible_es_en"
    assert training_args.learning_rate == 0.002 and training_args.predict_with_generate


def test_unknown_yaml_key_is_an_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("dataset_name: bible_es_en\nhiden_size: 64\n")
    with pytest.raises(ValueError, match=r"unknown keys \['hiden_size'\]"):
        parse_args((ModelArguments, DataArguments, Seq2SeqTrainingArguments), ["--config", str(config)])


def write_plain_text(prefix, sources, targets, compress=()):
    """`prefix.es` and `prefix.en`, one sentence per line; the languages in `compress` as `.gz`."""
    for lang, lines in (("es", sources), ("en", targets)):
        text = "".join(f"{line}\n" for line in lines)
        if lang in compress:
            with gzip.open(f"{prefix}.{lang}.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            with open(f"{prefix}.{lang}", "w", encoding="utf-8") as handle:
                handle.write(text)
    return str(prefix)


def test_plain_parallel_text_by_prefix_plain_and_gz(tmp_path):
    (tmp_path / "corpus").mkdir()
    write_plain_text(tmp_path / "corpus" / "train", SOURCES, TARGETS)
    write_plain_text(tmp_path / "corpus" / "valid", SOURCES[:2], TARGETS[:2], compress=("es", "en"))
    write_plain_text(tmp_path / "corpus" / "test", SOURCES[2:], TARGETS[2:], compress=("en",))
    # A line with a Unicode line separator is one line (only newlines end lines), and lines empty on both sides go.
    (tmp_path / "corpus" / "test.es").write_text("a\u2028b\n\n" + "".join(f"{s}\n" for s in SOURCES[2:]))
    (tmp_path / "corpus" / "test.en.gz").unlink()
    (tmp_path / "corpus" / "test.en").write_text("ab\n \n" + "".join(f"{t}\r\n" for t in TARGETS[2:]))
    args = DataArguments(
        train_file=str(tmp_path / "corpus" / "train"),
        validation_file=str(tmp_path / "corpus" / "valid"),
        test_file=str(tmp_path / "corpus" / "test"),
        source_lang="es",
        target_lang="en",
    )
    raw = load_parallel_dataset(args)
    assert raw["train"]["translation"] == [{"es": es, "en": en} for es, en in zip(SOURCES, TARGETS)]
    assert source_and_target_texts(raw["validation"], args) == (SOURCES[:2], TARGETS[:2])
    assert source_and_target_texts(raw["test"], args) == (["a\u2028b", *SOURCES[2:]], ["ab", *TARGETS[2:]])


@pytest.mark.parametrize(
    "layout, error, message",
    [
        (
            "missing_target",
            FileNotFoundError,
            r"needs one file per language, .*train\.es and .*train\.en .* no .*train\.en or .*train\.en\.gz",
        ),
        ("missing_both", FileNotFoundError, r"no .*train\.es or .*train\.es\.gz"),
        ("both_plain_and_gz", ValueError, r"Both .*train\.en and .*train\.en\.gz exist"),
        ("line_counts", ValueError, r"train\.es has 6 lines but .*train\.en has 5"),
        (
            "one_sided",
            ValueError,
            r"empty on one side only: line 2, 5\. E\.g\. line 2 is empty in .*train\.en but reads",
        ),
        ("not_utf8", ValueError, r"train\.es, line 3, is not UTF-8"),
    ],
)
def test_plain_text_errors_name_the_files_and_lines(tmp_path, layout, error, message):
    prefix = tmp_path / "train"
    targets = list(TARGETS)
    if layout == "line_counts":
        targets = targets[:5]
    if layout == "one_sided":
        targets[1] = targets[4] = "  "
    write_plain_text(prefix, SOURCES, targets)
    if layout == "missing_target":
        (tmp_path / "train.en").unlink()
    if layout == "missing_both":
        (tmp_path / "train.en").unlink()
        (tmp_path / "train.es").unlink()
    if layout == "both_plain_and_gz":
        write_plain_text(prefix, SOURCES, TARGETS, compress=("en",))
    if layout == "not_utf8":
        (tmp_path / "train.es").write_bytes("\n".join(SOURCES).encode("utf-8").replace(b"dijo", b"\xe9") + b"\n")
    with pytest.raises(error, match=message):
        load_parallel_dataset(DataArguments(train_file=str(prefix), source_lang="es", target_lang="en"))
