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
# Rows of a search step when the caller does not say: 64 sources x 5 beams, batch translation and Seq-KD.
DEFAULT_SEARCH_ROWS = 320
_MEASURED_DTYPES: dict[tuple, torch.dtype] = {}


def fastest_dtype(
    device: str | torch.device = "cpu", rows: int = DEFAULT_SEARCH_ROWS, min_speedup: float = 1.3
) -> torch.dtype:
    """
    `torch.bfloat16` where this device multiplies the matrices of a search step of `rows` rows (batch size x beams:
    `rows` x 512 by 512 x 4096, as against an output layer) at least `min_speedup` times faster in bfloat16 than in
    float32, else `torch.float32` ([`faster_dtype`]). Measured once per device, row count and thread count, and
    logged: CPUs differ (an AMD Zen 3 without bf16 instructions multiplied bfloat16 about 150x slower than float32, an
    Intel Xeon with AMX 3-12x faster at 32-320 rows), and so do row counts: on that Xeon one to five rows multiply
    0.6-0.75x as fast in bfloat16 (matrix-vector products, bound by fixed costs), and generate() over one sentence
    ran 0.75x (greedy) and 0.89x (beam 5) as fast in bfloat16 as in float32 (README, Speed). So the choice is made by
    measurement at the search's size, never by assumption.
    """
    device = torch.device(device)
    key = (str(device), rows, torch.get_num_threads())
    if key in _MEASURED_DTYPES:
        return _MEASURED_DTYPES[key]
    seconds = {dtype: _product_seconds(device, dtype, rows) for dtype in (torch.float32, torch.bfloat16)}
    chosen = faster_dtype(seconds, min_speedup)
    speedup = seconds[torch.float32] / seconds[torch.bfloat16]
    logger.info(
        f"dtype auto on {device}, {rows} rows a step: bfloat16 matrix products {speedup:.2f}x float32's speed: "
        f"{chosen}."
    )
    _MEASURED_DTYPES[key] = chosen
    return chosen


def faster_dtype(seconds: dict[torch.dtype, float], min_speedup: float = 1.3) -> torch.dtype:
    """bfloat16 when it took at most 1 / `min_speedup` of float32's time (`seconds`, per dtype); else float32."""
    return torch.bfloat16 if seconds[torch.float32] >= min_speedup * seconds[torch.bfloat16] else torch.float32


def _product_seconds(device: torch.device, dtype: torch.dtype, rows: int) -> float:
    """Best of 5 timings of a (rows, 512) x (512, 4096) product in `dtype` on `device`."""
    a = torch.randn(rows, 512, device=device).to(dtype)
    b = torch.randn(512, 4096, device=device).to(dtype)
    best = float("inf")
    for _ in range(6):  # the first one warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def resolve_dtype(name: str, device: str | torch.device = "cpu", rows: int = DEFAULT_SEARCH_ROWS) -> torch.dtype:
    """
    A dtype name (`float32`, `bfloat16`, `float16`) as a torch dtype; `auto` is [`fastest_dtype`] on `device` for
    searches of `rows` rows a step (batch size x beams).
    """
    return fastest_dtype(device, rows) if name == "auto" else DTYPES[name]


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
