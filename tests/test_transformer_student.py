"""
A transformers student (a tiny Marian built from `model_type` + `model_config` in the recipe YAML) through
recipes/train_student.py in every mode, saved, pushed (Hub client replaced) and loaded like the LSTM student.
"""

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import SOURCES, load_recipe, save_tiny_teacher
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoUrl
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, MarianMTModel

from hf_seqkd.arguments import ModelArguments, parse_args
from hf_seqkd.data import DataArguments
from hf_seqkd.training import build_model
from hf_seqkd.translation import translate

REPO = Path(__file__).resolve().parent.parent
MARIAN_STUDENT = """\
model_type: marian
model_config:
  d_model: 16
  encoder_layers: 1
  decoder_layers: 1
  encoder_attention_heads: 2
  decoder_attention_heads: 2
  encoder_ffn_dim: 32
  decoder_ffn_dim: 32
  max_position_embeddings: 128
  dropout: 0.0
dataset_name: bible_es_en
max_train_samples: 16
max_eval_samples: 3
max_source_length: 48
max_target_length: 48
per_device_train_batch_size: 8
max_steps: 2
learning_rate: 0.003
eval_strategy: "no"
save_strategy: "no"
report_to: none
seq_inter_num_beams: 3
distill_batch_size: 8
teacher_top_k: 8
disable_tqdm: true
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "student_marian.yaml"
    path.write_text(MARIAN_STUDENT)
    return str(path)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tokenizer):
    """An LSTM teacher over the 120-token test tokenizer."""
    return save_tiny_teacher(tmp_path_factory.mktemp("teacher"), tokenizer, max_new_tokens=8)


def train(config, out, *extra):
    results = load_recipe().main(["--config", config, "--output_dir", str(out), *extra])
    assert results["num_sentences"] == 3 and 0 <= results["bleu_beam"] <= 100
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert isinstance(model, MarianMTModel) and model.config.d_model == 16
    return model


@pytest.mark.parametrize(
    "mode, extra, vocab_size",
    [
        ("baseline", ["--tokenizer_vocab_size", "200"], 200),  # its own tokenizer, trained on the references
        ("seq_kd", ["--tokenizer_vocab_size", "200"], 200),  # the teacher's translations, its own tokenizer
        ("seq_inter", ["--tokenizer_vocab_size", "200"], 200),
        ("word_kd", ["--word_kd_cache"], 120),  # the teacher's vocabulary, by default in this mode
        ("combined", ["--finetune_max_steps", "1"], 120),
    ],
)
def test_marian_student_trains_in_every_mode(tmp_path, config, teacher_dir, mode, extra, vocab_size):
    teacher = [] if mode == "baseline" else ["--teacher_model_name_or_path", teacher_dir]
    model = train(config, tmp_path / mode, "--mode", mode, *teacher, *extra)
    assert model.config.vocab_size == vocab_size and len(AutoTokenizer.from_pretrained(tmp_path / mode)) == vocab_size
    state = json.loads((tmp_path / mode / "trainer_state.json").read_text())
    assert state["global_step"] == (1 if mode == "combined" else 2)
    if mode == "combined":
        assert (tmp_path / mode / "stage1_seq_kd" / "train_results.json").is_file()


@pytest.mark.parametrize("mode", ["word_kd", "combined"])
def test_word_kd_with_another_vocabulary_fails_before_training(tmp_path, config, teacher_dir, mode):
    other = tmp_path / "other_tokenizer"
    train(config, other, "--mode", "baseline", "--tokenizer_vocab_size", "150", "--max_steps", "1")
    with pytest.raises(
        ValueError, match=f"--mode {mode}: Word-level KD .* the teacher has 120 tokens and the student 150"
    ):
        load_recipe().main(
            ["--config", config, "--output_dir", str(tmp_path / "x"), "--mode", mode,
             "--teacher_model_name_or_path", teacher_dir, "--tokenizer_name_or_path", str(other)]
        )  # fmt: skip
    assert not (tmp_path / "x" / "seq_inter_data").exists()  # nothing generated or trained


@pytest.fixture
def hub_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create_repo", repo_id)) or RepoUrl(repo_id)
    )
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload_folder", kw)))
    return calls


def test_marian_student_is_pushed_and_loads_like_the_lstm_student(tmp_path, config, teacher_dir, hub_calls):
    out = tmp_path / "pushed"
    hub = ["--push_to_hub", "--hub_model_id", "someone/tiny-marian-student"]
    model = train(config, out, "--mode", "seq_kd", "--teacher_model_name_or_path", teacher_dir, *hub)
    assert [call[0] for call in hub_calls] == ["create_repo", "upload_folder"]
    uploaded = {pattern.replace("\\", "") for pattern in hub_calls[1][1]["allow_patterns"]}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "eval_results.json"} <= uploaded
    assert not any(name.startswith("modeling_") for name in uploaded)  # a transformers model needs no code of ours
    card = (out / "README.md").read_text()
    assert "Seq-KD" in card and "stacked-LSTM" not in card and "| model_type | marian |" in card
    assert json.loads((out / "config.json").read_text())["model_type"] == "marian"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert translate(SOURCES[:2], str(out), num_beams=2) == translate(SOURCES[:2], model, tokenizer, num_beams=2)


def test_time_limit_stops_training(tmp_path, config, teacher_dir):
    train(config, tmp_path / "timed", "--mode", "baseline", "--max_steps", "50", "--max_train_seconds", "0.001")
    assert json.loads((tmp_path / "timed" / "trainer_state.json").read_text())["global_step"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model_type": "marian", "hidden_size": 64}, r"\['hidden_size'\] size an LSTM, but model_type is 'marian'"),
        ({"model_type": "marian", "preset": "student_2x300"}, r"\['preset'\] size an LSTM"),
        ({"model_type": "marian", "model_name_or_path": "x"}, "drop one of them"),
        ({"model_config": "{d_model: 3}"}, "must be a JSON object"),
        ({"model_config": {"hidden_size": 8}, "hidden_size": 16}, "set both by their flags and in model_config"),
        ({"model_type": "bert"}, "'bert' is not a seq2seq language model"),
        ({"model_type": "nonsense"}, "'nonsense' is not a transformers model type"),
        ({"model_type": "marian", "model_config": {"vocab_size": 7}}, "vocab_size=7, but the tokenizer has 120"),
        ({"model_type": "marian", "model_config": {"max_position_embeddings": 16}}, "max_position_embeddings=16"),
    ],
)
def test_bad_student_configs_say_what_to_fix(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelArguments(**kwargs), DataArguments(dataset_name="bible_es_en"), tokenizer)


def test_lstm_from_model_config_equals_the_size_flags(tokenizer):
    data_args = DataArguments(dataset_name="bible_es_en")
    from_mapping = build_model(
        ModelArguments(model_config={"hidden_size": 24, "embedding_size": 8}), data_args, tokenizer
    )
    from_flags = build_model(ModelArguments(hidden_size=24, embedding_size=8), data_args, tokenizer)
    assert from_mapping.config.to_dict() == from_flags.config.to_dict()


def test_the_transformer_student_plan_and_config(tmp_path, tokenizer):
    """recipes/table1/transformer_student.yaml: both students get the same time; the Marian config builds."""
    spec = importlib.util.spec_from_file_location("table1_run", REPO / "recipes" / "table1" / "run.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    plan = driver.load_plan(REPO / "recipes" / "table1" / "transformer_student.yaml", output_root=str(tmp_path))
    stages = plan["stages"]
    students = {"lstm_seq_kd_timed", "marian_seq_kd"}
    assert set(stages) == students | {f"eval_{name}" for name in students} | {"transformer_decode_speed"}
    commands = {name: driver.command(stage, tmp_path, 1, list(stages))[0] for name, stage in stages.items()}
    for name in ("lstm_seq_kd_timed", "marian_seq_kd"):
        cmd = commands[name]
        assert cmd[cmd.index("--max_train_seconds") + 1] == "1500"
        # The time limit ends training: no early stopping, and no plateau arguments for the constant schedule.
        assert cmd[cmd.index("--early_stopping_patience") + 1] == "0"
        assert cmd[cmd.index("--lr_scheduler_kwargs") + 1] == "{}"
        assert cmd[cmd.index("--seq_kd_dataset") + 1] == str(tmp_path / "seq_kd_data" / "dataset")
        assert (REPO / cmd[cmd.index("--config") + 1]).is_file()
    speed = commands["transformer_decode_speed"]
    assert speed[speed.index("--teacher_num_beams") + 1] == "1" and "--name" not in speed

    recipe = load_recipe()
    config = REPO / "recipes" / "bible_es_en" / "student_marian_seq_kd" / "config.yaml"
    arguments = ["--config", str(config), "--report_to", "none"]
    _, model_args, data_args, *_ = parse_args(recipe.ARGUMENTS, arguments, check_inputs=False)  # no teacher here
    model = build_model(model_args, data_args, tokenizer)
    assert isinstance(model, MarianMTModel) and model.config.d_model == 128 and model.config.encoder_layers == 3
