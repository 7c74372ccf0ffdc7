"""What a user sees: each recipe's --help, the resume or fresh-start line, no warning they cannot act on, progress."""

import dataclasses
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import pytest
from helpers import SOURCES, TARGETS, tiny_model

from hf_seqkd.evaluation import evaluate_model
from hf_seqkd.training import CheckpointArguments

REPO = Path(__file__).resolve().parent.parent
RECIPES = ["train_teacher", "train_student", "distill_data", "prune_student", "evaluate", "table1/run"]


def load_script(name: str):
    path = REPO / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", RECIPES)
def test_help_starts_with_what_the_recipe_does_and_how_config_works(name, capsys):
    script = load_script(name)
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith("usage:") and len(lines[0]) < 120  # not hundreds of flags
    assert lines[2] == script.__doc__.splitlines()[0]  # the recipe's description follows at once
    head = " ".join(text[: text.index("\n  -h, --help")].split())
    assert "--config" in head and "command line override" in head
    if name == "table1/run":
        return

    def listed(flag):  # where the flag's own entry is, not a mention in the description
        return text.index(f"\n  --{flag} ")

    own_first = dataclasses.fields(script.ARGUMENTS[0])[0].name
    assert listed(own_first) < listed("output_dir")
    if "\n  --learning_rate " in text:  # a training recipe: every own group before transformers' long list
        transformers_group = text.index("\nSeq2SeqTrainingArguments (transformers):")
        for flag in (own_first, "early_stopping_patience", "intermediate_save_steps"):
            assert listed(flag) < transformers_group < listed("learning_rate")
    if name == "train_student":  # the Word-KD fields of its TrainingArguments subclass come before the Trainer's
        assert listed("alpha") < listed("learning_rate")


def test_help_order_does_not_change_what_is_parsed():
    from hf_seqkd.arguments import parse_args

    recipe = load_script("train_student")
    args = ["--output_dir", "/tmp/unused", "--dataset_name", "bible_es_en", "--alpha", "0.3", "--mode", "seq_kd"]
    parsed = parse_args(recipe.ARGUMENTS, args)
    assert [type(obj) for obj in parsed] == list(recipe.ARGUMENTS)
    assert parsed[0].mode == "seq_kd" and parsed[3].alpha == 0.3


TINY_TEACHER = [
    "--dataset_name", "bible_es_en", "--max_train_samples", "40", "--max_eval_samples", "4",
    "--max_source_length", "40", "--max_target_length", "40", "--overwrite_cache", "true",
    "--tokenizer_vocab_size", "200", "--embedding_size", "8", "--hidden_size", "8", "--layers", "1",
    "--per_device_train_batch_size", "8", "--num_train_epochs", "2", "--generation_max_length", "6",
    "--eval_strategy", "epoch", "--save_strategy", "epoch", "--intermediate_save_steps", "1",
    "--load_best_model_at_end", "true", "--metric_for_best_model", "bleu", "--predict_with_generate", "true",
    "--report_to", "none", "--seed", "1",
]  # fmt: skip


def test_intermediate_checkpoints_resume_line_and_no_unactionable_warnings(tmp_path, caplog, capfd, recwarn):
    recipe = load_script("train_teacher")
    out = tmp_path / "teacher"
    caplog.set_level(logging.INFO)
    library_logger = logging.getLogger("transformers")  # its records do not propagate to the root logger
    library_logger.addHandler(caplog.handler)
    try:
        recipe.main([*TINY_TEACHER, "--output_dir", str(out)])
    finally:
        library_logger.removeHandler(caplog.handler)
    captured = capfd.readouterr()
    everything = caplog.text + captured.out + captured.err + "".join(str(w.message) for w in recwarn)
    assert f"Starting training from step 0: no checkpoint found in {out}." in caplog.text
    # Some training pairs are longer than the tokenizer's model_max_length: dropped, and counted, not warned about.
    assert "dropped" in caplog.text and "Token indices sequence length" not in everything
    assert "pin_memory" not in everything  # no accelerator here: not asked for
    assert "Model: lstm_seq2seq 1x8, vocabulary 200;" in caplog.text and "LSTMSeq2SeqConfig {" not in everything
    steps = json.loads((out / "trainer_state.json").read_text())["global_step"]
    assert steps > 3 and steps % 2 == 0  # two epochs of equal length
    # A checkpoint after every step, not only at the epochs' ends (save_total_limit unset: all kept).
    assert sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == list(range(1, steps + 1))

    # Killed after an intermediate checkpoint in the middle of the second epoch: resumed from it, and said so.
    for path in out.glob("checkpoint-*"):
        if int(path.name.split("-")[1]) > steps // 2 + 1:
            shutil.rmtree(path)
    caplog.clear()
    recipe.main([*TINY_TEACHER, "--output_dir", str(out)])
    middle = steps // 2 + 1
    assert (
        f"Resuming training from {out / f'checkpoint-{middle}'} (the last checkpoint in output_dir) at step {middle}, "
        f"epoch 1." in caplog.text
    )


def test_intermediate_save_steps_must_be_positive():
    assert CheckpointArguments().callbacks() == []
    with pytest.raises(ValueError, match="--intermediate_save_steps must be 1 or more"):
        CheckpointArguments(intermediate_save_steps=0)


def test_evaluation_shows_progress_bars(tokenizer, capsys):
    model = tiny_model(seed=2, vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = 6
    evaluate_model(model, tokenizer, SOURCES, TARGETS, num_beams=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    for bar in ("Greedy search: 100%", "Beam search (2): 100%", "Perplexity of the references: 100%"):
        assert bar in err
    assert "6/6" in err and "words/s" in err
    evaluate_model(model, tokenizer, SOURCES, TARGETS, num_beams=2, batch_size=4)
    assert capsys.readouterr().err == ""  # off unless asked (evaluate_split asks)
