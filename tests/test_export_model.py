"""recipes/export_model.py: a trained folder exported with half-size weights loads as float32 and decodes the same."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SOURCES, TARGETS, random_batch, save_tiny_teacher
from huggingface_hub import ModelCard
from safetensors import safe_open
from transformers import AutoModelForSeq2SeqLM

from hf_seqkd.evaluation import evaluate_model
from hf_seqkd.hub import render_model_card

REPO = Path(__file__).resolve().parent.parent
PAIR = dict(source_lang="es", target_lang="en", dataset="bible_es_en")


def export(args):
    spec = importlib.util.spec_from_file_location("export_model", REPO / "recipes" / "export_model.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe.main(args)


def test_float16_storage_loads_as_float32_and_keeps_card_and_results(tmp_path, tokenizer):
    trained = Path(save_tiny_teacher(tmp_path / "trained", tokenizer, max_new_tokens=8))
    ModelCard("---\nlicense: apache-2.0\n---\n# A tiny teacher\n").save(trained / "README.md")
    (trained / "eval_results.json").write_text(json.dumps({"bleu_beam": 1.0}))
    names = export(["--model_name_or_path", str(trained), "--output_dir", str(tmp_path / "out"), "--storage_dtype",
                    "float16"])  # fmt: skip
    out = tmp_path / "out"
    assert {"model.safetensors", "config.json", "README.md", "eval_results.json", "tokenizer.json"} <= set(names)
    with safe_open(out / "model.safetensors", "pt") as weights:
        assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    assert "# A tiny teacher" in (out / "README.md").read_text()

    original, exported = AutoModelForSeq2SeqLM.from_pretrained(trained), AutoModelForSeq2SeqLM.from_pretrained(out)
    assert exported.dtype == torch.float32
    input_ids, attention_mask = random_batch(batch_size=2, seed=1)
    input_ids = input_ids % len(tokenizer)
    start = torch.full((2, 1), original.config.decoder_start_token_id)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start)
    torch.testing.assert_close(exported(**kwargs).logits, original(**kwargs).logits, atol=2e-2, rtol=2e-2)


def test_without_remote_code_the_folder_loads_through_hf_seqkd(tmp_path, tokenizer):
    trained = Path(save_tiny_teacher(tmp_path / "trained", tokenizer, max_new_tokens=8))
    ModelCard("# A tiny teacher\n").save(trained / "README.md")
    names = export(["--model_name_or_path", str(trained), "--output_dir", str(tmp_path / "out"), "--remote_code",
                    "false"])  # fmt: skip
    assert not [name for name in names if name.endswith(".py")] and not list((tmp_path / "out").glob("*.py"))
    assert "auto_map" not in json.loads((tmp_path / "out" / "config.json").read_text())
    assert type(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")).__name__.startswith("LSTMSeq2Seq")


def test_a_folder_without_a_card_is_refused(tmp_path, tokenizer):
    trained = save_tiny_teacher(tmp_path / "trained", tokenizer, max_new_tokens=8)
    with pytest.raises(FileNotFoundError, match="no model card"):
        export(["--model_name_or_path", trained, "--output_dir", str(tmp_path / "out")])


def test_card_snippets_load_the_exported_folder_without_remote_code(tmp_path, tokenizer):
    """The card of the exported folder names it (not the training folder), and its transformers snippet runs."""
    trained = Path(save_tiny_teacher(tmp_path / "trained", tokenizer, max_new_tokens=8))
    model = AutoModelForSeq2SeqLM.from_pretrained(trained)
    results = evaluate_model(model, tokenizer, SOURCES[:2], TARGETS[:2], num_beams=2, batch_size=2)
    card = render_model_card(results, role="teacher", repo_id=str(trained), config=model.config, **PAIR)
    card.save(trained / "README.md")
    out = tmp_path / "out"
    export(["--model_name_or_path", str(trained), "--output_dir", str(out), "--remote_code", "false"])

    text = (out / "README.md").read_text()
    assert str(trained) not in text and f"hf-seqkd-translate --model {out} " in text
    assert "trust_remote_code" not in text
    snippet = re.search(r"```python\n(import hf_seqkd.*?from transformers import.*?)```", text, re.S).group(1)
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("[")  # the printed list of translations


def test_card_snippets_keep_remote_code_when_the_code_ships(tmp_path, tokenizer):
    trained = Path(save_tiny_teacher(tmp_path / "trained", tokenizer, max_new_tokens=8))
    model = AutoModelForSeq2SeqLM.from_pretrained(trained)
    results = evaluate_model(model, tokenizer, SOURCES[:2], TARGETS[:2], num_beams=2, batch_size=2)
    render_model_card(results, role="teacher", repo_id=str(trained), **PAIR).save(trained / "README.md")
    export(["--model_name_or_path", str(trained), "--output_dir", str(tmp_path / "out"), "--model_id",
            "someone/tiny-teacher"])  # fmt: skip
    text = (tmp_path / "out" / "README.md").read_text()
    assert str(trained) not in text
    assert 'AutoModelForSeq2SeqLM.from_pretrained("someone/tiny-teacher", trust_remote_code=True)' in text
