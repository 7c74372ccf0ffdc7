"""recipes/train_student.py: every training regime of Kim & Rush's Table 1 runs a few steps on tiny data."""

import json
import logging
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict, load_from_disk
from helpers import load_recipe, save_tiny_teacher
from transformers import AutoModelForSeq2SeqLM

from hf_seqkd.modes import MODES
from hf_seqkd.seq_kd import SequenceDistillationConfig, write_distillation_record

REPO = Path(__file__).resolve().parent.parent
TINY = [
    "--dataset_name", "bible_es_en", "--max_train_samples", "24", "--max_eval_samples", "4",
    "--max_source_length", "48", "--max_target_length", "48",
    "--embedding_size", "16", "--hidden_size", "16", "--layers", "1", "--dropout", "0.0",
    "--per_device_train_batch_size", "8", "--max_steps", "3", "--learning_rate", "0.003",
    "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "3", "--report_to", "none",
    "--seq_inter_num_beams", "3", "--distill_batch_size", "8", "--teacher_top_k", "8",
]  # fmt: skip


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tokenizer):
    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"), tokenizer, max_new_tokens=12)


def train(tmp_path, name, *extra):
    out = tmp_path / name
    results = load_recipe().main([*TINY, "--output_dir", str(out), *extra])
    assert results["num_sentences"] == 4 and 0 <= results["bleu_beam"] <= 100
    assert json.loads((out / "eval_results.json").read_text())["bleu_greedy"] == results["bleu_greedy"]
    return out


def test_one_function_per_mode_of_the_registry():
    recipe = load_recipe()
    assert list(recipe.MODE_FUNCTIONS) == list(MODES)
    (mode,) = [item for item in recipe.StudentArguments.__dataclass_fields__.values() if item.name == "mode"]
    assert mode.metadata["choices"] == list(MODES)
    assert all(f"{name}: {MODES[name].summary}" in mode.metadata["help"] for name in MODES)


def test_baseline_trains_its_own_tokenizer(tmp_path):
    out = train(tmp_path, "baseline", "--mode", "baseline", "--tokenizer_vocab_size", "200")
    assert AutoModelForSeq2SeqLM.from_pretrained(out).config.vocab_size == 200


@pytest.mark.parametrize("cache", [False, True])
def test_word_kd_online_and_cached(tmp_path, teacher_dir, cache, caplog):
    extra = ["--word_kd_cache"] if cache else []
    out = train(
        tmp_path,
        "word_kd",
        "--mode",
        "word_kd",
        "--teacher_model_name_or_path",
        teacher_dir,
        "--logging_steps",
        "1",
        *extra,
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("kd_loss" in entry for entry in state["log_history"])
    # The cached run trains from the cached columns, with no teacher loaded into the trainer.
    assert ("cached top-k columns are ignored" in caplog.text) is False
    # The student shares the teacher's vocabulary, and the folder holds the student only.
    assert AutoModelForSeq2SeqLM.from_pretrained(out).config.vocab_size == 120


def test_seq_kd_made_on_the_fly_is_cached_and_trained_on(tmp_path, teacher_dir, caplog):
    caplog.set_level(logging.INFO)
    out = train(tmp_path, "seq_kd", "--mode", "seq_kd", "--teacher_model_name_or_path", teacher_dir,
                "--seq_kd_num_beams", "2", "--distill_dtype", "auto")  # fmt: skip
    data = load_from_disk(out / "seq_kd_data" / "train")
    assert len(data) == 24 and data.column_names[:3] == ["translation", "reference", "teacher_log_prob"]
    assert data["reference"] != [pair["en"] for pair in data["translation"]]  # the targets are the teacher's
    assert "Making seq_kd data with the teacher (K=2, torch." in caplog.text  # K and the measured dtype
    assert "(K = 2)" in (out / "README.md").read_text()  # the card reads K from the run, not a side file


def test_seq_inter_from_a_dataset_folder(tmp_path, teacher_dir):
    first = train(tmp_path, "first", "--mode", "seq_inter", "--teacher_model_name_or_path", teacher_dir)
    made = load_from_disk(first / "seq_inter_data" / "train")
    folder = tmp_path / "seq_inter_dataset"  # laid out as recipes/distill_data.py writes it
    DatasetDict({"train": made}).save_to_disk(folder)
    out = train(tmp_path, "second", "--mode", "seq_inter", "--seq_inter_dataset", str(folder))
    assert not (out / "seq_inter_data").exists()  # read, not made


def test_k_of_a_dataset_folder_is_read_from_it_and_checked(tmp_path, teacher_dir):
    first = train(tmp_path, "first", "--mode", "seq_kd", "--teacher_model_name_or_path", teacher_dir,
                  "--seq_kd_num_beams", "2")  # fmt: skip
    folder = tmp_path / "seq_kd_dataset"  # as recipes/distill_data.py writes it: the data and their record
    DatasetDict({"train": load_from_disk(first / "seq_kd_data" / "train")}).save_to_disk(folder)
    config = SequenceDistillationConfig(mode="seq_kd", num_beams=2)
    write_distillation_record(folder, config, "someone/teacher", torch.float32, {})
    out = train(tmp_path, "second", "--mode", "seq_kd", "--seq_kd_dataset", str(folder))
    card = (out / "README.md").read_text()
    assert "(K = 2)" in card and "`someone/teacher`" in card  # K and teacher of the data, not the defaults
    common = [*TINY, "--output_dir", str(tmp_path / "x")]
    with pytest.raises(ValueError, match="--seq_kd_num_beams 5, but .* was made with K = 2"):
        load_recipe().main([*common, "--mode", "seq_kd", "--seq_kd_dataset", str(folder), "--seq_kd_num_beams", "5"])
    with pytest.raises(ValueError, match="holds seq_kd data .*, not seq_inter data"):
        load_recipe().main([*common, "--mode", "seq_inter", "--seq_inter_dataset", str(folder)])
    assert not (tmp_path / "x").exists()  # checked before anything was loaded or written


def test_combined_runs_two_resumable_stages(tmp_path, teacher_dir):
    extra = ["--mode", "combined", "--teacher_model_name_or_path", teacher_dir, "--finetune_max_steps", "2"]
    out = train(tmp_path, "combined", *extra)
    assert (out / "stage1_seq_kd" / "train_results.json").is_file()
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    stage1 = (out / "stage1_seq_kd" / "model.safetensors").stat().st_mtime
    # Run again: stage 1 is not redone.
    load_recipe().main([*TINY, "--output_dir", str(out), *extra])
    assert (out / "stage1_seq_kd" / "model.safetensors").stat().st_mtime == stage1


def test_combined_fine_tunes_a_given_seq_kd_student(tmp_path, teacher_dir):
    seq_kd = train(
        tmp_path, "seq_kd", "--mode", "seq_kd", "--teacher_model_name_or_path", teacher_dir,
        "--tokenizer_name_or_path", teacher_dir,  # Word-KD fine-tuning needs the teacher's vocabulary
    )  # fmt: skip
    extra = ["--mode", "combined", "--teacher_model_name_or_path", teacher_dir, "--finetune_max_steps", "2"]
    out = train(tmp_path, "combined", *extra, "--seq_kd_model_name_or_path", str(seq_kd))
    assert not (out / "stage1_seq_kd").exists() and not (out / "seq_kd_data").exists()
    before = AutoModelForSeq2SeqLM.from_pretrained(seq_kd).state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(out).state_dict()
    assert after.keys() == before.keys() and any(not after[k].equal(before[k]) for k in before)


def test_modes_that_need_a_teacher_say_so(tmp_path):
    with pytest.raises(ValueError, match="needs --teacher_model_name_or_path"):
        load_recipe().main([*TINY, "--output_dir", str(tmp_path / "x"), "--mode", "word_kd"])
    with pytest.raises(ValueError, match="pass --seq_kd_dataset or --teacher_model_name_or_path"):
        load_recipe().main([*TINY, "--output_dir", str(tmp_path / "y"), "--mode", "seq_kd"])


def test_student_card_names_the_method_and_compares_with_the_teacher(tmp_path, teacher_dir):
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_dir, teacher)
    (teacher / "eval_results.json").write_text(
        json.dumps({"bleu_greedy": 1.0, "bleu_beam": 2.0, "chrf_greedy": 10.0, "chrf_beam": 11.0, "ppl": 50.0,
                    "p_beam_output": 0.0, "p_greedy_output": 0.0, "params": 99999, "params_nonzero": 99999,
                    "words_per_sec_greedy": 100.0, "words_per_sec_beam": 10.0, "num_sentences": 4, "num_beams": 5,
                    "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
                    "chrf_signature": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"})
    )  # fmt: skip
    out = train(tmp_path, "card", "--mode", "seq_kd", "--teacher_model_name_or_path", str(teacher))
    card = (out / "README.md").read_text()
    assert "Seq-KD" in card and "K = 5" in card and "fewer parameters" in card


def train_on_a_plateau(out: Path, *extra: str) -> list[dict]:
    """A learning rate too small to change validation BLEU: every evaluation after the first is a plateau."""
    load_recipe().main([
        *TINY, "--output_dir", str(out), "--mode", "baseline", "--tokenizer_vocab_size", "200",
        "--max_train_samples", "16", "--max_steps", "-1", "--num_train_epochs", "8", "--learning_rate", "1e-7",
        "--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end", "true",
        "--metric_for_best_model", "bleu", "--predict_with_generate", "true", "--logging_steps", "1",
        "--lr_scheduler_type", "reduce_lr_on_plateau",
        "--lr_scheduler_kwargs", '{"mode": "max", "factor": 0.5, "patience": 0}',
        "--early_stopping_patience", "2",
        *extra,
    ])  # fmt: skip
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def test_early_stopping_halves_the_learning_rate_on_a_plateau_and_stops(tmp_path):
    history = train_on_a_plateau(tmp_path / "stopping")
    evaluations = [entry for entry in history if "eval_bleu" in entry]
    assert [entry["epoch"] for entry in evaluations] == [1.0, 2.0, 3.0]  # 1 best + 2 without gain, not 8 epochs
    rates = [entry["learning_rate"] for entry in history if "learning_rate" in entry]
    # Epochs 1 and 2 train at 1e-7; the plateau at the end of epoch 2 halves it for epoch 3.
    assert sorted(set(rates), reverse=True) == pytest.approx([1e-7, 0.5e-7])


def test_early_stopping_needs_the_best_model_kept(tmp_path):
    with pytest.raises(ValueError, match="--early_stopping_patience needs --load_best_model_at_end"):
        load_recipe().main([*TINY, "--output_dir", str(tmp_path), "--mode", "baseline", "--early_stopping_patience=1"])


def test_plateau_warmup_keeps_the_first_epochs_from_halving_the_rate_or_stopping(tmp_path):
    """The same plateau as above, but the first 3 epochs are warm-up: the rate halves and training stops only after."""
    history = train_on_a_plateau(tmp_path / "warmup", "--plateau_warmup_epochs", "3")
    assert [entry["epoch"] for entry in history if "eval_bleu" in entry] == [1.0, 2.0, 3.0, 4.0, 5.0]
    rates = {entry["epoch"]: entry["learning_rate"] for entry in history if "learning_rate" in entry}
    # Epochs 1-4 train at 1e-7 (plateaus at the end of epochs 2 and 3 are warm-up); epoch 4's halves it for epoch 5.
    assert [rate for epoch, rate in rates.items() if epoch <= 4.0] == pytest.approx([1e-7] * 4)
    assert [rate for epoch, rate in rates.items() if epoch > 4.0] == pytest.approx([0.5e-7])


def test_plateau_warmup_callback_state_rebuilds_it_on_resume():
    from hf_seqkd.training import EarlyStoppingAfterWarmupCallback

    callback = EarlyStoppingAfterWarmupCallback(2, 0.0, warmup_epochs=3)
    callback.early_stopping_patience_counter = 1
    state = callback.state()
    rebuilt = type(callback)(**state["args"])  # as Trainer._load_callback_state does
    assert rebuilt.warmup_epochs == 3 and rebuilt.early_stopping_patience == 2
