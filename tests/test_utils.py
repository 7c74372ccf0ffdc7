"""hf_seqkd.utils: the helpers the modules share (batching, length limits, eval mode, fingerprints, the machine)."""

import pytest
import torch
from helpers import tiny_marian, tiny_model

from hf_seqkd.utils import (
    describe_machine,
    eval_mode,
    length_sorted_batches,
    model_fingerprint,
    output_length_limit,
    pad_right,
    source_length_limit,
)


def test_length_sorted_batches_cover_every_index_once_shortest_first():
    lengths = [5, 1, 4, 1, 3]
    batches = list(length_sorted_batches(lengths, 2))
    assert batches == [[1, 3], [4, 2], [0]]
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))


def test_pad_right():
    assert pad_right([[4, 5, 6], [7]], -100).tolist() == [[4, 5, 6], [7, -100, -100]]


def test_length_limits(tokenizer):
    assert source_length_limit(tiny_model(max_source_length=40), tokenizer) == 40
    marian = tiny_marian(tokenizer)  # 64 positions; the tokenizer's own limit is larger
    assert source_length_limit(marian, tokenizer) == min(64, tokenizer.model_max_length)
    assert output_length_limit(7) == {"max_length": 8}


def test_eval_mode_restores_the_mode_even_after_an_error():
    model = tiny_model().train()
    with pytest.raises(RuntimeError), eval_mode(model):
        assert not model.training
        raise RuntimeError("inside")
    assert model.training
    with eval_mode(model.eval()):
        pass
    assert not model.training


def test_model_fingerprint_follows_the_weights_not_the_location():
    model = tiny_model()
    before = model_fingerprint(model)
    model.config._name_or_path = "somewhere/else"
    assert model_fingerprint(model) == before
    with torch.no_grad():
        model.lm_head.bias[0] += 1
    assert model_fingerprint(model) != before


def test_describe_machine_names_the_cpu_and_torch():
    text = describe_machine("cpu")
    assert f"torch {torch.__version__}" in text and "cores" in text and "torch threads" in text
    assert describe_machine() == (describe_machine("cuda") if torch.cuda.is_available() else text)
