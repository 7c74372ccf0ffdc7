"""
The helpers that several hf_seqkd modules share, in one place: batching by length, the length limits of a model,
eval mode for a block, scoring generated sequences, a model's parameters and fingerprint, and the machine a speed was
measured on. Everything here works for any transformers seq2seq model, and imports nothing else from hf_seqkd.
"""

import contextlib
import hashlib
import json
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

# ---- Batching -----------------------------------------------------------------------------------------------------


def length_sorted_batches(lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length, so that batches carry little padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_right(sequences: list[list[int]], value: int) -> torch.Tensor:
    """Right-pads `sequences` with `value` into a (len(sequences), longest) LongTensor."""
    padded = torch.full((len(sequences), max(map(len, sequences))), value, dtype=torch.long)
    for row, ids in enumerate(sequences):
        padded[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return padded


# ---- Length limits ------------------------------------------------------------------------------------------------


def source_length_limit(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """
    The longest source `model` takes, in tokens: its config's `max_source_length` (the LSTM's), else the tokenizer's
    `model_max_length` capped by the config's `max_position_embeddings` (a transformer's position table, e.g.
    Marian's: a longer source would index past it). Sources are truncated to it wherever they are encoded.
    """
    limit = getattr(model.config, "max_source_length", None)
    if limit:
        return limit
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(tokenizer.model_max_length, positions) if positions else tokenizer.model_max_length


def output_length_limit(max_new_tokens: int) -> dict:
    """
    `generate` kwargs that cap a seq2seq output at `max_new_tokens` tokens, as `max_length` (the decoder prompt is the
    one start token). Passing `max_new_tokens` to a model whose generation config sets `max_length`, as ours does,
    makes transformers warn on every call that both are set.
    """
    return {"max_length": max_new_tokens + 1}


# ---- Models -------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode (no dropout) inside the block, the model's previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_parameters(model: torch.nn.Module) -> dict:
    """
    Counts the entries of a model's parameters.

    Args:
        model (`torch.nn.Module`): the model.

    Returns:
        `dict`: `params`, the number of parameter entries, and `params_nonzero`, those that are not zero (what is left
        after weight pruning). `model.parameters()` yields a tied (shared) tensor once, so it is counted once.
    """
    params = list(model.parameters())
    return {
        "params": sum(param.numel() for param in params),
        "params_nonzero": sum(int(torch.count_nonzero(param.detach())) for param in params),
    }


def model_fingerprint(model: PreTrainedModel) -> str:
    """A hash of a model's configuration and weights: what its outputs depend on (the keys of cached teacher data)."""
    config = model.config.to_dict()
    for key in ("_name_or_path", "transformers_version"):  # where it was loaded from changes no output
        config.pop(key, None)
    hasher = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        hasher.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return hasher.hexdigest()


# ---- Scoring ------------------------------------------------------------------------------------------------------


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) negative log-likelihoods of `labels`, 0 where a label is -100; in float32 for half-precision models."""
    nll = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none"
    )
    return nll.view(labels.shape)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """The id(s) `generate()` stops on: the generation config's (which may be a list), else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return torch.tensor(eos if isinstance(eos, list) else [eos], dtype=torch.long)


def sequence_log_probs(
    model: PreTrainedModel, batch: dict, sequences: torch.LongTensor, eos_ids: torch.LongTensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Exact log p(ŷ|x) of generated sequences, by teacher forcing them through the model (generate's
    `sequences_scores` are divided by a length penalty).

    Args:
        model (`PreTrainedModel`): the seq2seq model that generated `sequences`.
        batch (`dict`): its encoder inputs (`input_ids`, `attention_mask`), one row per sequence.
        sequences (`torch.LongTensor` of shape `(batch_size, length)`): generate's output, decoder start token first.
        eos_ids (`torch.LongTensor`): the end-of-sequence id(s), from [`eos_token_ids`].

    Returns:
        `(log_probs, lengths)`: (B,) sum of token log-probs up to and including the first EOS (all tokens for an
        unfinished output), and (B,) the number of tokens scored.
    """
    # sequences = [decoder start] ŷ_1 ... EOS [pad ...]: score every position up to the first EOS.
    labels = sequences[:, 1:]
    is_eos = torch.isin(labels, eos_ids.to(labels.device)).int()
    # cumsum - is_eos is 0 up to and including the first EOS, > 0 after it; an unfinished output keeps all.
    labels = labels.masked_fill((is_eos.cumsum(dim=1) - is_eos) > 0, -100)
    # Feeding exactly generate's decoder inputs reproduces its conditioning, whatever the start token.
    logits = model(**batch, decoder_input_ids=sequences[:, :-1], use_cache=False).logits
    return -token_nll(logits, labels).sum(dim=1), labels.ne(-100).sum(dim=1)


# ---- The machine --------------------------------------------------------------------------------------------------


def describe_machine(device: str | torch.device | None = None) -> str:
    """
    The machine a speed was measured on, in words: the GPU's name, or the CPU's model, cores and torch threads.
    `device` defaults to the GPU when there is one.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    model = platform.processor() or platform.machine() or "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
