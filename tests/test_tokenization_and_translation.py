"""The joint subword tokenizer and the one-call translate()."""

import pytest
import torch
from helpers import SOURCES, TARGETS, tiny_model
from transformers import AutoTokenizer

from hf_seqkd import translation
from hf_seqkd.tokenization import train_tokenizer
from hf_seqkd.translation import translate


def test_tokenizer_special_ids_match_config_defaults(tokenizer):
    config = tiny_model().config
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (
        config.pad_token_id,
        config.bos_token_id,
        config.eos_token_id,
    )
    assert tokenizer.unk_token_id == 3 and len(tokenizer) == 120


def test_tokenizer_encodes_targets_and_decodes_back(tokenizer):
    batch = tokenizer(SOURCES[:3], text_target=TARGETS[:3], padding=True)
    for ids in batch["input_ids"]:
        assert tokenizer.eos_token_id in ids  # every source ends with </s> (then padding on the right)
        assert ids[: ids.index(tokenizer.eos_token_id)].count(tokenizer.pad_token_id) == 0
    assert tokenizer.batch_decode(batch["labels"], skip_special_tokens=True) == TARGETS[:3]


def test_tokenizer_saves_and_loads_with_auto_tokenizer(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(SOURCES, text_target=TARGETS)["labels"] == tokenizer(SOURCES, text_target=TARGETS)["labels"]
    assert loaded.padding_side == "right" and loaded.eos_token == "</s>"


def test_tokenizer_rejects_too_small_vocabulary():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(SOURCES, vocab_size=4)


def test_translate_sorts_batches_and_restores_order(tmp_path, tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    texts = [SOURCES[2], "", SOURCES[0] * 3, SOURCES[1]]
    expected = []
    for text in texts:
        batch = tokenizer([text], return_tensors="pt")
        out = model.generate(**batch, num_beams=2, max_new_tokens=6)
        expected.append(tokenizer.decode(out[0], skip_special_tokens=True).strip())
    assert translate(texts, model, tokenizer, num_beams=2, batch_size=3, max_new_tokens=6) == expected
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert translate(texts, str(tmp_path), num_beams=2, batch_size=2, max_new_tokens=6) == expected


def test_translate_truncates_long_sources_and_keeps_eos(tokenizer, caplog):
    model = tiny_model(vocab_size=len(tokenizer), max_source_length=8)
    long_text = " ".join(SOURCES)
    with caplog.at_level("WARNING"):
        out = translate([long_text, SOURCES[0][:5]], model, tokenizer, num_beams=1, max_new_tokens=4)
    assert len(out) == 2 and "1 of 2 sources were truncated to 8 tokens" in caplog.text
    truncated = tokenizer([long_text], truncation=True, max_length=8, return_tensors="pt")
    assert truncated["input_ids"][0, -1] == tokenizer.eos_token_id
    expected = model.generate(**truncated, num_beams=1, max_new_tokens=4)
    assert out[0] == tokenizer.decode(expected[0], skip_special_tokens=True).strip()


def test_translate_rejects_a_bare_string(tokenizer):
    with pytest.raises(TypeError, match="sequence of strings"):
        translate("hola", tiny_model(vocab_size=len(tokenizer)), tokenizer)
    assert torch.is_grad_enabled()


def test_dtype_auto_is_measured_once_and_is_float32_or_bfloat16(caplog):
    import logging

    from hf_seqkd import translation

    translation._MEASURED_DTYPES.clear()
    with caplog.at_level(logging.INFO, logger="hf_seqkd.translation"):
        chosen = translation.resolve_dtype("auto")
        assert translation.resolve_dtype("auto") is chosen
    assert chosen in (torch.float32, torch.bfloat16)
    assert caplog.text.count("dtype auto on cpu") == 1  # the measurement, logged once
    assert translation.resolve_dtype("float16") is torch.float16


def test_faster_dtype_needs_the_minimum_speedup():
    assert translation.faster_dtype({torch.float32: 1.0, torch.bfloat16: 0.5}) is torch.bfloat16
    assert translation.faster_dtype({torch.float32: 1.0, torch.bfloat16: 0.8}) is torch.float32  # 1.25x < 1.3x
    assert translation.faster_dtype({torch.float32: 1.0, torch.bfloat16: 3.6}) is torch.float32  # Zen 3
    assert translation.faster_dtype({torch.float32: 1.0, torch.bfloat16: 0.8}, min_speedup=1.2) is torch.bfloat16


def test_dtype_auto_is_measured_at_the_rows_of_the_search(monkeypatch):
    """On a CPU with AMX, bfloat16 multiplies a batch several times faster but one sentence's matrix-vector products
    slower (README, Speed): auto is measured per row count, so that it can choose float32 for one sentence."""
    measured = []

    def amx_like(device, dtype, rows):  # seconds of the product: bfloat16 has a fixed cost, float32 none
        measured.append((dtype, rows))
        return rows * 1.0 if dtype == torch.float32 else rows * 0.1 + 10.0

    monkeypatch.setattr(translation, "_product_seconds", amx_like)
    monkeypatch.setattr(translation, "_MEASURED_DTYPES", {})
    assert translation.resolve_dtype("auto", rows=1) is torch.float32
    assert translation.resolve_dtype("auto", rows=5) is torch.float32
    assert translation.resolve_dtype("auto") is torch.bfloat16  # 64 sources x 5 beams
    assert translation.resolve_dtype("auto", rows=1) is torch.float32  # remembered, not measured again
    assert [rows for _, rows in measured] == [1, 1, 5, 5] + [translation.DEFAULT_SEARCH_ROWS] * 2
