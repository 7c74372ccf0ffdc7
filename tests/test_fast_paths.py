"""The decoder's fast paths equal the plain computation they replace (issue 17); no timing here."""

import importlib
from pathlib import Path

import pytest
import torch
from helpers import random_batch, tiny_model
from torch import nn
from transformers.modeling_outputs import Seq2SeqLMOutput

from hf_seqkd.modeling_lstm_seq2seq import (
    DECODER_STATE_FIELD,
    LSTMSeq2SeqDecoder,
    _decoding_step_output,
    decoder_state,
)


def reference_decoder(decoder, input_ids, state):
    """The decoder as written in Luong et al. (2015): per step, each nn.LSTMCell called on its whole input."""
    embeds = decoder.dropout(decoder.embed_tokens(input_ids))  # (B, T, E)
    hidden, cell, input_feed = list(state.hidden), list(state.cell), state.input_feed
    attention = decoder.attention
    outputs = []
    for t in range(input_ids.shape[1]):
        inputs = embeds[:, t]
        if decoder.config.input_feeding:
            inputs = torch.cat([inputs, input_feed], dim=-1)  # [y_{t-1}; h~_{t-1}]
        for i, layer in enumerate(decoder.lstm.layers):
            hidden[i], cell[i] = layer(inputs, (hidden[i], cell[i]))
            inputs = hidden[i]
        query = inputs.unsqueeze(1)  # (B, 1, H)
        scores = torch.bmm(query, state.keys.transpose(1, 2)) + state.memory_bias  # (B, 1, S)
        context = torch.bmm(torch.softmax(scores, dim=-1), state.memory)  # (B, 1, H)
        attentional = torch.tanh(attention.output_proj(torch.cat([context, query], dim=-1)))  # (B, 1, H)
        input_feed = attentional.squeeze(1)
        outputs.append(attentional)
    return torch.cat(outputs, dim=1)  # (B, T, H)


def decoder_inputs(model, target_length=6, batch_size=3):
    input_ids, attention_mask = random_batch(batch_size=batch_size)
    encoder_outputs = model.get_encoder()(input_ids, attention_mask)
    state = model.model.decoder.init_state(encoder_outputs, attention_mask)
    decoder_input_ids = torch.randint(3, model.config.decoder_vocab_size, (batch_size, target_length))
    return decoder_input_ids, state


@pytest.mark.parametrize("variant", [{}, {"input_feeding": False}, {"decoder_init": "zeros", "decoder_layers": 3}])
def test_teacher_forced_decoder_and_its_gradients_equal_the_plain_cell_loop(variant):
    """The embeddings' share of layer 0's gates, projected once for all steps, gives the plain cells' outputs and
    gradients."""
    model = tiny_model(**variant)
    decoder = model.model.decoder
    decoder_input_ids, state = decoder_inputs(model)
    fast, _, _ = decoder(decoder_input_ids, state)
    params = list(decoder.parameters())
    fast_grads = torch.autograd.grad(fast.square().sum(), params, allow_unused=True, retain_graph=True)
    slow = reference_decoder(decoder, decoder_input_ids, state)
    slow_grads = torch.autograd.grad(slow.square().sum(), params, allow_unused=True)
    torch.testing.assert_close(fast, slow)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads):
        if slow_grad is not None:
            torch.testing.assert_close(fast_grad, slow_grad)


STEP_VARIANTS = [
    {},
    {"attention_score": "dot"},
    {"input_feeding": False},
    {"decoder_init": "zeros", "decoder_layers": 3},
]


@pytest.mark.parametrize("variant", STEP_VARIANTS)
@pytest.mark.parametrize("batch_size", [3, 10])  # transposed copies of the weights (<= 8 rows), the weights as stored
def test_decoding_steps_equal_the_plain_cell_loop(variant, batch_size):
    """Without autograd the decoder runs its decoding steps (weights applied directly, transposed copies for a few
    rows); one call over T tokens equals T calls of one token, and both equal the modules' loop."""
    model = tiny_model(**variant)
    decoder = model.model.decoder
    with torch.no_grad():
        decoder_input_ids, state = decoder_inputs(model, batch_size=batch_size)
        assert state.step_weights.output_proj.is_contiguous() == (batch_size <= decoder.transposed_weight_rows)
        fast, _, weights = decoder(decoder_input_ids, state)
        step_state, steps = state, []
        for t in range(decoder_input_ids.shape[1]):
            attentional, step_state, _ = decoder(decoder_input_ids[:, t : t + 1], step_state)
            steps.append(attentional)
        slow = reference_decoder(decoder, decoder_input_ids, state)
    assert torch.equal(torch.cat(steps, dim=1), fast)
    torch.testing.assert_close(fast, slow)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    assert step_state.seen_tokens == decoder_input_ids.shape[1] and step_state.step_weights is state.step_weights


def test_states_made_with_autograd_or_for_the_concat_score_take_the_module_path():
    model = tiny_model()
    _, state = decoder_inputs(model)
    assert state.step_weights is None
    with torch.no_grad():
        _, state = decoder_inputs(tiny_model(attention_score="concat"))
    assert state.step_weights is None


def test_decoding_step_output_equals_the_output_object_built_as_usual():
    logits, encoder_last, cross = torch.randn(2, 1, 5), torch.randn(2, 4, 3), (torch.rand(2, 1, 4),)
    state = object()
    fast = _decoding_step_output(logits, state, cross, encoder_last)
    fields = {DECODER_STATE_FIELD: state, "cross_attentions": cross, "encoder_last_hidden_state": encoder_last}
    usual = Seq2SeqLMOutput(logits=logits, **fields)
    assert type(fast) is type(usual) and list(fast.keys()) == list(usual.keys())
    assert all(a is b for a, b in zip(fast.to_tuple(), usual.to_tuple())) and len(fast.to_tuple()) == 4
    for name in Seq2SeqLMOutput.__dataclass_fields__:
        assert getattr(fast, name) is getattr(usual, name), name
        assert (name in fast) == (name in usual) and fast.get(name) is usual.get(name)
    assert fast[DECODER_STATE_FIELD] is state and decoder_state(fast) is state and fast[0] is logits
    bare = _decoding_step_output(logits, None, None, None)
    assert list(bare.keys()) == ["logits"] and bare.loss is None and decoder_state(bare) is None


def test_transposed_weight_copies_follow_the_weights():
    """A search of a few rows multiplies by transposed copies of the weights; an in-place update of a weight or a
    change of dtype remakes them, so logits stay those of the module path."""
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=torch.randint(3, 100, (3, 4)))
    for change in (None, "lm_head", "cell", "dtype"):
        with torch.no_grad():
            if change == "lm_head":
                model.lm_head.weight.mul_(-1.0)
            elif change == "cell":
                model.model.decoder.lstm.layers[1].weight_hh.add_(0.5)
            elif change == "dtype":
                model.to(torch.float64)
            fast = model(**kwargs).logits
        torch.testing.assert_close(fast, model(**kwargs).logits)  # with autograd: the modules, no copies


def test_known_input_gates_are_the_embedding_part_of_layer_zero():
    model = tiny_model()
    lstm = model.model.decoder.lstm
    embeds = torch.randn(3, 5, model.config.embedding_size)
    feed = torch.zeros(3, 5, model.config.hidden_size)
    layer = lstm.layers[0]
    expected = nn.functional.linear(torch.cat([embeds, feed], dim=-1), layer.weight_ih, layer.bias_ih)  # (B, T, 4H)
    torch.testing.assert_close(lstm.known_input_gates(embeds), expected)


class WrappedCell(nn.LSTMCell):
    """A cell that is not a plain nn.LSTMCell (as a quantized or instrumented one would be): called as a module."""

    calls = 0

    def forward(self, inputs, hx=None):
        WrappedCell.calls += 1
        return super().forward(inputs, hx)


def test_replaced_cells_are_called_as_modules_and_give_the_same_logits():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    decoder_input_ids = torch.randint(3, 100, (3, 4))
    expected = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    layers = model.model.decoder.lstm.layers
    for i, layer in enumerate(layers):
        wrapped = WrappedCell(layer.input_size, layer.hidden_size)
        wrapped.load_state_dict(layer.state_dict())
        layers[i] = wrapped
    WrappedCell.calls = 0
    got = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert WrappedCell.calls == 4 * len(layers)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():  # the decoding steps assume plain cells: a replaced one is called as a module there too
        got = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert WrappedCell.calls == 8 * len(layers)
    torch.testing.assert_close(got, expected)


def test_tuple_output_of_the_base_model_matches_its_output_object():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=torch.ones(3, 2).long())
    full = model.model(**kwargs, output_attentions=True)
    attentional, state, weights, encoder_last = model.model(**kwargs, output_attentions=True, return_dict=False)
    torch.testing.assert_close(attentional, full.last_hidden_state)
    torch.testing.assert_close(weights, full.cross_attentions[0])
    torch.testing.assert_close(encoder_last, full.encoder_last_hidden_state)
    assert state.get_seq_length() == decoder_state(full).get_seq_length() == 2
    assert model.model(**kwargs, use_cache=False, return_dict=False)[1] is None


def test_prepare_inputs_for_generation_feeds_only_the_tokens_the_state_has_not_seen():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    prefix = torch.tensor([[1, 7, 9]] * 3)
    first = model.prepare_inputs_for_generation(prefix, attention_mask=attention_mask, use_cache=True, labels=prefix)
    assert torch.equal(first["decoder_input_ids"], prefix) and first["cache"] is None and "labels" not in first
    out = model(input_ids=input_ids, **first)
    grown = torch.cat([prefix, out.logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    for name in ("cache", "past_key_values"):  # the state under either transformers name
        step = model.prepare_inputs_for_generation(grown, **{name: decoder_state(out)}, attention_mask=attention_mask)
        assert torch.equal(step["decoder_input_ids"], grown[:, 3:]) and step["cache"] is decoder_state(out)
        assert step["attention_mask"] is attention_mask


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_with_and_without_the_decoder_state_agree(num_beams):
    """Without a cache generate() re-runs the whole prefix (teacher forcing); with it, one step per token."""
    model = tiny_model(seed=4)
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=7)
    assert torch.equal(model.generate(**kwargs, use_cache=True), model.generate(**kwargs, use_cache=False))


def test_small_searches_run_on_one_thread_and_restore_the_thread_count(monkeypatch):
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    seen = []
    step = type(model).forward
    monkeypatch.setattr(
        type(model), "forward", lambda self, *a, **k: seen.append(torch.get_num_threads()) or step(self, *a, **k)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = model.generate(input_ids=input_ids[:1], num_beams=5, max_new_tokens=3)  # 1 x 5 rows: one thread
        assert set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        model.generate(input_ids=input_ids, num_beams=3, max_new_tokens=3)  # 3 x 3 rows: left alone
        assert set(seen) == {2} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    torch.set_num_threads(1)
    try:
        assert torch.equal(model.generate(input_ids=input_ids[:1], num_beams=5, max_new_tokens=3), one)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_the_search_loops_run_untracked_and_return_ordinary_tensors(monkeypatch, num_beams):
    """The model's own loops run under inference mode; what generate() returns can still be changed in place, and the
    model still trains afterwards (the transposed weight copies made in the search are not parameters)."""
    model = tiny_model(seed=5)
    input_ids, attention_mask = random_batch(batch_size=2)
    modes = []
    step = type(model)._next_decoding_step
    monkeypatch.setattr(
        type(model),
        "_next_decoding_step",
        lambda self, *a: modes.append(torch.is_inference_mode_enabled()) or step(self, *a),
    )
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=4)
    sequences = model.generate(**kwargs)
    assert modes and all(modes)
    assert not sequences.is_inference()
    sequences[:, 0] = model.config.pad_token_id  # in place, outside inference mode
    model.train()
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=sequences[:, 1:].contiguous()).loss
    loss.backward()
    assert model.lm_head.weight.grad is not None


def test_embedding_gates_are_precomputed_under_autograd_only(monkeypatch):
    """Without autograd every step multiplies B rows whatever the target length, so a row's numbers do not depend on
    how long the other targets of its batch are (sharded Seq-KD equals one pass exactly)."""
    model = tiny_model()
    lstm = model.model.decoder.lstm
    calls = []
    original = lstm.known_input_gates
    monkeypatch.setattr(lstm, "known_input_gates", lambda embeds: calls.append(embeds.shape) or original(embeds))
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=torch.randint(3, 100, (3, 5)))
    with torch.no_grad():
        no_grad = model(**kwargs).logits
    assert calls == []
    torch.testing.assert_close(model(**kwargs).logits, no_grad)
    assert calls == [(3, 5, model.config.embedding_size)]


def test_the_speed_benchmarks_search_alone_model_does_no_decoder_arithmetic(monkeypatch):
    """`generate() alone` in benchmarks/bench_speed.py: the model's own search loops run on stored logits."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    bench_speed = importlib.import_module("bench_speed")
    row = bench_speed.Row(hidden=16, layers=2, vocab=50, batch=2, sentences=2, beam_sentences=2)
    model = bench_speed.fixed_logits_model(row)
    monkeypatch.setattr(LSTMSeq2SeqDecoder, "step", lambda *args: pytest.fail("the decoder's step ran"))
    for num_beams in (1, 5):
        tokens = bench_speed.hf_generate(model, bench_speed.source_batches(row, 2), num_beams)
        assert tokens == 2 * bench_speed.TARGET_LENGTH
