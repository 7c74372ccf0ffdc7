"""
The common checks transformers runs on its own models (`ConfigTester`, `ModelTesterMixin`), on the LSTM model.

Those mixins live in transformers' repository (`tests/test_configuration_common.py`, `tests/test_modeling_common.py`)
and are not installed with it: the wheel has no `tests` package, and the sdist's `test_modeling_common.py` imports
`tests/generation/test_utils.py`, `tests/exporters/` and `tests/utils/`, which it does not ship. So the checks that
apply to an LSTM seq2seq model are written here, one test each, named after the mixin's; those that do not apply
(attention heads and masks, `inputs_embeds`, rotary embeddings, attention implementations, gradient checkpointing,
per-layer hidden states) are checked to be refused clearly where a caller could ask for them. Generation's checks
(greedy, beam, sampling against references) are in test_generation.py.
"""

import inspect
import json

import pytest
import torch
from helpers import random_batch, tiny_config, tiny_model
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from transformers import AutoConfig, AutoModelForSeq2SeqLM
from transformers.loss.loss_utils import ForMaskedLMLoss

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration, LSTMSeq2SeqModel

# ---- ConfigTester -------------------------------------------------------------------------------------------------


def test_config_common_properties_and_attribute_map():
    config = tiny_config(decoder_layers=3, decoder_init="zeros")
    assert config.hidden_size == 16 and config.num_hidden_layers == 3  # attribute_map: num_hidden_layers -> decoder
    config.num_hidden_layers = 4
    assert config.decoder_layers == 4
    assert LSTMSeq2SeqConfig().to_dict()["model_type"] == "lstm_seq2seq"  # initialises without parameters


def test_config_to_json_string_file_and_save_pretrained_round_trip(tmp_path):
    config = tiny_config(attention_score="dot", target_vocab_size=80)
    assert json.loads(config.to_json_string())["attention_score"] == "dot"
    config.to_json_file(tmp_path / "config.json")
    assert LSTMSeq2SeqConfig.from_json_file(tmp_path / "config.json").to_dict() == config.to_dict()
    config.save_pretrained(tmp_path / "sub" / "folder")

    def contents(loaded):
        return {key: value for key, value in loaded.to_dict().items() if key != "_name_or_path"}

    assert contents(LSTMSeq2SeqConfig.from_pretrained(tmp_path / "sub", subfolder="folder")) == contents(config)
    assert contents(AutoConfig.from_pretrained(tmp_path / "sub" / "folder")) == contents(config)


def test_config_from_pretrained_takes_overrides_and_returns_unused_kwargs(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    config, unused = LSTMSeq2SeqConfig.from_pretrained(
        tmp_path, hidden_size=32, embedding_size=32, not_a_field=1, return_unused_kwargs=True
    )
    assert config.hidden_size == 32 and unused == {"not_a_field": 1}


def test_config_with_num_labels():
    config = tiny_config(num_labels=5)
    assert len(config.id2label) == 5 and config.num_labels == 5


def test_config_is_a_typed_strict_dataclass():
    """Fields are typed: a wrong type fails at once, on construction and on assignment, naming the field."""
    with pytest.raises(StrictDataclassFieldValidationError, match="hidden_size"):
        tiny_config(hidden_size="16")
    config = tiny_config()
    with pytest.raises(StrictDataclassFieldValidationError, match="dropout"):
        config.dropout = "0.1"
    config.dropout = 1.5  # a value of the right type: checked by the class validators, as transformers runs them
    with pytest.raises(StrictDataclassClassValidationError, match="`dropout` must be in"):
        config.validate()
    # A bool is no size: the type check refuses it (huggingface_hub >= 2), else the value check does.
    with pytest.raises((StrictDataclassFieldValidationError, ValueError), match="vocab_size"):
        tiny_config(vocab_size=True)


def test_saved_config_keys_are_those_of_the_bundled_model(tmp_path):
    """config.json keeps the keys a saved model has always had, so every saved folder still loads."""
    bundled = json.loads(open("models/bible-es-en-teacher/config.json").read())
    config = LSTMSeq2SeqConfig(**{k: v for k, v in bundled.items() if k not in ("architectures", "model_type")})
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(saved) - {"auto_map"} == set(bundled) - {"architectures"}
    assert {key: saved[key] for key in saved if key in bundled and key != "transformers_version"} == {
        key: bundled[key] for key in saved if key in bundled and key != "transformers_version"
    }


# ---- ModelTesterMixin ---------------------------------------------------------------------------------------------


def inputs(vocab_size=100):
    input_ids, attention_mask = random_batch(vocab_size=vocab_size)
    labels = torch.randint(3, vocab_size, (input_ids.shape[0], 5), generator=torch.Generator().manual_seed(0))
    labels[1, 3:] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def test_forward_signature_and_main_input_name():
    for model_class in (LSTMSeq2SeqModel, LSTMSeq2SeqForConditionalGeneration):
        names = list(inspect.signature(model_class.forward).parameters)[1:4]
        assert names == ["input_ids", "attention_mask", "decoder_input_ids"]
        assert model_class.main_input_name == "input_ids"
    names = list(inspect.signature(LSTMSeq2SeqForConditionalGeneration.forward).parameters)
    assert names[4] == "decoder_attention_mask" and "labels" in names


def test_save_load_and_determinism(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        first, second = model(**inputs()).logits, model(**inputs()).logits
    assert torch.equal(first, second)
    model.save_pretrained(tmp_path)
    loaded = LSTMSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs()).logits, first)
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_model_outputs_equivalence_of_tuple_and_dict():
    model = tiny_model()
    with torch.no_grad():
        output = model(**inputs(), output_attentions=True)
        as_tuple = model(**inputs(), output_attentions=True, return_dict=False)
    expected = output.to_tuple()
    assert len(as_tuple) == len(expected)
    for got, want in zip(as_tuple, expected):
        if torch.is_tensor(want):
            assert torch.equal(got, want)
    encoder = model.get_encoder()
    tuple_encoding = encoder(inputs()["input_ids"], return_dict=False)
    assert isinstance(tuple_encoding, tuple) and torch.equal(tuple_encoding[0], output.encoder_last_hidden_state)


def test_attention_outputs():
    model = tiny_model()
    batch = inputs()
    with torch.no_grad():
        output = model(**batch, output_attentions=True)
    (weights,) = output.cross_attentions
    assert weights.shape == (*batch["labels"].shape, batch["input_ids"].shape[1])  # (B, T, S): one head
    assert torch.allclose(weights.sum(-1), torch.ones(batch["labels"].shape))
    assert model(**batch).cross_attentions is None


def test_hidden_states_are_refused_not_ignored():
    model = tiny_model()
    batch = inputs()
    for call in (
        lambda: model(**batch, output_hidden_states=True),
        lambda: model.model(batch["input_ids"], decoder_input_ids=batch["input_ids"], output_hidden_states=True),
        lambda: model.get_encoder()(batch["input_ids"], output_hidden_states=True),
        lambda: model.generate(
            batch["input_ids"], max_new_tokens=2, output_hidden_states=True, return_dict_in_generate=True
        ),
    ):
        with pytest.raises(ValueError, match="output_hidden_states=True: the LSTM model keeps no per-layer"):
            call()


def test_loss_is_transformers_loss_helper():
    """The loss is transformers' `ForMaskedLM` helper (labels aligned with logits), num_items_in_batch included."""
    model = tiny_model()
    assert model.loss_type == "ForMaskedLM"
    batch = inputs()
    output = model(**batch)
    assert torch.equal(output.loss, ForMaskedLMLoss(output.logits, batch["labels"], 100))
    summed = model(**batch, num_items_in_batch=torch.tensor(20)).loss
    assert torch.allclose(summed, ForMaskedLMLoss(output.logits, batch["labels"], 100, num_items_in_batch=20))


def test_training_gives_every_parameter_a_gradient():
    model = tiny_model().train()
    model(**inputs()).loss.backward()
    without = [name for name, param in model.named_parameters() if param.grad is None or not param.grad.any()]
    assert without == []


def test_model_get_set_embeddings():
    model = tiny_model()
    assert isinstance(model.get_input_embeddings(), torch.nn.Embedding)
    assert isinstance(model.get_output_embeddings(), torch.nn.Linear)
    replacement = torch.nn.Embedding(100, 16, padding_idx=0)
    model.set_input_embeddings(replacement)
    assert model.get_input_embeddings() is replacement and model.model.encoder.embed_tokens is replacement


def test_init_weights_uniform_and_zero_padding():
    model = LSTMSeq2SeqForConditionalGeneration(tiny_config(init_range=0.05))
    for name, param in model.named_parameters():
        assert param.abs().max() <= 0.05, name
    for embeddings in (model.model.encoder.embed_tokens, model.model.decoder.embed_tokens):
        assert not embeddings.weight[0].any()  # the padding row


def test_dtype_on_loading_and_mismatched_sizes(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=torch.float16).lm_head.weight.dtype == torch.float16
    bigger = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, vocab_size=120, ignore_mismatched_sizes=True)
    assert bigger.lm_head.weight.shape == (120, 16)


def test_gradient_checkpointing_is_refused():
    assert not LSTMSeq2SeqForConditionalGeneration.supports_gradient_checkpointing
    model = tiny_model()
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable  # 5.25+
    with pytest.raises(ValueError, match="does not support (gradient|activation) checkpointing"):
        enable()
