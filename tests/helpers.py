"""Tiny models and batches shared by the tests."""

import torch

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration

SOURCES = [
    "En el principio creó Dios los cielos y la tierra.",
    "Y la tierra estaba desordenada y vacía.",
    "Y dijo Dios: Sea la luz: y fué la luz.",
    "Y vió Dios que la luz era buena.",
    "Y llamó Dios á la luz Día, y á las tinieblas llamó Noche.",
    "Y fué la tarde y la mañana un día.",
]
TARGETS = [
    "In the beginning, God created the heavens and the earth.",
    "The earth was formless and empty.",
    "God said, Let there be light, and there was light.",
    "God saw the light, and saw that it was good.",
    "God called the light Day, and the darkness he called Night.",
    "There was evening and there was morning, the first day.",
]


def tiny_config(**overrides) -> LSTMSeq2SeqConfig:
    """vocab 100, hidden 16: big enough to exercise every path, small enough to run in milliseconds."""
    kwargs = dict(vocab_size=100, embedding_size=16, hidden_size=16, encoder_layers=2, decoder_layers=2, dropout=0.0)
    kwargs.update(overrides)
    return LSTMSeq2SeqConfig(**kwargs)


def tiny_model(seed: int = 0, **overrides) -> LSTMSeq2SeqForConditionalGeneration:
    torch.manual_seed(seed)
    model = LSTMSeq2SeqForConditionalGeneration(tiny_config(**overrides)).eval()
    # Uniform(-0.1, 0.1) weights give nearly flat distributions; larger weights make searches take real decisions.
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(8.0)
    return model


def random_batch(batch_size=3, source_length=7, seed=1, vocab_size=100):
    """Right-padded source ids in [3, vocab) with rows of decreasing length."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (batch_size, source_length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row in range(1, batch_size):
        length = max(1, source_length - 2 * row)
        input_ids[row, length:] = 0
        attention_mask[row, length:] = 0
    return input_ids, attention_mask
