"""Translation in one call: texts in, texts out (transformers 5 removed the `translation` pipeline)."""

import logging
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .utils import eval_mode, length_sorted_batches, output_length_limit, source_length_limit

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_MEASURED_DTYPES: dict[str, torch.dtype] = {}


def fastest_dtype(device: str | torch.device = "cpu", min_speedup: float = 1.3) -> torch.dtype:
    """
    `torch.bfloat16` where this device multiplies the matrices of decoding (320 x 512 by 512 x 4096: 64 sources x 5
    beams against an output layer) at least `min_speedup` times faster in bfloat16 than in float32, else
    `torch.float32`. Measured once per device and process, and logged: CPUs differ (an AMD Zen 3 without bf16
    instructions multiplied bfloat16 about 150x slower than float32, an Intel Xeon with AMX about 8x faster), so the
    choice is made by measurement, never by assumption.
    """
    device = torch.device(device)
    if str(device) in _MEASURED_DTYPES:
        return _MEASURED_DTYPES[str(device)]
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(320, 512, device=device).to(dtype)
        b = torch.randn(512, 4096, device=device).to(dtype)
        best = float("inf")
        for _ in range(5):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        seconds[dtype] = best
    speedup = seconds[torch.float32] / seconds[torch.bfloat16]
    chosen = torch.bfloat16 if speedup >= min_speedup else torch.float32
    logger.info(f"dtype auto on {device}: bfloat16 matrix products {speedup:.2f}x float32's speed: {chosen}.")
    _MEASURED_DTYPES[str(device)] = chosen
    return chosen


def resolve_dtype(name: str, device: str | torch.device = "cpu") -> torch.dtype:
    """A dtype name (`float32`, `bfloat16`, `float16`) as a torch dtype; `auto` is [`fastest_dtype`] on `device`."""
    return fastest_dtype(device) if name == "auto" else DTYPES[name]


def load_translation_model(
    model_name_or_path: str, device: str | torch.device | None = None, trust_remote_code: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Loads a seq2seq model and its tokenizer from a folder or Hub id, in eval mode, on `device`."""
    model = AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    # The tokenizer reads config.json too, so it needs the same trust for a model type known only to remote code.
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def translate(
    texts: Sequence[str],
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    num_beams: int = 5,
    batch_size: int = 64,
    max_source_length: int | None = None,
    max_new_tokens: int | None = None,
    progress: bool = False,
    **generate_kwargs,
) -> list[str]:
    """
    Translates `texts` with any transformers seq2seq model.

    Sentences are sorted by length so that each batch holds similar lengths (little padding), translated batch by
    batch under `torch.inference_mode`, and returned in the input order.

    Args:
        texts (`Sequence[str]`): sentences to translate.
        model (`PreTrainedModel` or `str`): a seq2seq model, or a folder / Hub id to load one (and its tokenizer)
            from.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): needed when `model` is a model object.
        num_beams (`int`, *optional*, defaults to 5): beam size; 1 is greedy search.
        batch_size (`int`, *optional*, defaults to 64): sentences per `generate` call.
        max_source_length (`int`, *optional*): longer sources are truncated to this many tokens (and a warning says
            how many were). Defaults to the model's `max_source_length`, else the tokenizer's `model_max_length`.
        max_new_tokens (`int`, *optional*): cap on output length; defaults to the model's generation config.
        progress (`bool`, *optional*, defaults to `False`): show a progress bar.
        generate_kwargs: passed to `model.generate` (e.g. `length_penalty`, `do_sample`).

    Returns:
        `list[str]`: one detokenized translation per input text.
    """
    if isinstance(texts, str):
        raise TypeError("`texts` must be a sequence of strings; wrap a single sentence in a list.")
    if isinstance(model, str):
        model, loaded_tokenizer = load_translation_model(model)
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise ValueError("Pass the model's `tokenizer` (or a model folder / Hub id instead of a model object).")
    if num_beams < 1 or batch_size < 1:
        raise ValueError(f"num_beams and batch_size must be >= 1, got {num_beams} and {batch_size}.")
    if max_source_length is None:
        max_source_length = source_length_limit(model, tokenizer)
    if max_new_tokens is not None:
        generate_kwargs.update(output_length_limit(max_new_tokens))

    # verbose=False: sources over the limit are truncated below, with a warning that counts them.
    encoded = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    too_long = [i for i, ids in enumerate(encoded) if len(ids) > max_source_length]
    if too_long:
        # Re-encoded with truncation so that the tokenizer keeps its end-of-sequence token.
        truncated = tokenizer([texts[i] for i in too_long], truncation=True, max_length=max_source_length)
        for i, ids in zip(too_long, truncated["input_ids"]):
            encoded[i] = ids
        logger.warning(f"{len(too_long)} of {len(texts)} sources were truncated to {max_source_length} tokens.")
    translations = [""] * len(encoded)
    with eval_mode(model), torch.inference_mode(), tqdm(total=len(encoded), disable=not progress, unit="sent") as bar:
        for batch_indices in length_sorted_batches([len(ids) for ids in encoded], batch_size):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_indices]}, return_tensors="pt").to(
                model.device
            )
            outputs = model.generate(**batch, num_beams=num_beams, **generate_kwargs)
            for index, text in zip(batch_indices, tokenizer.batch_decode(outputs, skip_special_tokens=True)):
                translations[index] = text.strip()
            bar.update(len(batch_indices))
    return translations
