"""generate() equals plain reference searches written here; the model's own search loops equal GenerationMixin's."""

import pytest
import torch
from helpers import random_batch, tiny_model
from transformers import GenerationMixin, StoppingCriteria, StoppingCriteriaList

from hf_seqkd import LSTMSeq2SeqForConditionalGeneration


def reference_greedy(model, input_ids, max_length):
    """Argmax, re-running the whole decoder on every prefix (no cache at all)."""
    prefix = [model.config.decoder_start_token_id]
    while len(prefix) < max_length:
        logits = model(input_ids=input_ids, decoder_input_ids=torch.tensor([prefix]), use_cache=False).logits
        prefix.append(int(logits[0, -1].argmax()))
        if prefix[-1] == model.config.eos_token_id:
            break
    return prefix


def reference_beam_search(model, input_ids, num_beams, max_length, length_penalty, early_stopping):
    """
    Textbook beam search over one source, with transformers' conventions: keep the 2K best continuations; an EOS
    among the first K finishes a hypothesis (score = sum log p / generated_length ** length_penalty); the K best
    others continue; at max_length the first K continuations finish. Every hypothesis re-runs the decoder over its
    whole prefix with no cache, so a decoder state that `generate()` drops, restarts or reorders wrongly shows.
    """
    eos, vocab = model.config.eos_token_id, model.config.decoder_vocab_size
    beams = [(0.0, [model.config.decoder_start_token_id])]  # (sum of log-probs, tokens)
    finished = []  # (final score, tokens)
    for cur_len in range(1, max_length):
        candidates = []
        for score, tokens in beams:
            logits = model(input_ids=input_ids, decoder_input_ids=torch.tensor([tokens]), use_cache=False).logits
            log_probs = logits[0, -1].float().log_softmax(-1).tolist()
            candidates += [(score + log_probs[v], tokens + [v]) for v in range(vocab)]
        candidates.sort(key=lambda c: -c[0])
        last_step = cur_len + 1 == max_length
        continuing = []
        for rank, (score, tokens) in enumerate(candidates[: 2 * num_beams]):
            if tokens[-1] == eos or last_step:
                if rank < num_beams:
                    finished.append((score / (len(tokens) - 1) ** length_penalty, tokens))
            elif len(continuing) < num_beams:
                continuing.append((score, tokens))
        finished = sorted(finished, key=lambda f: -f[0])[:num_beams]
        if last_step or (early_stopping is True and len(finished) == num_beams):
            break
        beams = continuing
    return finished


@pytest.mark.parametrize("variant", [{}, {"input_feeding": False}, {"bidirectional_encoder": True}])
def test_greedy_equals_argmax_over_full_prefix_reruns(variant):
    model = tiny_model(seed=3, **variant)
    input_ids, attention_mask = random_batch(batch_size=3, seed=4)
    # Make EOS a token that greedy search emits at step 3 of row 0, so that sequences of several lengths occur.
    eos = int(model.generate(input_ids=input_ids, attention_mask=attention_mask, max_length=4)[0, 3])
    model.config.eos_token_id = model.generation_config.eos_token_id = eos
    generated = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_length=12, num_beams=1)
    eos_seen = False
    for row in range(3):
        length = int(attention_mask[row].sum())
        expected = reference_greedy(model, input_ids[row : row + 1, :length], max_length=12)
        got = generated[row].tolist()[: len(expected)]
        assert got == expected
        eos_seen |= expected[-1] == model.config.eos_token_id
    assert eos_seen, "the test should exercise a sequence that stops before max_length"


@pytest.mark.parametrize("length_penalty, early_stopping", [(0.0, "never"), (1.0, True), (1.0, "never"), (0.6, False)])
def test_beam_search_equals_reference_sequences_and_scores(length_penalty, early_stopping):
    model = tiny_model(seed=3, eos_token_id=5)
    input_ids, attention_mask = random_batch(batch_size=3, seed=4)
    num_beams, max_length = 4, 9
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        max_length=max_length,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        return_dict_in_generate=True,
        output_scores=True,
    )
    finished_early = 0
    for row in range(3):
        length = int(attention_mask[row].sum())
        expected = reference_beam_search(
            model, input_ids[row : row + 1, :length], num_beams, max_length, length_penalty, early_stopping
        )
        for k, (score, tokens) in enumerate(expected):
            flat = row * num_beams + k
            assert out.sequences[flat].tolist()[: len(tokens)] == tokens
            assert abs(out.sequences_scores[flat].item() - score) < 1e-4
            finished_early += tokens[-1] == 5
    if early_stopping is not False:
        assert finished_early > 0, "the test should exercise hypotheses that end before max_length"


def test_padded_batch_generates_as_one_at_a_time():
    model = tiny_model(seed=5)
    input_ids, attention_mask = random_batch(batch_size=4, source_length=8, seed=6)
    for num_beams in (1, 5):
        batched = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_length=10
        )
        for row in range(4):
            length = int(attention_mask[row].sum())
            alone = model.generate(input_ids=input_ids[row : row + 1, :length], num_beams=num_beams, max_length=10)
            assert batched[row, : alone.shape[1]].tolist() == alone[0].tolist()


def test_output_scores_match_sequences_scores_for_greedy_and_beam():
    model = tiny_model(seed=7)
    input_ids, attention_mask = random_batch()
    greedy = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=6,
        min_new_tokens=6,
        return_dict_in_generate=True,
        output_scores=True,
    )
    assert len(greedy.scores) == 6 and greedy.sequences.shape == (3, 7)
    beam = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=3,
        max_new_tokens=6,
        min_new_tokens=6,
        length_penalty=0.0,
        return_dict_in_generate=True,
        output_scores=True,
    )
    transition = model.compute_transition_scores(
        beam.sequences, beam.scores, beam.beam_indices, normalize_logits=False
    )
    torch.testing.assert_close(transition.sum(-1), beam.sequences_scores, atol=1e-4, rtol=1e-4)


def test_sampling_is_reproducible_and_respects_top_k():
    model = tiny_model(seed=8)
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, max_new_tokens=8)
    torch.manual_seed(0)
    first = model.generate(**kwargs, temperature=0.7, top_p=0.9)
    torch.manual_seed(0)
    second = model.generate(**kwargs, temperature=0.7, top_p=0.9)
    assert torch.equal(first, second)
    torch.manual_seed(0)
    top1 = model.generate(**kwargs, top_k=1)
    greedy = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8)
    assert torch.equal(top1, greedy)
    torch.manual_seed(1)
    several = model.generate(**kwargs, num_return_sequences=3)
    assert several.shape[0] == 9


def generation_mixin_loops(monkeypatch):
    """Makes the model's generate() run GenerationMixin's own search loops instead of the model's."""
    monkeypatch.setattr(LSTMSeq2SeqForConditionalGeneration, "_sample", GenerationMixin._sample)
    monkeypatch.setattr(LSTMSeq2SeqForConditionalGeneration, "_beam_search", GenerationMixin._beam_search)


SEARCHES = [
    dict(num_beams=1),
    dict(num_beams=1, min_new_tokens=4, no_repeat_ngram_size=2),
    dict(num_beams=4, num_return_sequences=4, length_penalty=0.0, early_stopping="never"),
    dict(num_beams=4, num_return_sequences=2, length_penalty=1.0, early_stopping=True),
    dict(num_beams=3, length_penalty=1.0, early_stopping="never"),
    dict(num_beams=3, length_penalty=0.6, early_stopping=False),
    dict(num_beams=3, length_penalty=-0.5, early_stopping=False, min_new_tokens=3),
    dict(num_beams=4, no_repeat_ngram_size=2, repetition_penalty=1.3),
]


def with_tied_scores(model):
    """Tokens 50-99 get the output weights of tokens 0-49: every score has a twin, as bfloat16 logits often have."""
    with torch.no_grad():
        model.lm_head.weight[50:] = model.lm_head.weight[:50]
        model.lm_head.bias[50:] = model.lm_head.bias[:50]
    return model


@pytest.mark.parametrize("ties", [False, True], ids=["", "tied scores"])
@pytest.mark.parametrize("batch_size", [3, 5])  # 3 x beams: transposed weight copies; 5 x beams > 8 rows: as stored
@pytest.mark.parametrize("search", SEARCHES, ids=lambda search: "-".join(f"{k}={v}" for k, v in search.items()))
def test_model_search_loops_give_generation_mixins_tokens(search, batch_size, ties, monkeypatch):
    """The model's own `_sample` / `_beam_search` (issue 17) return what GenerationMixin's loops return, also where
    scores tie (equal scores are ordered by `torch.topk`, so the same ones must be compared in the same layout)."""
    ended_early = 0
    for seed in range(4):
        model = with_tied_scores(tiny_model(seed=seed)) if ties else tiny_model(seed=seed)
        input_ids, attention_mask = random_batch(batch_size=batch_size, seed=seed + 10)
        # EOS: a token that greedy search emits third in row 0, so that hypotheses of several lengths occur.
        eos = int(model.generate(input_ids=input_ids, attention_mask=attention_mask, max_length=4)[0, 3])
        model.config.eos_token_id = model.generation_config.eos_token_id = eos
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, max_length=9, **search)
        with monkeypatch.context() as patch:
            patch.setattr(GenerationMixin, "_sample", fail_if_called)
            patch.setattr(GenerationMixin, "_beam_search", fail_if_called)
            own = model.generate(**kwargs)
        with monkeypatch.context() as patch:
            generation_mixin_loops(patch)
            expected = model.generate(**kwargs)
        assert own.shape == expected.shape and torch.equal(own, expected), (seed, own, expected)
        ended_early += int((own[:, 1:-1] == eos).any())
    assert ended_early, "the searches should exercise hypotheses that end before max_length"


def fail_if_called(*args, **kwargs):
    raise AssertionError("GenerationMixin's loop ran where the model's own should have")


def test_model_sampling_loop_draws_what_generation_mixins_draws(monkeypatch):
    model = tiny_model(seed=8)
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, max_new_tokens=8, top_k=20)
    torch.manual_seed(0)
    own = model.generate(**kwargs, num_return_sequences=2)
    generation_mixin_loops(monkeypatch)
    torch.manual_seed(0)
    assert torch.equal(own, model.generate(**kwargs, num_return_sequences=2))


class StopAfterFour(StoppingCriteria):
    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), input_ids.shape[1] >= 4, dtype=torch.bool)


@pytest.mark.parametrize(
    "extra",
    [
        dict(return_dict_in_generate=True, output_scores=True),
        dict(stopping_criteria=StoppingCriteriaList([StopAfterFour()])),
        dict(use_cache=False),
        "forward hook",
    ],
    ids=["return_dict", "own stopping criterion", "no cache", "forward hook"],
)
@pytest.mark.parametrize("num_beams", [1, 3])
def test_searches_the_model_loops_do_not_cover_run_generation_mixins(extra, num_beams, monkeypatch):
    model = tiny_model(seed=2)
    input_ids, attention_mask = random_batch()
    calls = []
    for name in ("_sample", "_beam_search"):
        original = getattr(GenerationMixin, name)
        monkeypatch.setattr(
            GenerationMixin,
            name,
            lambda *args, _original=original, **kwargs: calls.append(1) or _original(*args, **kwargs),
        )
    if extra == "forward hook":
        model.register_forward_hook(lambda module, args, output: None)
        extra = {}
    model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_length=6, **extra)
    assert calls == [1]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_model_search_loops_continue_a_decoder_prompt_as_generation_mixin_does(num_beams, monkeypatch):
    model = tiny_model(seed=1, eos_token_id=5)
    input_ids, attention_mask = random_batch()
    prompt = torch.tensor([[model.config.decoder_start_token_id, 7, 9]] * 3)  # forced first target tokens
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=prompt, num_beams=num_beams)
    own = model.generate(**kwargs, max_length=10)
    assert torch.equal(own[:, :3], prompt)
    generation_mixin_loops(monkeypatch)
    assert torch.equal(own, model.generate(**kwargs, max_length=10))


def test_beam_search_options_generation_mixin_refuses_are_still_refused():
    model = tiny_model()
    input_ids, attention_mask = random_batch()
    with pytest.raises(ValueError, match="low_memory"):
        model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=3, low_memory=True)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_model_prepared_for_bf16_mixed_precision_generates_through_its_wrapped_forward(num_beams):
    """Accelerate's mixed precision (what `Trainer(bf16=True)` does) wraps the model object's `forward` in autocast; a
    search that called the decoder's step directly after a first step through it mixed bfloat16 and float32."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    model = tiny_model(seed=3).eval()
    input_ids, attention_mask = random_batch()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what every step runs under, once wrapped
        expected = model.generate(**kwargs)
    try:
        prepared = Accelerator(mixed_precision="bf16", cpu=True).prepare(model)
        assert "forward" in prepared.__dict__
        assert torch.equal(prepared.generate(**kwargs), expected)
    finally:  # the process-wide state would refuse the later tests' Trainers (mixed precision "no")
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
