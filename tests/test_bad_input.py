"""Bad input and faults: each gets a clear error (naming the file, line or argument, and the fix) or the handling a
careful user expects, before any expensive step; nothing good is lost. The README table "What bad input gets" lists
them."""

import importlib.util
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict
from helpers import SOURCES, TARGETS, tiny_model
from safetensors.torch import load_file
from transformers import Seq2SeqTrainingArguments

from hf_seqkd import checks
from hf_seqkd.arguments import ModelArguments, parse_args
from hf_seqkd.data import DataArguments, load_parallel_dataset
from hf_seqkd.evaluation import reference_perplexity
from hf_seqkd.training import NonFiniteLossError, run_training
from hf_seqkd.word_kd import KDSeq2SeqTrainingArguments

REPO = Path(__file__).resolve().parent.parent


def load(path, **kwargs):
    return load_parallel_dataset(DataArguments(train_file=str(path), **kwargs))["train"]


def load_recipe(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


# ---- Data files and rows ------------------------------------------------------------------------------------------


def test_tsv_with_three_fields_is_an_error_not_shifted_columns(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("1\thola\thello\n2\tadiós\tbye\n")
    with pytest.raises(ValueError, match=r"train.tsv: 2 lines do not have exactly 2 .* line 1 has 3, line 2 has 3"):
        load(path)


def test_tsv_fields_stay_text_and_lines_end_at_newline_only(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("NA\t1\r\nuno\rdos\tone two\nnull\tTrue\n".encode())
    pairs = load(path)["translation"]
    assert list(pairs) == [{"es": "NA", "en": "1"}, {"es": "uno\rdos", "en": "one two"}, {"es": "null", "en": "True"}]


def test_whitespace_only_pairs_and_empty_tsv_fields_are_dropped_and_counted(tmp_path, caplog):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("hola\thello\n \tblank source\nsolo\t\n\nadiós\tbye\n")
    with caplog.at_level(logging.WARNING):
        pairs = load(tsv)["translation"]
    assert [pair["es"] for pair in pairs] == ["hola", "adiós"]
    assert "train.tsv: dropped 3 of 5 pairs whose source or target is empty or only whitespace (line 2, line 3, " in (
        caplog.text
    )
    jsonl = tmp_path / "blank.jsonl"
    jsonl.write_text(json.dumps({"translation": {"es": "\t ", "en": "x"}}) + "\n")
    with pytest.raises(ValueError, match="every pair has an empty source or target"):
        load(jsonl)


def test_null_target_or_wrong_keys_past_the_first_row_name_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [{"translation": {"es": "a", "en": "b"}}, {"translation": {"es": "c", "en": None}}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")  # a blank line before the bad row
    with pytest.raises(ValueError, match=r"train.jsonl, line 3: `translation` must hold text for 'es' and 'en', but"):
        load(path)
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"translation": {"es": "c", "de": "d"}}) + "\n")
    with pytest.raises(ValueError, match=r"line 2: .* is \{'es': 'c', 'de': 'd'\}.*--source_lang/--target_lang"):
        load(path)


@pytest.mark.parametrize("name", ["train.jsonl", "train.tsv", "train.jsonl.gz"])
def test_empty_file_is_an_error_naming_it(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".gz"):
        import gzip

        with gzip.open(path, "wt") as handle:
            handle.write("\n")
    else:
        path.write_text("")
    with pytest.raises(ValueError, match=f"{name} is empty"):
        load(path)


@pytest.mark.parametrize("name", ["train.jsonl", "train.tsv"])
def test_non_utf8_file_names_the_file_and_line(tmp_path, name):
    path = tmp_path / name
    good = json.dumps({"translation": {"es": "a", "en": "b"}}) if name.endswith("jsonl") else "a\tb"
    path.write_bytes(good.encode() + b"\n" + "canción\tsong\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{name}, line 2: not UTF-8"):
        load(path)


def test_unparsable_jsonl_names_the_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"translation": {"es": "a", "en": "b"}}\n{"translation": \n')
    with pytest.raises(ValueError, match="Cannot read .*train.jsonl as JSON Lines"):
        load(path)


def test_dataset_folder_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder .*recipes/distill_data.py"):
        load_parallel_dataset(DataArguments(dataset_name=str(tmp_path / "seq_kd" / "dataset")))


# ---- Arguments: paths and numbers ---------------------------------------------------------------------------------


def parse(*argv):
    return parse_args((ModelArguments, DataArguments, KDSeq2SeqTrainingArguments), list(argv))


BASE = ["--dataset_name", "bible_es_en", "--output_dir", "out", "--report_to", "none"]


@pytest.mark.parametrize(
    "path, message",
    [
        ("./missing_teacher", "--teacher_model_name_or_path ./missing_teacher: no such folder"),
        ("outputs/bible_es_en/missing", "outputs/bible_es_en/missing: no such folder"),
        ("someone/not-cached", "no such folder, and not a Hub model in the local cache"),
    ],
)
def test_model_paths_that_do_not_exist(path, message, monkeypatch):
    monkeypatch.setattr(checks, "is_offline_mode", lambda: True)
    with pytest.raises(FileNotFoundError, match=message):
        parse(*BASE, "--teacher_model_name_or_path", path)


def test_folder_without_a_saved_model_or_tokenizer(tmp_path):
    (tmp_path / "run" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="holds no saved model .*the run did not finish"):
        parse(*BASE, "--model_name_or_path", str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError, match="holds no saved tokenizer"):
        parse(*BASE, "--tokenizer_name_or_path", str(tmp_path))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_learning_rate_is_an_argument_error(value):
    with pytest.raises(ValueError, match=f"--learning_rate {value}: must be a finite number"):
        parse(*BASE, "--learning_rate", value)


def test_seq_kd_student_before_its_data_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="--seq_kd_dataset .*: no such folder. Make it first with recipes/"):
        load_recipe("train_student").main(
            [*BASE, "--mode", "seq_kd", "--seq_kd_dataset", str(tmp_path / "seq_kd_data" / "dataset")]
        )
    (tmp_path / "distilled" / "shards").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="distill_data.py has not finished there"):
        checks.check_distilled_dataset(str(tmp_path / "distilled"), "--seq_kd_dataset")


# ---- Training: divergence, checkpoints, resuming ------------------------------------------------------------------


@pytest.fixture
def train_dataset(tokenizer):
    features = tokenizer(SOURCES)
    features["labels"] = tokenizer(text_target=TARGETS)["input_ids"]
    return Dataset.from_dict(dict(features))


def train(model, tokenizer, dataset, out, **overrides):
    kwargs = dict(
        output_dir=str(out), per_device_train_batch_size=3, max_steps=4, learning_rate=0.01, save_strategy="steps",
        save_steps=2, report_to="none", logging_steps=1, use_cpu=True, seed=0,
    )  # fmt: skip
    kwargs.update(overrides)
    return run_training(model, tokenizer, dataset, None, Seq2SeqTrainingArguments(**kwargs))


def test_diverging_training_stops_and_keeps_the_last_good_checkpoint(tmp_path, tokenizer, train_dataset):
    model = tiny_model(vocab_size=len(tokenizer)).train()
    out = tmp_path / "out"
    # Adam's steps of 1e36 overflow the loss (inf) from step 2 on, while the weights stay finite: the Trainer's
    # logging_nan_inf_filter would have logged that loss as 0 and trained on.
    with pytest.raises(
        NonFiniteLossError, match=r"diverged at step 2: the training loss is inf.*Lower --learning_rate"
    ):
        train(model, tokenizer, train_dataset, out, learning_rate=1e36, save_steps=1, max_steps=6)
    assert not (out / "model.safetensors").exists()  # no final model
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert [path.name for path in checkpoints] == ["checkpoint-1"]
    for checkpoint in checkpoints:
        assert all(tensor.isfinite().all() for tensor in load_file(checkpoint / "model.safetensors").values())


def test_diverging_recipe_writes_no_results_card_or_model(tmp_path):
    out = tmp_path / "teacher"
    argv = [
        "--dataset_name", "bible_es_en", "--max_train_samples", "16", "--max_eval_samples", "2",
        "--tokenizer_vocab_size", "100", "--embedding_size", "8", "--hidden_size", "8", "--layers", "1",
        "--per_device_train_batch_size", "8", "--max_steps", "4", "--learning_rate", "1e38",
        "--save_strategy", "steps", "--save_steps", "1", "--report_to", "none", "--output_dir", str(out),
    ]  # fmt: skip
    with pytest.raises(NonFiniteLossError):
        load_recipe("train_teacher").main(argv)
    assert not any((out / name).exists() for name in ("model.safetensors", "eval_results.json", "README.md"))


def test_huge_finite_loss_warns_that_training_diverges(tmp_path, tokenizer, train_dataset, caplog):
    model = tiny_model(vocab_size=len(tokenizer)).train()
    with caplog.at_level(logging.WARNING):
        train(model, tokenizer, train_dataset, tmp_path / "out", learning_rate=1e30, optim="sgd", save_strategy="no")
    assert "over 10 times that of a uniform guess over the 120 tokens" in caplog.text


def test_perplexity_overflow_is_inf_with_a_warning(tokenizer, monkeypatch, caplog):
    import hf_seqkd.evaluation as evaluation

    monkeypatch.setattr(evaluation, "token_nll", lambda logits, labels: torch.full(labels.shape, 1e4))
    with caplog.at_level(logging.WARNING):
        ppl = reference_perplexity(tiny_model(vocab_size=len(tokenizer)), tokenizer, SOURCES[:2], TARGETS[:2])
    assert ppl == math.inf and "the model is broken" in caplog.text


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, tokenizer, train_dataset, caplog):
    out = tmp_path / "out"
    train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, train_dataset, out)
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # killed while saving
    with caplog.at_level(logging.WARNING):
        trainer = train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, train_dataset, out, max_steps=6)
    assert "checkpoint-4 is incomplete (model.safetensors is truncated" in caplog.text
    assert "resuming from checkpoint-2 instead" in caplog.text
    assert trainer.state.global_step == 6 and not checks.checkpoint_problems(out / "checkpoint-4")


def test_no_intact_checkpoint_is_an_error(tmp_path):
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(ValueError, match="none is intact .*checkpoint-3: no trainer_state.json"):
        checks.last_intact_checkpoint(tmp_path)


def test_resuming_with_another_model_size_names_the_checkpoint_and_sizes(tmp_path, tokenizer, train_dataset):
    out = tmp_path / "out"
    train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, train_dataset, out, max_steps=2)
    bigger = tiny_model(vocab_size=len(tokenizer), hidden_size=32).train()
    with pytest.raises(ValueError, match=r"checkpoint-2 holds a model of another size .*hidden_size 16 there, 32 now"):
        train(bigger, tokenizer, train_dataset, out, max_steps=4)


def test_deleted_optimizer_state_resumes_with_a_warning(tmp_path, tokenizer, train_dataset, caplog):
    out = tmp_path / "out"
    train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, train_dataset, out, max_steps=2)
    (out / "checkpoint-2" / "optimizer.pt").unlink()
    with caplog.at_level(logging.WARNING):
        trainer = train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, train_dataset, out, max_steps=3)
    assert "checkpoint-2 has no optimizer.pt: the optimizer (Adam's moments) restarts fresh" in caplog.text
    assert trainer.state.global_step == 3


# ---- Word-KD: the student's tokenizer must be the teacher's -------------------------------------------------------


def test_online_word_kd_refuses_a_same_size_tokenizer_that_maps_tokens_differently(tmp_path, tokenizer):
    teacher = tmp_path / "teacher"
    model = tiny_model(vocab_size=len(tokenizer))
    model.save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    other = tmp_path / "other_tokenizer"
    tokenizer.save_pretrained(other)
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    first, second = [token for token, index in vocab.items() if index > 10][:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # same size, two ids swapped
    (other / "tokenizer.json").write_text(json.dumps(spec))
    argv = [
        "--dataset_name", "bible_es_en", "--max_train_samples", "8", "--max_eval_samples", "2", "--mode", "word_kd",
        "--teacher_model_name_or_path", str(teacher), "--tokenizer_name_or_path", str(other),
        "--output_dir", str(tmp_path / "student"), "--report_to", "none",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="maps tokens to other ids than the student's"):
        load_recipe("train_student").main(argv)
    assert not (tmp_path / "student" / "checkpoint-1").exists()


# ---- distill_data.py ----------------------------------------------------------------------------------------------


@pytest.fixture
def teacher_folder(tmp_path, tokenizer):
    model = tiny_model(seed=3, vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = 6
    model.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    return str(tmp_path / "teacher")


def test_distill_data_checks_references_before_generating(tmp_path, teacher_folder):
    data = tmp_path / "train.jsonl"
    rows = [{"translation": {"es": s, "en": t}} for s, t in zip(SOURCES, TARGETS)]
    rows[4]["translation"]["en"] = None
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "distilled"
    argv = ["--teacher_model_name_or_path", teacher_folder, "--train_file", str(data), "--output_dir", str(out)]
    with pytest.raises(ValueError, match="train.jsonl, line 5: `translation` must hold text for 'es' and 'en'"):
        load_recipe("distill_data").main(argv)
    assert not (out / "shards").exists()


def test_distill_data_rerun_keeps_the_measured_speed(tmp_path, teacher_folder):
    argv = [
        "--teacher_model_name_or_path", teacher_folder, "--dataset_name", "bible_es_en", "--max_train_samples", "4",
        "--max_eval_samples", "1", "--output_dir", str(tmp_path / "out"), "--num_beams", "2", "--shard_size", "2",
    ]  # fmt: skip
    recipe = load_recipe("distill_data")
    recipe.main(argv)
    record = tmp_path / "out" / "dataset" / "distillation.json"
    first = json.loads(record.read_text())["splits"]["train"]
    assert first["sentences_per_sec"] > 0
    assert json.loads(record.read_text())["dtype"] == "float32"  # the recipe's default
    recipe.main(argv)  # every shard is done: nothing is measured
    assert json.loads(record.read_text())["splits"]["train"] == first
    card = (tmp_path / "out" / "dataset" / "README.md").read_text()
    assert "0.0 sentences/s" not in card and f"{first['sentences_per_sec']:.1f} sentences/s" in card


def test_distilled_folder_given_as_the_output_dir(tmp_path):
    DatasetDict({"train": Dataset.from_dict({"translation": [{"es": "a", "en": "b"}]})}).save_to_disk(
        tmp_path / "out" / "dataset"
    )
    with pytest.raises(FileNotFoundError, match="is distill_data.py's output_dir: give .*dataset"):
        checks.check_distilled_dataset(str(tmp_path / "out"), "--seq_kd_dataset")
