"""
Evaluation of translation models as Kim & Rush (2016) report it: BLEU (greedy and beam), perplexity of the references,
how peaked the model is (p(t=ŷ|s) of its own output), parameter counts and decoding speed.
"""

import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from sacrebleu.metrics import BLEU, CHRF
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .utils import (
    count_parameters,
    eos_token_ids,
    eval_mode,
    length_sorted_batches,
    output_length_limit,
    pad_right,
    sequence_log_probs,
    source_length_limit,
    token_nll,
)

logger = logging.getLogger(__name__)

# Keys whose values depend on the machine's load, not on the model.
TIMING_KEYS = ("words_per_sec_greedy", "words_per_sec_beam", "tokens_per_sec_greedy", "tokens_per_sec_beam")
# Keys that `write_results` writes as text files instead of into the JSON.
HYPOTHESIS_KEYS = {"hypotheses_greedy": "greedy", "hypotheses_beam": "beam"}

MARKDOWN_HEADER = (
    "| model | BLEU greedy | BLEU beam | ppl | p(t=ŷ) beam | nonzero params | words/s greedy | words/s beam |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """
    Corpus BLEU and chrF with sacrebleu's default settings (13a tokenization, one reference per sentence).

    Args:
        hypotheses (`Sequence[str]`): detokenized system outputs.
        references (`Sequence[str]`): one detokenized reference per hypothesis.

    Returns:
        `dict`: `bleu` and `chrf` (0-100) and their sacrebleu signatures `bleu_signature` / `chrf_signature`, which
        say how the scores were computed so that they can be compared across papers.
    """
    _check_parallel(hypotheses, references, "hypotheses", "references")
    bleu, chrf = BLEU(), CHRF()
    references = [list(references)]  # sacrebleu takes a list of reference *streams*
    return {
        "bleu": float(bleu.corpus_score(list(hypotheses), references).score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf": float(chrf.corpus_score(list(hypotheses), references).score),
        "chrf_signature": str(chrf.get_signature()),
    }


def reference_perplexity(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    batch_size: int = 64,
    progress: bool = False,
) -> float:
    """
    Perplexity of the references under teacher forcing: exp of the mean negative log-likelihood per target token.

    Every reference token counts once, the end-of-sequence token included, whatever the batching: token NLLs are
    summed over the whole corpus before dividing (a mean of batch means would weight short batches too much).

    Args:
        model (`PreTrainedModel`): any transformers seq2seq model whose forward takes `labels`.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer; references are encoded with `text_target=`.
        sources (`Sequence[str]`): source sentences.
        references (`Sequence[str]`): one reference translation per source.
        batch_size (`int`, *optional*, defaults to 64): sentence pairs per forward pass.
        progress (`bool`, *optional*, defaults to `False`): show a progress bar (on stderr, with an estimate of the
            time left).

    Returns:
        `float`: the perplexity.
    """
    _check_parallel(sources, references, "sources", "references")
    # Only the sources are truncated (as translate() does): a truncated reference would drop tokens from the score.
    limit = source_length_limit(model, tokenizer)
    source_ids = tokenizer(list(sources), truncation=True, max_length=limit)["input_ids"]
    # verbose=False: a reference over the tokenizer's model_max_length is scored whole (an LSTM decoder has no limit)
    # or cut below, with a warning that counts them, where the model's positions end.
    target_ids = tokenizer(text_target=list(references), verbose=False)["input_ids"]
    positions = getattr(model.config, "max_position_embeddings", None)  # a transformer's decoder takes no more
    if positions is not None and any(len(ids) > positions for ids in target_ids):
        count = sum(len(ids) > positions for ids in target_ids)
        logger.warning(f"Perplexity: {count} references longer than the model's {positions} positions are cut there.")
        target_ids = [ids[:positions] for ids in target_ids]
    pairs = list(zip(source_ids, target_ids))
    total_nll, total_tokens = 0.0, 0
    bar = tqdm(total=len(pairs), desc="Perplexity of the references", unit="sent", disable=not progress)
    with eval_mode(model), torch.inference_mode(), bar:
        for batch_indices in length_sorted_batches([len(s) + len(t) for s, t in pairs], batch_size):
            batch = tokenizer.pad({"input_ids": [pairs[i][0] for i in batch_indices]}, return_tensors="pt")
            # -100 rather than the pad id: padding never counts as a token (nor collides with a real pad token).
            labels = pad_right([pairs[i][1] for i in batch_indices], -100)
            batch, labels = batch.to(model.device), labels.to(model.device)
            # The model shifts `labels` right itself, so each model gets its own decoder start token.
            logits = model(**batch, labels=labels, use_cache=False).logits
            total_nll += token_nll(logits, labels).sum().item()
            total_tokens += labels.ne(-100).sum().item()
            bar.update(len(batch_indices))
    mean_nll = total_nll / total_tokens
    if not mean_nll < math.log(sys.float_info.max):  # NaN too
        logger.warning(
            f"Mean NLL of the references is {mean_nll:.4g} nats per token: the model is broken (diverged training?), "
            f"and its perplexity is reported as {'nan' if math.isnan(mean_nll) else 'inf'}."
        )
        return mean_nll if math.isnan(mean_nll) else math.inf
    return math.exp(mean_nll)


def decode_and_score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    num_beams: int,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> dict:
    """
    Translates `sources` and scores the translations ŷ under the model that produced them.

    Decodes as [`~hf_seqkd.translation.translate`] does (length-sorted batches, same detokenization, input order
    restored), but keeps the generated ids: log p(ŷ|x) is recomputed exactly by teacher forcing them through the model,
    because generate's `sequences_scores` are divided by a length penalty.

    Args:
        model (`PreTrainedModel`): any transformers seq2seq model.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer.
        sources (`Sequence[str]`): sentences to translate.
        num_beams (`int`): beam size; 1 is greedy search.
        batch_size (`int`, *optional*, defaults to 64): sentences per `generate` call.
        max_new_tokens (`int`, *optional*): cap on output length; defaults to the model's generation config.
        progress (`bool`, *optional*, defaults to `False`): show a progress bar (on stderr: sentences done, an
            estimate of the time left, and the words/s of `generate` so far).

    Returns:
        `dict`: `hypotheses` (detokenized, in input order); `seconds` spent in `generate` (not tokenizing nor
        scoring); `words_per_sec` (whitespace-separated output words) and `tokens_per_sec` (generated tokens, EOS
        included); `mean_log_prob`, the mean over sentences of log p(ŷ|x), and `p_output`, the mean of p(ŷ|x).
    """
    if isinstance(sources, str):
        raise TypeError("`sources` must be a sequence of strings; wrap a single sentence in a list.")
    if not sources:
        raise ValueError("`sources` is empty.")
    if num_beams < 1 or batch_size < 1:
        raise ValueError(f"num_beams and batch_size must be >= 1, got {num_beams} and {batch_size}.")
    generate_kwargs = {"num_beams": num_beams}
    if max_new_tokens is not None:
        generate_kwargs.update(output_length_limit(max_new_tokens))
    eos_ids = eos_token_ids(model, tokenizer)

    encoded = tokenizer(list(sources), truncation=True, max_length=source_length_limit(model, tokenizer))["input_ids"]
    hypotheses, log_probs = [""] * len(sources), [0.0] * len(sources)
    seconds, num_tokens, num_words = 0.0, 0, 0
    search = "Greedy search" if num_beams == 1 else f"Beam search ({num_beams})"
    bar = tqdm(total=len(sources), desc=search, unit="sent", disable=not progress)
    with eval_mode(model), torch.inference_mode(), bar:
        for batch_indices in length_sorted_batches([len(ids) for ids in encoded], batch_size):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in batch_indices]}, return_tensors="pt")
            batch = batch.to(model.device)
            _synchronize(model.device)
            start = time.perf_counter()
            sequences = model.generate(**batch, **generate_kwargs)
            _synchronize(model.device)  # CUDA runs asynchronously: wait for it before reading the clock
            seconds += time.perf_counter() - start

            sentence_log_probs, lengths = sequence_log_probs(model, batch, sequences, eos_ids)
            num_tokens += int(lengths.sum())
            texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
            for index, text, log_prob in zip(batch_indices, texts, sentence_log_probs.tolist()):
                hypotheses[index], log_probs[index] = text.strip(), log_prob
                num_words += len(hypotheses[index].split())
            bar.set_postfix_str(f"{_rate(num_words, seconds):.0f} words/s", refresh=False)
            bar.update(len(batch_indices))

    return {
        "hypotheses": hypotheses,
        "seconds": seconds,
        "words_per_sec": _rate(num_words, seconds),
        "tokens_per_sec": _rate(num_tokens, seconds),
        "mean_log_prob": sum(log_probs) / len(log_probs),
        "p_output": sum(math.exp(log_prob) for log_prob in log_probs) / len(log_probs),
    }


def evaluate_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    references: Sequence[str],
    num_beams: int = 5,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    progress: bool = False,
) -> dict:
    """
    Everything one row of Kim & Rush's result tables needs, for one model on one test set.

    Args:
        model (`PreTrainedModel`): any transformers seq2seq model; evaluated in eval mode, its mode restored after.
        tokenizer (`PreTrainedTokenizerBase`): its tokenizer.
        sources (`Sequence[str]`): source sentences.
        references (`Sequence[str]`): one reference translation per source.
        num_beams (`int`, *optional*, defaults to 5): beam size of the beam-search run (the other run is greedy).
        batch_size (`int`, *optional*, defaults to 64): sentences per batch.
        max_new_tokens (`int`, *optional*): cap on output length; defaults to the model's generation config.
        progress (`bool`, *optional*, defaults to `False`): a progress bar for each pass over `sources` (greedy
            search, beam search, perplexity), with an estimate of the time left.

    Returns:
        `dict`: a flat, JSON-serialisable dict with `bleu_greedy`, `bleu_beam`, `chrf_greedy`, `chrf_beam`,
        `bleu_signature`, `chrf_signature`, `ppl` (of the references), `p_greedy_output` / `p_beam_output` (mean
        p(ŷ|x) of the model's own outputs), `params`, `params_nonzero`, `words_per_sec_*`, `tokens_per_sec_*`,
        `num_sentences`, `num_beams`, and the translations as `hypotheses_greedy` / `hypotheses_beam`.
    """
    _check_parallel(sources, references, "sources", "references")
    results = {}
    with eval_mode(model):
        runs = {"greedy": decode_and_score(model, tokenizer, sources, 1, batch_size, max_new_tokens, progress)}
        # Beam search with one beam *is* greedy search: no need to decode twice.
        runs["beam"] = (
            runs["greedy"]
            if num_beams == 1
            else decode_and_score(model, tokenizer, sources, num_beams, batch_size, max_new_tokens, progress)
        )
        for name, run in runs.items():
            scores = corpus_scores(run["hypotheses"], references)
            results[f"bleu_{name}"] = scores["bleu"]
            results[f"chrf_{name}"] = scores["chrf"]
            results["bleu_signature"], results["chrf_signature"] = scores["bleu_signature"], scores["chrf_signature"]
        results["ppl"] = reference_perplexity(model, tokenizer, sources, references, batch_size, progress)
    for name, run in runs.items():
        results[f"p_{name}_output"] = run["p_output"]
    results.update(count_parameters(model))
    for name, run in runs.items():
        results[f"words_per_sec_{name}"] = run["words_per_sec"]
        results[f"tokens_per_sec_{name}"] = run["tokens_per_sec"]
    results["num_sentences"] = len(sources)
    results["num_beams"] = num_beams
    for name, run in runs.items():
        results[f"hypotheses_{name}"] = list(run["hypotheses"])
    return results


def markdown_row(name: str, results: dict) -> str:
    """
    One row of the table under [`MARKDOWN_HEADER`].

    Args:
        name (`str`): the model's name in the first column.
        results (`dict`): what [`evaluate_model`] returned.

    Returns:
        `str`: the row, e.g. `| student | 14.20 | 15.01 | 12.35 | 16.90% | 12.3M | 1520 | 480 |`.
    """
    cells = [
        name,
        f"{results['bleu_greedy']:.2f}",
        f"{results['bleu_beam']:.2f}",
        f"{results['ppl']:.2f}",
        f"{100 * results['p_beam_output']:.2f}%",
        _human_count(results["params_nonzero"]),
        f"{results['words_per_sec_greedy']:.0f}",
        f"{results['words_per_sec_beam']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def write_results(results: dict, path: str | Path) -> None:
    """
    Writes the results as JSON, and the translations beside it as text files.

    Args:
        results (`dict`): what [`evaluate_model`] returned.
        path (`str` or `Path`): the JSON file, e.g. `results/student.json`; the greedy and beam translations go to
            `results/student.greedy.txt` and `results/student.beam.txt`, one sentence per line, in input order.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in results.items() if key not in HYPOTHESIS_KEYS}
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for key, suffix in HYPOTHESIS_KEYS.items():
        if key in results:
            # A newline inside a hypothesis would shift every later line against the references.
            lines = (" ".join(hypothesis.splitlines()) + "\n" for hypothesis in results[key])
            path.with_name(f"{path.stem}.{suffix}.txt").write_text("".join(lines), encoding="utf-8")


def _check_parallel(first: Sequence[str], second: Sequence[str], first_name: str, second_name: str) -> None:
    for name, texts in ((first_name, first), (second_name, second)):
        if isinstance(texts, str):
            raise TypeError(f"`{name}` must be a sequence of strings; wrap a single sentence in a list.")
    if len(first) != len(second):
        raise ValueError(f"{len(first)} {first_name} but {len(second)} {second_name}: they must pair up one to one.")
    if not first:
        raise ValueError(f"`{first_name}` and `{second_name}` are empty.")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _human_count(count: int) -> str:
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= threshold:
            return f"{count / threshold:.1f}{suffix}"
    return str(count)


def evaluate_split(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split,
    source_lang: str,
    target_lang: str,
    output_dir: str | Path,
    name: str = "model",
    num_beams: int = 5,
    batch_size: int = 64,
) -> dict:
    """
    Runs [`evaluate_model`] on a raw parallel split (a `datasets.Dataset` with a `translation` column of
    `{source_lang: ..., target_lang: ...}`), with progress bars, writes `eval_results.json` (and the hypotheses) into
    `output_dir` ([`write_results`]), and prints the markdown row under `name`.
    """
    sources = [pair[source_lang] for pair in split["translation"]]
    references = [pair[target_lang] for pair in split["translation"]]
    searches = "greedy search" if num_beams == 1 else f"greedy and beam ({num_beams}) search"
    logger.info(f"Evaluating {name} on {len(sources)} sentences: {searches}, then the perplexity of the references.")
    results = evaluate_model(
        model, tokenizer, sources, references, num_beams=num_beams, batch_size=batch_size, progress=True
    )
    write_results(results, Path(output_dir) / "eval_results.json")
    print(f"\n{MARKDOWN_HEADER}\n{markdown_row(name, results)}\n{results['bleu_signature']}", flush=True)
    return results
