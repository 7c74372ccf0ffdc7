"""save_pretrained / Auto classes / remote code: what a user on another machine gets."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from helpers import SOURCES, random_batch, tiny_model
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration, LSTMSeq2SeqModel


def run_fresh_python(code: str, cwd) -> str:
    """Runs `code` in a new interpreter, offline, from a folder where hf_seqkd is not on the path."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout + result.stderr
    return result.stdout


def save_tiny(tmp_path, tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, folder


def test_auto_classes_are_registered():
    config = AutoConfig.for_model("lstm_seq2seq", vocab_size=50, hidden_size=8, embedding_size=8)
    assert isinstance(config, LSTMSeq2SeqConfig)
    assert isinstance(AutoModel.from_config(config), LSTMSeq2SeqModel)
    assert isinstance(AutoModelForSeq2SeqLM.from_config(config), LSTMSeq2SeqForConditionalGeneration)


def test_save_writes_safetensors_and_modeling_code(tmp_path, tokenizer):
    _, folder = save_tiny(tmp_path, tokenizer)
    files = set(os.listdir(folder))
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= files
    assert {"modeling_lstm_seq2seq.py", "configuration_lstm_seq2seq.py"} <= files
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForSeq2SeqLM"] == "modeling_lstm_seq2seq.LSTMSeq2SeqForConditionalGeneration"


def test_round_trip_in_process(tmp_path, tokenizer):
    model, folder = save_tiny(tmp_path, tokenizer)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert type(loaded) is LSTMSeq2SeqForConditionalGeneration
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    input_ids, attention_mask = random_batch(vocab_size=len(tokenizer))
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=3, max_new_tokens=8)
    assert torch.equal(loaded.eval().generate(**kwargs), model.generate(**kwargs))
    assert loaded.generation_config.max_length == model.config.max_target_length
    assert AutoTokenizer.from_pretrained(folder)(SOURCES[0])["input_ids"] == tokenizer(SOURCES[0])["input_ids"]


def expected_translation(model, tokenizer):
    batch = tokenizer(SOURCES[:2], return_tensors="pt", padding=True)
    return tokenizer.batch_decode(model.generate(**batch, num_beams=3, max_new_tokens=8), skip_special_tokens=True)


def test_remote_code_loads_in_fresh_process_without_hf_seqkd(tmp_path, tokenizer):
    model, folder = save_tiny(tmp_path, tokenizer)
    out = run_fresh_python(
        f"""
        import json, sys
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        model = AutoModelForSeq2SeqLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        # Without hf_seqkd, AutoTokenizer reads config.json too, whose model type only the remote code knows.
        tokenizer = AutoTokenizer.from_pretrained({str(folder)!r}, trust_remote_code=True)
        batch = tokenizer({SOURCES[:2]!r}, return_tensors="pt", padding=True)
        sequences = model.generate(**batch, num_beams=3, max_new_tokens=8)
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        print(json.dumps({{"texts": texts, "imported": "hf_seqkd" in sys.modules, "cls": type(model).__module__}}))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["imported"] is False
    assert result["cls"].startswith("transformers_modules")
    assert result["texts"] == expected_translation(model, tokenizer)


def test_loads_without_trust_remote_code_once_hf_seqkd_is_imported(tmp_path, tokenizer):
    model, folder = save_tiny(tmp_path, tokenizer)
    out = run_fresh_python(
        f"""
        import json
        import hf_seqkd
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        model = AutoModelForSeq2SeqLM.from_pretrained({str(folder)!r}).eval()
        tokenizer = AutoTokenizer.from_pretrained({str(folder)!r})
        batch = tokenizer({SOURCES[:2]!r}, return_tensors="pt", padding=True)
        sequences = model.generate(**batch, num_beams=3, max_new_tokens=8)
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        print(json.dumps({{"texts": texts, "cls": type(model).__module__}}))
        """,
        cwd=tmp_path,
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["cls"] == "hf_seqkd.modeling_lstm_seq2seq"
    assert result["texts"] == expected_translation(model, tokenizer)
