"""Seq-KD / Seq-Inter data: equal to plain searches written here, cached, sharded, resumable, any teacher."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset, load_dataset, load_from_disk
from helpers import SOURCES, TARGETS, tiny_marian, tiny_model
from sacrebleu.metrics import BLEU
from transformers import GPT2Config, GPT2LMHeadModel

from hf_seqkd.data import DataArguments, load_parallel_dataset
from hf_seqkd.modes import SEQUENCE_DATA
from hf_seqkd.seq_kd import (
    SequenceDistillationConfig,
    distill_dataset,
    distill_in_shards,
    distilled_num_beams,
    read_distillation_record,
    write_distillation_record,
)
from hf_seqkd.utils import sequence_log_probs

REPO = Path(__file__).resolve().parent.parent


def parallel_file(tmp_path, sources=SOURCES, targets=TARGETS):
    """A file-backed dataset (as users load theirs), so that datasets' cache is in play."""
    path = tmp_path / "data.jsonl"
    rows = [{"id": f"s{i}", "translation": {"es": s, "en": t}} for i, (s, t) in enumerate(zip(sources, targets))]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_dataset("json", data_files=str(path), cache_dir=str(tmp_path / "cache"))["train"]


@pytest.fixture
def teacher(tokenizer):
    model = tiny_model(seed=11, vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = 10
    return model


def beam_search(teacher, tokenizer, source, num_beams, num_return_sequences=1):
    batch = tokenizer([source], return_tensors="pt")
    sequences = teacher.generate(**batch, num_beams=num_beams, num_return_sequences=num_return_sequences)
    return batch, sequences


# No warning a user cannot act on (datasets' `Dataset.sort` raised pyarrow's FutureWarning about `null_placement`).
@pytest.mark.filterwarnings("error::FutureWarning", "error::DeprecationWarning")
def test_seq_kd_targets_are_the_teachers_beam_output(tmp_path, tokenizer, teacher):
    dataset = parallel_file(tmp_path)
    distilled = distill_dataset(dataset, teacher, tokenizer, SequenceDistillationConfig(batch_size=4), "es", "en")
    assert distilled.column_names == ["translation", "reference", "teacher_log_prob", "id"]
    assert distilled["id"] == dataset["id"] and distilled["reference"] == TARGETS
    for row, source in zip(distilled, SOURCES):
        batch, sequences = beam_search(teacher, tokenizer, source, num_beams=5)
        assert row["translation"]["es"] == source
        assert row["translation"]["en"] == tokenizer.decode(sequences[0], skip_special_tokens=True).strip()
        log_prob, _ = sequence_log_probs(teacher, batch, sequences, torch.tensor([tokenizer.eos_token_id]))
        assert row["teacher_log_prob"] == pytest.approx(log_prob.item(), abs=1e-4)


def test_seq_inter_keeps_the_k_best_hypothesis_closest_to_the_reference(tmp_path, tokenizer, teacher):
    dataset = parallel_file(tmp_path)
    config = SequenceDistillationConfig(mode="seq_inter", num_beams=6, batch_size=4)
    assert SequenceDistillationConfig(mode="seq_inter").num_beams == 35  # the paper's K
    distilled = distill_dataset(dataset, teacher, tokenizer, config, "es", "en")
    bleu = BLEU(effective_order=True)
    for row, source, reference in zip(distilled, SOURCES, TARGETS):
        _, sequences = beam_search(teacher, tokenizer, source, num_beams=6, num_return_sequences=6)
        hypotheses = [text.strip() for text in tokenizer.batch_decode(sequences, skip_special_tokens=True)]
        scores = [bleu.sentence_score(h, [reference]).score for h in hypotheses]
        best = max(range(6), key=lambda k: (scores[k], -k))
        assert (row["rank"], row["translation"]["en"]) == (best, hypotheses[best])
        assert row["sentence_bleu"] == pytest.approx(scores[best])


def test_rerun_is_served_from_cache_and_a_changed_teacher_is_not(tmp_path, tokenizer, teacher, monkeypatch):
    dataset = parallel_file(tmp_path)
    config = SequenceDistillationConfig(batch_size=4)
    calls = []
    original = teacher.generate
    monkeypatch.setattr(teacher, "generate", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = distill_dataset(dataset, teacher, tokenizer, config, "es", "en")
    assert len(calls) == 2
    again = distill_dataset(dataset, teacher, tokenizer, config, "es", "en")
    assert len(calls) == 2 and again["translation"] == first["translation"]
    with torch.no_grad():
        teacher.lm_head.bias[5] += 50.0  # now token 5 everywhere
    changed = distill_dataset(dataset, teacher, tokenizer, config, "es", "en")
    assert len(calls) == 4 and changed["translation"] != first["translation"]


def test_shards_resume_and_equal_one_pass(tmp_path, tokenizer, teacher, monkeypatch, caplog):
    dataset = parallel_file(tmp_path)
    config = SequenceDistillationConfig(batch_size=2)
    whole = distill_dataset(dataset, teacher, tokenizer, config, "es", "en")
    work = tmp_path / "shards"
    caplog.set_level(logging.INFO, logger="hf_seqkd")
    sharded, stats = distill_in_shards(dataset, teacher, tokenizer, config, "es", "en", work, shard_size=4)
    # Progress of the whole run, beside each shard's own bar: shards done, speed, time left.
    assert "Shard 1/2 saved: 1 of this process's 2 shards done" in caplog.text
    assert re.search(
        r"Shard 2/2 saved: 2 of this process's 2 shards done, [\d.]+ sentences/s, about 0 s left", caplog.text
    )
    assert stats["sentences"] == 6 and sorted(p.name for p in work.glob("shard-*")) == [
        "shard-00000-of-00002",
        "shard-00001-of-00002",
    ]
    assert_same_rows(sharded, whole)

    # A killed run: the second shard never finished. The re-run computes only that one.
    shutil.rmtree(work / "shard-00001-of-00002")
    resumed, stats = distill_in_shards(dataset, teacher, tokenizer, config, "es", "en", work, shard_size=4)
    assert stats["sentences"] == 2
    assert_same_rows(resumed, whole)

    with pytest.raises(ValueError, match="another teacher, other settings or other data"):
        distill_in_shards(dataset, teacher, tokenizer, SequenceDistillationConfig(num_beams=3), "es", "en", work)


def test_any_seq2seq_teacher_with_its_own_tokenizer(tmp_path, tokenizer):
    """A tiny MarianMT built from a config (no download), whose decoder starts with the pad token."""
    marian = tiny_marian(tokenizer)
    marian.generation_config.max_new_tokens = 8
    distilled = distill_dataset(parallel_file(tmp_path), marian, tokenizer, SequenceDistillationConfig(), "es", "en")
    for row, source in zip(distilled, SOURCES):
        _, sequences = beam_search(marian, tokenizer, source, num_beams=5)
        assert row["translation"]["en"] == tokenizer.decode(sequences[0], skip_special_tokens=True).strip()
        assert row["teacher_log_prob"] < 0


def test_bad_input_fails_before_any_generation(tmp_path, tokenizer, teacher):
    config = SequenceDistillationConfig()
    with pytest.raises(ValueError, match=r"2 empty source sentences \(rows \[1, 3\]\)"):
        data = Dataset.from_list([{"translation": {"es": s, "en": "x"}} for s in ["a", "", "b", "  "]])
        distill_dataset(data, teacher, tokenizer, config, "es", "en")
    with pytest.raises(ValueError, match="no `translation` column"):
        distill_dataset(Dataset.from_list([{"es": "a", "en": "b"}]), teacher, tokenizer, config, "es", "en")
    with pytest.raises(ValueError, match="have no 'es' or no 'de' text"):
        distill_dataset(parallel_file(tmp_path), teacher, tokenizer, config, "es", "de")
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=len(tokenizer)))
    with pytest.raises(ValueError, match="not a seq2seq model"):
        distill_dataset(parallel_file(tmp_path), gpt2, tokenizer, config, "es", "en")
    no_eos = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, pad_token="<pad>")
    with pytest.raises(ValueError, match="no EOS token"):
        distill_dataset(parallel_file(tmp_path), teacher, no_eos, config, "es", "en")
    with pytest.raises(ValueError, match="mode must be one of"):
        SequenceDistillationConfig(mode="word_kd")


def assert_same_rows(distilled, reference):
    """Same rows, translations and ids exactly; the teacher's log-probabilities to float32 rounding, because shards
    batch other sentences together than one pass does, and some CPUs' kernels round differently per matrix shape."""
    rows, expected = distilled.to_list(), reference.to_list()
    assert [{**row, "teacher_log_prob": None} for row in rows] == [
        {**row, "teacher_log_prob": None} for row in expected
    ]
    assert [row["teacher_log_prob"] for row in rows] == pytest.approx(
        [row["teacher_log_prob"] for row in expected], rel=1e-5
    )


def run_recipe(launcher, tmp_path, name, extra):
    command = [
        *launcher,
        "recipes/distill_data.py",
        "--teacher_model_name_or_path",
        str(tmp_path / "teacher"),
        "--dataset_name",
        "bible_es_en",
        "--max_train_samples",
        "10",
        "--max_eval_samples",
        "2",
        "--output_dir",
        str(tmp_path / name),
        "--shard_size",
        "3",
        "--num_beams",
        "3",
        "--batch_size",
        "4",
        *extra,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return load_from_disk(tmp_path / name / "dataset"), result.stdout


def test_recipe_two_processes_equal_one_and_write_a_card(tmp_path, tokenizer, teacher):
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    one, stdout = run_recipe([sys.executable], tmp_path, "one", [])
    assert "train: 10 pairs, BLEU of new targets vs references" in stdout
    two, _ = run_recipe([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"], tmp_path, "two", [])
    assert_same_rows(two["train"], one["train"])
    assert one["validation"]["translation"] == two["validation"]["translation"]  # copied unchanged
    card = (tmp_path / "one" / "dataset" / "README.md").read_text()
    assert "task_categories:\n- translation" in card and "| beam size K | 3 |" in card
    assert "Seq-KD" in card and "corpus BLEU of the new targets" in card
    # The training recipes read the folder as --dataset_name.
    reloaded = load_parallel_dataset(DataArguments(dataset_name=str(tmp_path / "one" / "dataset")))
    assert reloaded["train"]["translation"] == one["train"]["translation"]


def test_push_to_hub_uploads_the_dataset_and_its_card(tmp_path, tokenizer, teacher, monkeypatch):
    """The push path up to the upload calls, with the Hub client replaced: nothing leaves the machine."""
    import importlib.util

    from datasets import DatasetDict
    from huggingface_hub import DatasetCard

    uploads = []
    monkeypatch.setattr(DatasetDict, "push_to_hub", lambda self, repo_id, **kw: uploads.append(("data", repo_id, kw)))
    monkeypatch.setattr(DatasetCard, "push_to_hub", lambda self, repo_id, **kw: uploads.append(("card", repo_id, kw)))
    teacher.save_pretrained(tmp_path / "teacher")
    tokenizer.save_pretrained(tmp_path / "teacher")
    spec = importlib.util.spec_from_file_location("distill_data", REPO / "recipes" / "distill_data.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    common = ["--teacher_model_name_or_path", str(tmp_path / "teacher"), "--dataset_name", "bible_es_en",
              "--max_train_samples", "3", "--max_eval_samples", "1", "--output_dir", str(tmp_path / "out"),
              "--num_beams", "2", "--push_to_hub"]  # fmt: skip
    with pytest.raises(ValueError, match="--hub_dataset_id"):
        recipe.main(common)
    recipe.main(common + ["--hub_dataset_id", "someone/bible-seq-kd", "--hub_private_repo"])
    assert [(kind, repo) for kind, repo, _ in uploads] == [
        ("data", "someone/bible-seq-kd"),
        ("card", "someone/bible-seq-kd"),
    ]
    assert uploads[0][2]["private"] is True
    card = DatasetCard.load(tmp_path / "out" / "dataset" / "README.md")
    assert card.data.task_categories == ["translation"] and "someone/bible-seq-kd" in card.text


def test_k_defaults_to_the_papers_and_a_data_folder_says_its_own(tmp_path):
    assert [SequenceDistillationConfig(mode=kind).num_beams for kind in SEQUENCE_DATA] == [5, 35]
    assert SequenceDistillationConfig(mode="seq_inter", num_beams=10).num_beams == 10

    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(ValueError, match="does not say which beam size K made it .* pass --seq_kd_num_beams K"):
        distilled_num_beams("seq_kd", folder, None, "--seq_kd_num_beams")
    assert distilled_num_beams("seq_kd", folder, 7, "--seq_kd_num_beams") == 7  # data without a record: as given

    config = SequenceDistillationConfig(mode="seq_inter", num_beams=10)
    write_distillation_record(folder, config, "t", torch.float32, {})
    assert read_distillation_record(folder)["teacher"] == "t" and read_distillation_record(tmp_path) is None
    assert distilled_num_beams("seq_inter", folder, None, "--seq_inter_num_beams") == 10
    assert distilled_num_beams("seq_inter", folder, 10, "--seq_inter_num_beams") == 10
    with pytest.raises(ValueError, match="--seq_inter_num_beams 35, but .* was made with K = 10 .* leave"):
        distilled_num_beams("seq_inter", folder, 35, "--seq_inter_num_beams")
    with pytest.raises(ValueError, match="holds seq_inter data .* not seq_kd data: pass it as --seq_inter_dataset"):
        distilled_num_beams("seq_kd", folder, None, "--seq_kd_num_beams")
