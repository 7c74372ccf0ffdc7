"""
Model cards filled from eval_results.json, the push folder and its upload (Hub client replaced: nothing leaves the
machine), the folder loading without hf_seqkd, and the teacher recipe's card and push.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import SOURCES, TARGETS, tiny_model
from huggingface_hub import HfApi, ModelCard, ModelCardData, metadata_load
from huggingface_hub.hf_api import RepoUrl
from huggingface_hub.repocard_data import model_index_to_eval_results
from huggingface_hub.utils import filter_repo_objects

from hf_seqkd.evaluation import evaluate_model, write_results
from hf_seqkd.hub import MODEL_TAGS, check_model_card, prepare_push_folder, push_folder, render_model_card
from hf_seqkd.translation import translate

REPO = Path(__file__).resolve().parent.parent
PAIR = dict(source_lang="es", target_lang="en", dataset="bible_es_en")


@pytest.fixture(scope="module")
def model(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = 8  # short outputs: fast, and saved with the model
    return model


@pytest.fixture(scope="module")
def results_path(tmp_path_factory, model, tokenizer):
    """A real eval_results.json, so that the cards read the keys evaluation.write_results writes."""
    results = evaluate_model(model, tokenizer, SOURCES[:3], TARGETS[:3], num_beams=2, batch_size=2)
    path = tmp_path_factory.mktemp("results") / "eval_results.json"
    write_results(results, path)
    return path


def metadata_of(card: ModelCard, tmp_path: Path) -> dict:
    """The YAML block as the Hub reads it from the README.md."""
    card.save(tmp_path / "README.md")
    return metadata_load(tmp_path / "README.md")


def edited_results(results_path: Path, tmp_path: Path, **changes) -> Path:
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({**json.loads(results_path.read_text()), **changes}))
    return path


def test_teacher_card_metadata_parses_and_holds_the_json_numbers(results_path, model, tmp_path):
    results = json.loads(results_path.read_text())
    card = render_model_card(results_path, role="teacher", repo_id="someone/tiny-teacher", config=model.config, **PAIR)
    metadata = metadata_of(card, tmp_path)

    assert ModelCardData(**metadata).eval_results  # parses as the Hub's client parses it
    name, eval_results = model_index_to_eval_results(metadata["model-index"])
    assert name == "tiny-teacher"
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in eval_results} == {
        ("translation", "bible_es_en", "test")
    }
    assert {r.metric_name: r.metric_value for r in eval_results} == {
        "BLEU (greedy)": round(results["bleu_greedy"], 2),
        "BLEU (beam 2)": round(results["bleu_beam"], 2),
        "chrF (greedy)": round(results["chrf_greedy"], 2),
        "chrF (beam 2)": round(results["chrf_beam"], 2),
    }
    assert eval_results[0].metric_args == {"num_beams": 1, "signature": results["bleu_signature"]}
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "translation"
    assert metadata["language"] == ["es", "en"] and metadata["license"] == "apache-2.0"
    assert metadata["tags"] == MODEL_TAGS and "base_model" not in metadata
    assert check_model_card(tmp_path / "README.md")[0] == "tiny-teacher"

    text = card.text
    assert f"| words/s | {results['words_per_sec_greedy']:.0f} | {results['words_per_sec_beam']:.0f} |" in text
    assert f"Parameters: {results['params']:,}" in text and "| hidden_size | 16 |" in text
    assert 'AutoModelForSeq2SeqLM.from_pretrained("someone/tiny-teacher", trust_remote_code=True)' in text
    assert "from hf_seqkd.translation import translate" in text and "hf-seqkd-translate --model" in text
    assert "Kim, Yoon and Rush, Alexander M." in text and "Luong, Thang" in text


def test_card_changes_with_the_json(results_path, tmp_path):
    before = str(render_model_card(results_path, role="teacher", repo_id="someone/tiny-teacher", **PAIR))
    edited = edited_results(results_path, tmp_path, bleu_beam=12.345, params=1234567, words_per_sec_beam=4321.0)
    card = render_model_card(edited, role="teacher", repo_id="someone/tiny-teacher", **PAIR)
    assert str(card) != before
    _, eval_results = check_model_card(card)
    assert {r.metric_name: r.metric_value for r in eval_results}["BLEU (beam 2)"] == 12.35
    assert "| BLEU |" in card.text and " 12.35 |" in card.text
    assert "Parameters: 1,234,567" in card.text and " 4321 |" in card.text


def test_student_card_distillation_facts_and_comparison_with_the_teacher(results_path, tmp_path):
    results = json.loads(results_path.read_text())
    # A teacher 4 times bigger and 3 times slower, on the same test set.
    teacher_results = {
        **results,
        "params": 4 * results["params"],
        "params_nonzero": 4 * results["params_nonzero"],
        "words_per_sec_greedy": results["words_per_sec_greedy"] / 3,
        "words_per_sec_beam": results["words_per_sec_beam"] / 3,
    }
    training = {
        "mode": "seq_inter",
        "num_beams": 35,
        "teacher": "someone/tiny-teacher",
        "dataset": "someone/seq-inter",
    }
    card = render_model_card(
        results,
        role="student",
        repo_id="someone/tiny-student",
        training=training,
        teacher_results=teacher_results,
        **PAIR,
    )
    metadata = metadata_of(card, tmp_path)
    assert metadata["base_model"] == "someone/tiny-teacher" and metadata["datasets"] == ["someone/seq-inter"]
    assert metadata["tags"] == MODEL_TAGS + ["seq-inter"]
    text = card.text
    assert "Seq-Inter" in text and "35-best list, the hypothesis with the highest smoothed sentence BLEU" in text
    assert "4.0× fewer parameters" in text and "3.0× the teacher's words/s with greedy search and 3.0×" in text
    assert "α" not in text  # no Word-KD settings for a sequence-level student

    combined = {**training, "mode": "combined", "alpha": 0.7, "temperature": 2.0, "seq_kd_num_beams": 5}
    card = render_model_card(
        results, role="student", repo_id="someone/tiny-student", training={**combined, "pruning_ratio": 0.8}, **PAIR
    )
    text = card.text
    assert "Seq-KD + Seq-Inter + Word-KD" in text
    assert "| α (weight of the distillation term) | 0.7 |" in text and "| T (softmax temperature) | 2.0 |" in text
    assert "| teacher's beam size K, Seq-KD stage | 5 |" in text and "K, Seq-Inter stage | 35 |" in text
    assert "| weights pruned | 80% |" in text and "Against the teacher" not in text
    assert metadata_of(card, tmp_path)["tags"] == MODEL_TAGS + ["seq-kd", "seq-inter", "word-kd", "pruned"]

    seq_kd = {"mode": "seq_kd", "num_beams": 5, "selection_metric": "bleu", "teacher": "someone/tiny-teacher"}
    text = render_model_card(results, role="student", repo_id="someone/s", training=seq_kd, **PAIR).text
    assert "the top hypothesis of the teacher's beam search (K = 5)" in text and "smoothed" not in text


def test_local_folders_are_not_written_as_hub_references(results_path, tmp_path):
    training = {"mode": "word_kd", "alpha": 0.5, "temperature": 1.0, "teacher": str(tmp_path)}
    card = render_model_card(results_path, role="student", repo_id="someone/s", training=training, **PAIR)
    metadata = metadata_of(card, tmp_path)
    assert "base_model" not in metadata and "datasets" not in metadata
    assert f"`{tmp_path}`" in card.text


def test_greedy_only_results_and_other_architectures(results_path, tmp_path):
    from transformers import MarianConfig

    edited = edited_results(results_path, tmp_path, num_beams=1)
    card = render_model_card(edited, role="teacher", repo_id="someone/marian", config=MarianConfig(), **PAIR)
    _, eval_results = check_model_card(card)
    assert [r.metric_name for r in eval_results] == ["BLEU (greedy)", "chrF (greedy)"]  # beam 1 is greedy: once
    assert "lstm" not in metadata_of(card, tmp_path)["tags"] and "stacked-LSTM" not in card.text


@pytest.mark.parametrize(
    "role, training, message",
    [
        ("student", {"mode": "seq_kd", "num_beams": 5}, "needs training\\['teacher'\\]"),
        ("student", {"mode": "word_kd", "teacher": "a/b"}, "alpha"),
        ("student", {"mode": "seq_kd", "teacher": "a/b"}, "num_beams"),
        ("teacher", {"mode": "distilled"}, "mode"),
        ("teacher", {"epochs": 3}, "Unknown training facts"),
        ("teacher", {"pruning_ratio": 1.5}, "pruning_ratio"),
        ("student", {"mode": "seq_kd", "num_beams": 5, "seq_kd_num_beams": 5, "teacher": "a/b"}, "combined"),
        ("assistant", {}, "role"),
    ],
)
def test_wrong_training_facts_raise(results_path, role, training, message):
    with pytest.raises(ValueError, match=message):
        render_model_card(results_path, role=role, repo_id="someone/x", training=training, **PAIR)


def test_check_model_card_rejects_cards_the_hub_would_not_read(results_path, tmp_path):
    card = render_model_card(results_path, role="teacher", repo_id="someone/tiny-teacher", **PAIR)
    metadata = metadata_of(card, tmp_path)
    del metadata["model-index"][0]["results"][0]["metrics"][0]["type"]
    broken = tmp_path / "broken.md"
    broken.write_text(f"---\n{yaml.safe_dump(metadata)}---\n\n# model\n")
    with pytest.raises(ValueError, match="model-index"):
        check_model_card(broken)
    (tmp_path / "plain.md").write_text("# no metadata\n")
    with pytest.raises(ValueError, match="no YAML metadata"):
        check_model_card(tmp_path / "plain.md")


@pytest.fixture
def hub_calls(monkeypatch):
    """Replaces the Hub client's methods: calls are recorded, nothing leaves the machine."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return None

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def uploaded_files(folder: Path, upload_kwargs: dict) -> list[str]:
    """The files upload_folder would send, by huggingface_hub's own pattern matching."""
    local = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    return sorted(filter_repo_objects(local, allow_patterns=upload_kwargs["allow_patterns"]))


def test_push_folder_holds_the_repository_and_uploads_only_it(model, tokenizer, results_path, tmp_path, hub_calls):
    folder = tmp_path / "output"
    (folder / "checkpoint-2").mkdir(parents=True)
    (folder / "checkpoint-2" / "optimizer.pt").write_text("training state, not for the Hub")
    (folder / "trainer_state.json").write_text("{}")
    card = render_model_card(results_path, role="teacher", repo_id="someone/tiny-teacher", **PAIR)
    files = prepare_push_folder(model, tokenizer, card, folder, extra_files=[results_path])

    assert {
        "README.md",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "modeling_lstm_seq2seq.py",
        "configuration_lstm_seq2seq.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "eval_results.json",
    } <= set(files)
    assert "trainer_state.json" not in files and not any(name.startswith("checkpoint") for name in files)
    assert ModelCard.load(folder / "README.md").data.eval_results == card.data.eval_results
    assert not [path for path in folder.iterdir() if path.name.startswith(".push-")]  # staging folder removed

    push_folder(folder, "someone/tiny-teacher", private=True, files=files)
    assert [(call, repo) for call, repo, _ in hub_calls] == [
        ("create_repo", "someone/tiny-teacher"),
        ("upload_folder", "someone/tiny-teacher"),
    ]
    assert hub_calls[0][2]["private"] is True and hub_calls[0][2]["exist_ok"] is True
    assert hub_calls[1][2]["folder_path"] == folder and hub_calls[1][2]["repo_type"] == "model"
    assert uploaded_files(folder, hub_calls[1][2]) == files
    assert "*.safetensors" in hub_calls[1][2]["delete_patterns"]  # no stale shards of an earlier push


def test_trainer_makes_the_card_and_pushes_only_the_repository(model, tokenizer, results_path, tmp_path, hub_calls):
    """TranslationTrainer: the Trainer's create_model_card and push_to_hub, with hf_seqkd's card and files."""
    from transformers import Seq2SeqTrainingArguments

    from hf_seqkd.hub import CardInfo
    from hf_seqkd.trainer import TranslationTrainer

    out = tmp_path / "run"
    args = Seq2SeqTrainingArguments(output_dir=str(out), hub_model_id="someone/tiny-teacher", hub_private_repo=True,
                                    report_to="none", use_cpu=True)  # fmt: skip
    card = CardInfo(role="teacher", example=SOURCES[0], **PAIR)
    trainer = TranslationTrainer(model=model, args=args, processing_class=tokenizer, card=card)
    with pytest.raises(ValueError, match=r"eval_results.json: no evaluation .*evaluate_test_split\(test_split\)"):
        trainer.push_to_hub()
    assert hub_calls == []  # nothing made on the Hub before the card can be

    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "optimizer.pt").write_text("training state")
    (out / "seq_kd_data" / "train").mkdir(parents=True)
    (out / "seq_kd_data" / "train" / "data-00000-of-00001.arrow").write_text("a data cache")
    (out / "trainer_state.json").write_text("{}")
    (out / "eval_results.json").write_text(results_path.read_text())
    trainer.create_model_card()
    facts = card.render_kwargs()
    expected = render_model_card(results_path, repo_id="someone/tiny-teacher", config=model.config, **facts)
    assert (out / "README.md").read_text() == str(expected)
    with pytest.raises(TypeError, match=r"\['language'\] come from the trainer's `card`"):
        trainer.create_model_card(language="de")

    trainer.push_to_hub(tags=["extra-tag"])
    assert [(call, repo) for call, repo, _ in hub_calls] == [
        ("create_repo", "someone/tiny-teacher"),
        ("upload_folder", "someone/tiny-teacher"),
    ]
    assert hub_calls[0][2]["private"] is True
    files = uploaded_files(out, hub_calls[1][2])
    assert {"README.md", "model.safetensors", "config.json", "tokenizer.json", "eval_results.json"} <= set(files)
    assert not [name for name in files if name.startswith(("checkpoint", "seq_kd_data", "trainer_state"))]
    assert "extra-tag" in ModelCard.load(out / "README.md").data.tags
    again = TranslationTrainer(model=model, args=args, processing_class=tokenizer, card=card)
    again.push_to_hub(private=False)  # an argument of push_to_hub, on every transformers release
    assert hub_calls[2][0] == "create_repo" and hub_calls[2][2]["private"] is False


def test_push_folder_refuses_a_broken_card_before_contacting_the_hub(tmp_path, hub_calls):
    metadata = "language: [es]\nlicense: mit\nlibrary_name: transformers\ntags: [x]\nmodel-index: [{name: x}]\n"
    (tmp_path / "README.md").write_text(f"---\n{metadata}---\n")
    with pytest.raises(ValueError, match="model-index"):
        push_folder(tmp_path, "someone/x")
    assert hub_calls == []


def test_push_folder_loads_and_translates_in_a_fresh_process_without_hf_seqkd(
    model, tokenizer, results_path, tmp_path
):
    card = render_model_card(results_path, role="teacher", repo_id="someone/tiny-teacher", **PAIR)
    folder = tmp_path / "push"
    prepare_push_folder(model, tokenizer, card, folder)
    code = f"""
        import json, sys
        from huggingface_hub import ModelCard
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        model = AutoModelForSeq2SeqLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        # Without hf_seqkd, AutoTokenizer reads config.json too, whose model type only the remote code knows.
        tokenizer = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)
        texts = []
        for source in {SOURCES[:2]!r}:
            output = model.generate(**tokenizer([source], return_tensors="pt"), num_beams=2)
            texts.append(tokenizer.decode(output[0], skip_special_tokens=True).strip())
        name = ModelCard.load({str(folder / "README.md")!r}).data.model_name
        print(json.dumps({{"texts": texts, "name": name, "hf_seqkd": "hf_seqkd" in sys.modules}}))
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,  # not the repository, where hf_seqkd would be importable
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "OMP_NUM_THREADS": "1"},
        stdin=subprocess.DEVNULL,  # a prompt to trust remote code would fail instead of hanging
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["hf_seqkd"] is False and out["name"] == "tiny-teacher"
    assert out["texts"] == translate(SOURCES[:2], model, tokenizer, num_beams=2, batch_size=1)


TINY_TEACHER = """\
dataset_name: bible_es_en
max_train_samples: 16
max_eval_samples: 3
max_source_length: 32
max_target_length: 32
tokenizer_vocab_size: 200
embedding_size: 8
hidden_size: 8
layers: 1
dropout: 0.0
per_device_train_batch_size: 8
eval_strategy: "no"
save_strategy: steps
save_steps: 1
seed: 1
report_to: none
disable_tqdm: true
"""


def load_recipe(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def test_train_teacher_writes_its_card_always_and_pushes_once_when_asked(tmp_path, hub_calls):
    config = tmp_path / "teacher.yaml"
    config.write_text(TINY_TEACHER)
    out = tmp_path / "teacher"
    recipe = load_recipe("train_teacher")
    common = ["--config", str(config), "--output_dir", str(out), "--generation_max_length", "6"]

    with pytest.raises(ValueError, match="--hub_model_id"):
        recipe.main(common + ["--push_to_hub"])

    # Without --push_to_hub: the card is written, nothing is uploaded.
    recipe.main(common + ["--max_steps", "1"])
    assert hub_calls == []
    results = json.loads((out / "eval_results.json").read_text())
    _, eval_results = check_model_card(out / "README.md")
    assert {r.metric_name: r.metric_value for r in eval_results}["BLEU (beam 5)"] == round(results["bleu_beam"], 2)
    # The usage snippet translates the first test sentence with the local folder until there is a Hub id.
    example = json.dumps(first_test_source(), ensure_ascii=False)
    assert f'translate([{example}], "{out}", num_beams=5)' in (out / "README.md").read_text()

    # With it (resuming for one more step): the Trainer pushes nothing itself; the recipe creates the repository and
    # uploads the model's files with our card once, at the end.
    hub = ["--push_to_hub", "--hub_model_id", "someone/tiny-teacher", "--hub_private_repo", "true"]
    recipe.main(common + ["--max_steps", "2"] + hub)
    assert [(call, repo) for call, repo, _ in hub_calls] == [
        ("create_repo", "someone/tiny-teacher"),
        ("upload_folder", "someone/tiny-teacher"),
    ]
    assert hub_calls[0][2]["private"] is True
    files = uploaded_files(out, hub_calls[1][2])
    assert {"README.md", "model.safetensors", "modeling_lstm_seq2seq.py", "eval_results.json"} <= set(files)
    assert not any(name.startswith("checkpoint") or name.startswith("trainer_state") for name in files)
    card = ModelCard.load(out / "README.md")
    assert card.data.model_name == "tiny-teacher" and "someone/tiny-teacher" in card.text


def first_test_source() -> str:
    from hf_seqkd.data import DataArguments, load_parallel_dataset

    return load_parallel_dataset(DataArguments(dataset_name="bible_es_en"))["test"][0]["translation"]["es"]
