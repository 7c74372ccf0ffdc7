"""BLEU, perplexity, p(ŷ|x), parameter counts and the results files of hf_seqkd.evaluation."""

import json
import math

import pytest
import torch
from helpers import SOURCES, TARGETS, tiny_model

from hf_seqkd.evaluation import (
    MARKDOWN_HEADER,
    TIMING_KEYS,
    corpus_scores,
    decode_and_score,
    evaluate_model,
    markdown_row,
    reference_perplexity,
    write_results,
)
from hf_seqkd.translation import translate
from hf_seqkd.utils import count_parameters

MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module")
def model(tokenizer):
    # With dropout, any scoring done outside eval mode would be random and break the exact comparisons below.
    return tiny_model(vocab_size=len(tokenizer), dropout=0.5)


@pytest.fixture(scope="module")
def results(model, tokenizer):
    return evaluate_model(model, tokenizer, SOURCES, TARGETS, num_beams=2, batch_size=4, max_new_tokens=MAX_NEW_TOKENS)


def test_corpus_scores_of_references_against_themselves():
    scores = corpus_scores(TARGETS, TARGETS)
    assert scores["bleu"] == pytest.approx(100.0) and scores["chrf"] == pytest.approx(100.0)
    for key in ("bleu_signature", "chrf_signature"):
        assert isinstance(scores[key], str) and "nrefs:1" in scores[key]


def test_mismatched_or_empty_inputs_raise(model, tokenizer):
    with pytest.raises(ValueError, match="pair up"):
        corpus_scores(TARGETS, TARGETS[:-1])
    with pytest.raises(ValueError, match="empty"):
        corpus_scores([], [])
    with pytest.raises(ValueError, match="pair up"):
        reference_perplexity(model, tokenizer, SOURCES, TARGETS[:2])


def test_perplexity_matches_a_one_sentence_at_a_time_loop(model, tokenizer):
    total_nll, total_tokens = 0.0, 0
    with torch.no_grad():
        for source, target in zip(SOURCES, TARGETS):
            batch = tokenizer([source], text_target=[target], return_tensors="pt")
            log_probs = model(**batch).logits.log_softmax(-1)[0]
            labels = batch["labels"][0]  # ends with </s>, which counts
            total_nll -= log_probs[torch.arange(len(labels)), labels].sum().item()
            total_tokens += len(labels)
    expected = math.exp(total_nll / total_tokens)
    for batch_size in (1, 4, 64):
        assert reference_perplexity(model, tokenizer, SOURCES, TARGETS, batch_size=batch_size) == pytest.approx(
            expected, rel=1e-5
        )


def test_mean_log_prob_is_the_teacher_forced_log_prob_of_the_greedy_ids(model, tokenizer):
    out = decode_and_score(model, tokenizer, SOURCES, num_beams=1, batch_size=4, max_new_tokens=MAX_NEW_TOKENS)
    eos = tokenizer.eos_token_id
    reference_log_probs, num_tokens = [], 0
    with torch.no_grad():
        for source in SOURCES:
            batch = tokenizer([source], return_tensors="pt")
            ids = model.generate(**batch, num_beams=1, max_new_tokens=MAX_NEW_TOKENS)[0].tolist()
            ids = ids[: ids.index(eos) + 1] if eos in ids[1:] else ids  # drop padding after </s>
            logits = model(**batch, decoder_input_ids=torch.tensor([ids[:-1]])).logits[0]
            targets = torch.tensor(ids[1:])  # everything but the decoder start token
            reference_log_probs.append(logits.log_softmax(-1)[torch.arange(len(targets)), targets].sum().item())
            num_tokens += len(targets)
    assert out["mean_log_prob"] == pytest.approx(sum(reference_log_probs) / len(SOURCES), rel=1e-5)
    p = sum(math.exp(lp) for lp in reference_log_probs) / len(SOURCES)
    assert out["p_output"] == pytest.approx(p, rel=1e-4)
    assert out["tokens_per_sec"] * out["seconds"] == pytest.approx(num_tokens)
    # Same decoding as translate(): same sorting, batching and detokenization.
    assert out["hypotheses"] == translate(
        SOURCES, model, tokenizer, num_beams=1, batch_size=4, max_new_tokens=MAX_NEW_TOKENS
    )
    words = sum(len(h.split()) for h in out["hypotheses"])
    assert out["words_per_sec"] * out["seconds"] == pytest.approx(words)


def test_evaluation_is_deterministic_and_restores_train_mode(model, tokenizer, results):
    model.train()
    again = evaluate_model(
        model, tokenizer, SOURCES, TARGETS, num_beams=2, batch_size=4, max_new_tokens=MAX_NEW_TOKENS
    )
    assert model.training  # evaluated in eval mode (no dropout), then put back
    model.eval()
    drop_timing = lambda r: {k: v for k, v in r.items() if k not in TIMING_KEYS}  # noqa: E731
    assert drop_timing(again) == drop_timing(results)
    assert set(TIMING_KEYS) <= set(results) and all(results[key] > 0 for key in TIMING_KEYS)
    assert len(results["hypotheses_greedy"]) == len(results["hypotheses_beam"]) == results["num_sentences"] == 6
    assert results["num_beams"] == 2 and 0 < results["p_beam_output"] < 1 and results["ppl"] > 1


def test_params_nonzero_drops_after_zeroing_weights(tokenizer):
    model = tiny_model(vocab_size=len(tokenizer))
    before = count_parameters(model)
    assert before["params"] == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model.lm_head.weight[:10] = 0.0
    after = count_parameters(model)
    assert after["params"] == before["params"]
    assert after["params_nonzero"] == before["params_nonzero"] - 10 * model.lm_head.weight.shape[1]


def test_tied_parameters_are_counted_once(tokenizer):
    untied = count_parameters(tiny_model(vocab_size=len(tokenizer)))["params"]
    tied = count_parameters(tiny_model(vocab_size=len(tokenizer), tie_word_embeddings=True))["params"]
    assert untied - tied == len(tokenizer) * 16  # one (vocab, hidden) matrix fewer


def test_results_json_round_trips_and_hypothesis_files(tmp_path, results):
    path = tmp_path / "out" / "tiny.json"
    write_results(results, path)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == {k: v for k, v in results.items() if not k.startswith("hypotheses_")}
    for name in ("greedy", "beam"):
        lines = (tmp_path / "out" / f"tiny.{name}.txt").read_text(encoding="utf-8").split("\n")
        assert lines[-1] == "" and lines[:-1] == results[f"hypotheses_{name}"]


def test_markdown_row_has_one_cell_per_column(results):
    header, separator = MARKDOWN_HEADER.split("\n")
    row = markdown_row("tiny", results)
    assert row.count("|") == header.count("|") == separator.count("|")
    assert row.startswith("| tiny | ") and f"{100 * results['p_beam_output']:.2f}%" in row
    assert "K |" in row  # ~16K nonzero parameters
