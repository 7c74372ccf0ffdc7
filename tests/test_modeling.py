"""The LSTM seq2seq model: config validation, forward/loss, step-by-step parity, padding, bad input."""

import pytest
import torch
from helpers import random_batch, tiny_config, tiny_model

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration
from hf_seqkd.modeling_lstm_seq2seq import decoder_state, shift_tokens_right

VARIANTS = {
    "general": {},
    "dot": {"attention_score": "dot"},
    "concat": {"attention_score": "concat"},
    "no_input_feeding": {"input_feeding": False},
    "bidirectional": {"bidirectional_encoder": True},
    "zeros_init_3_layers": {"decoder_init": "zeros", "decoder_layers": 3},
    "tied": {"tie_word_embeddings": True},
    "separate_target_vocab": {"target_vocab_size": 80},
}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_score": "additive"}, "attention_score"),
        ({"bidirectional_encoder": True, "hidden_size": 15}, "even"),
        ({"encoder_layers": 2, "decoder_layers": 3}, "decoder_init='zeros'"),
        ({"tie_word_embeddings": True, "embedding_size": 8}, "embedding_size == hidden_size"),
        ({"eos_token_id": 100}, "eos_token_id"),
        ({"decoder_init": "learned"}, "decoder_init"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**kwargs)


def test_config_presets_and_round_trip(tmp_path):
    assert (LSTMSeq2SeqConfig.teacher_4x1000().hidden_size, LSTMSeq2SeqConfig.teacher_4x1000().decoder_layers) == (
        1000,
        4,
    )
    assert LSTMSeq2SeqConfig.student_2x500().hidden_size == 500
    assert LSTMSeq2SeqConfig.student_2x300(vocab_size=123).vocab_size == 123
    config = tiny_config(attention_score="concat", target_vocab_size=80)
    config.save_pretrained(tmp_path)
    loaded = LSTMSeq2SeqConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.decoder_vocab_size == 80


def test_paper_sizes_parameter_counts():
    """2x500 student with an 8k joint vocabulary: embeddings, two LSTMs (input feeding), attention and softmax."""
    config = LSTMSeq2SeqConfig.student_2x500(vocab_size=8000)
    model = LSTMSeq2SeqForConditionalGeneration(config)
    vocab, hidden = 8000, 500
    lstm = lambda inputs: 4 * hidden * (inputs + hidden) + 8 * hidden  # noqa: E731
    expected = (
        2 * vocab * hidden  # source and target embeddings
        + lstm(hidden)
        + lstm(hidden)  # encoder
        + lstm(2 * hidden)
        + lstm(hidden)  # decoder, first layer reads [y; h~]
        + hidden * hidden  # W_a
        + 2 * hidden * hidden  # W_c
        + hidden * vocab
        + vocab  # W_s and its bias
    )
    assert model.num_parameters() == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_is_mean_token_cross_entropy_and_ignores_minus_100(variant):
    model = tiny_model(**VARIANTS[variant])
    input_ids, attention_mask = random_batch()
    labels = torch.randint(3, model.config.decoder_vocab_size, (3, 6))
    labels[1, 4:] = -100
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 6, model.config.decoder_vocab_size)
    log_probs = out.logits.log_softmax(-1)
    mask = labels != -100
    expected = -log_probs[mask].gather(-1, labels[mask][:, None]).mean()
    torch.testing.assert_close(out.loss, expected)
    # Labels are shifted right after the decoder start token, as in transformers.
    decoder_input_ids = shift_tokens_right(labels, model.config.pad_token_id, model.config.decoder_start_token_id)
    assert decoder_input_ids[0, 0] == model.config.decoder_start_token_id
    assert torch.equal(decoder_input_ids[0, 1:], labels[0, :-1])
    assert decoder_input_ids[1, 5] == model.config.pad_token_id
    same = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    torch.testing.assert_close(same.logits, out.logits)


def test_num_items_in_batch_makes_accumulated_loss_exact():
    model = tiny_model()
    input_ids, attention_mask = random_batch(batch_size=4)
    labels = torch.randint(3, 100, (4, 6))
    labels[1, 2:] = -100
    labels[3, 5:] = -100
    full = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    total = labels.ne(-100).sum()
    halves = sum(
        model(
            input_ids=input_ids[rows],
            attention_mask=attention_mask[rows],
            labels=labels[rows],
            num_items_in_batch=total,
        ).loss
        for rows in (slice(0, 2), slice(2, 4))
    )
    torch.testing.assert_close(halves, full)


@pytest.mark.parametrize("variant", VARIANTS)
def test_step_by_step_logits_equal_teacher_forced_logits(variant):
    model = tiny_model(**VARIANTS[variant])
    input_ids, attention_mask = random_batch()
    decoder_input_ids = torch.randint(3, model.config.decoder_vocab_size, (3, 5))
    full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    state, steps = None, []
    encoder_outputs = model.get_encoder()(input_ids, attention_mask)
    for t in range(decoder_input_ids.shape[1]):
        out = model(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids[:, t : t + 1],
            cache=state,
        )
        state = decoder_state(out)
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert state.get_seq_length() == 5


def test_decoder_state_is_read_under_both_names():
    """transformers >= 5.24 passes the state as `cache`, older releases as `past_key_values`: both continue it."""
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    start = torch.full((3, 1), model.config.decoder_start_token_id)
    first = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start)
    state = decoder_state(first)
    assert state is not None and state.get_seq_length() == 1
    next_tokens = first.logits[:, -1].argmax(-1, keepdim=True)
    by_cache = model(decoder_input_ids=next_tokens, cache=state).logits
    by_past = model(decoder_input_ids=next_tokens, past_key_values=state).logits
    full = model(
        input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=torch.cat([start, next_tokens], 1)
    ).logits[:, -1:]
    torch.testing.assert_close(by_cache, full)
    torch.testing.assert_close(by_past, full)
    other = decoder_state(model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=start))
    with pytest.raises(ValueError, match="not as both"):
        model(decoder_input_ids=next_tokens, cache=state, past_key_values=other)


@pytest.mark.parametrize("variant", ["general", "bidirectional", "concat"])
def test_padding_never_leaks(variant):
    """Each row of a padded batch gives the logits it gives alone, whatever the padding holds."""
    model = tiny_model(**VARIANTS[variant])
    input_ids, attention_mask = random_batch(batch_size=3, source_length=9)
    decoder_input_ids = torch.randint(3, 100, (3, 4))
    batched = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    for row in range(3):
        length = int(attention_mask[row].sum())
        alone = model(input_ids=input_ids[row : row + 1, :length], decoder_input_ids=decoder_input_ids[row : row + 1])
        torch.testing.assert_close(batched[row : row + 1], alone.logits)
    garbage = input_ids.masked_fill(attention_mask == 0, 57)
    other = model(input_ids=garbage, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(other, batched)


def test_attention_weights_are_zero_on_padding():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        decoder_input_ids=torch.ones(3, 2).long(),
        output_attentions=True,
    )
    weights = out.cross_attentions[0]  # (B, T, S)
    assert weights.shape == (3, 2, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2))
    assert (weights.masked_select(attention_mask[:, None, :].expand_as(weights) == 0) == 0).all()


def test_general_keys_are_projected_once_per_source():
    """W_a h_s is computed when the decoder state is built, not at every decoder step."""
    model = tiny_model()
    calls = []
    model.model.decoder.attention.key_proj.register_forward_hook(lambda *args: calls.append(1))
    input_ids, attention_mask = random_batch()
    model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=6, min_new_tokens=6, num_beams=3)
    assert len(calls) == 1


def test_tied_embeddings_share_one_matrix_and_survive_save_load(tmp_path):
    model = tiny_model(tie_word_embeddings=True)
    assert model.lm_head.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    model.save_pretrained(tmp_path)
    loaded = LSTMSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(loaded.lm_head.weight, model.lm_head.weight)


def test_training_steps_reduce_the_loss():
    model = tiny_model(dropout=0.1).train()
    input_ids, attention_mask = random_batch(batch_size=4)
    labels = input_ids.masked_fill(attention_mask == 0, -100)  # learn to copy
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda: {"input_ids": torch.zeros(0, 5, dtype=torch.long)}, "Empty batch"),
        (lambda: {"input_ids": torch.zeros(2, 0, dtype=torch.long)}, "Empty source"),
        (lambda: {"input_ids": torch.tensor([[5, 6, 2], [0, 0, 0]])}, r"Empty source in rows \[1\]"),
        (lambda: {"input_ids": torch.tensor([[5, 600, 2]])}, "vocabulary has 100 tokens"),
        (lambda: {"input_ids": torch.tensor([[5, -1, 2]])}, "vocabulary has 100 tokens"),
        (lambda: {"input_ids": torch.full((1, 300), 5)}, "max_source_length=256"),
        (
            lambda: {"input_ids": torch.tensor([[0, 5, 2]]), "attention_mask": torch.tensor([[0, 1, 1]])},
            "right padding",
        ),
    ],
)
def test_bad_source_gives_clear_error(make_inputs, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=message):
        model(**make_inputs(), decoder_input_ids=torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=message):
        model.generate(**make_inputs(), max_new_tokens=3)


def test_bad_target_gives_clear_error():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    with pytest.raises(ValueError, match="`labels` holds token ids"):
        model(input_ids=input_ids, attention_mask=attention_mask, labels=torch.full((3, 2), 100))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(input_ids=input_ids, attention_mask=attention_mask)
