"""Train and load the joint subword tokenizer (BPE over source and target text, with `tokenizers`)."""

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

# Ids 0-3 are fixed so that they match LSTMSeq2SeqConfig's defaults.
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    min_frequency: int = 2,
    model_max_length: int = 256,
) -> PreTrainedTokenizerFast:
    """
    Trains a BPE tokenizer and wraps it as a transformers tokenizer.

    Args:
        texts (`Iterable[str]`):
            Training text. For the default joint vocabulary, pass source and target sentences together (e.g.
            `itertools.chain(sources, targets)`).
        vocab_size (`int`, *optional*, defaults to 8000):
            Size of the vocabulary, special tokens included.
        min_frequency (`int`, *optional*, defaults to 2):
            Least frequent pair that BPE still merges.
        model_max_length (`int`, *optional*, defaults to 256):
            Default truncation length of the returned tokenizer.

    Returns:
        A `PreTrainedTokenizerFast` with `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3 that appends `</s>` to every sequence
        (sources and `text_target=` alike), pads on the right, decodes back to detokenized text, and saves and loads
        with `save_pretrained` / `AutoTokenizer.from_pretrained`.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}.")
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.NFKC()
    # Metaspace marks word starts with "▁", so decoding restores the spaces exactly (as SentencePiece does).
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS.values()),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_non_empty(texts), trainer=trainer)
    eos = SPECIAL_TOKENS["eos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tokenizer.token_to_id(eos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
        **SPECIAL_TOKENS,
    )


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text and text.strip():
            yield text
