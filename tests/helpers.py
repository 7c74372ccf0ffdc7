"""Tiny models and batches shared by the tests."""

import torch
from transformers import MarianConfig, MarianMTModel

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


def tiny_marian(tokenizer, seed: int = 0, scale: float = 1.0) -> MarianMTModel:
    """
    A tiny MarianMT over `tokenizer`'s vocabulary, built from a config (no download): a transformers seq2seq model
    of another architecture, whose decoder starts from <pad> where the LSTM's starts from <s>.
    """
    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(scale)
    return model


def save_tiny_teacher(folder, tokenizer, max_new_tokens: int) -> str:
    """A tiny LSTM teacher over `tokenizer`'s vocabulary, saved with it in `folder`, that stops after a few tokens."""
    model = tiny_model(seed=2, vocab_size=len(tokenizer))
    model.generation_config.max_new_tokens = max_new_tokens
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def load_recipe(name: str = "train_student"):
    """A recipe script under recipes/ (e.g. `train_student`), imported as a module, for its `main` and `ARGUMENTS`."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe
