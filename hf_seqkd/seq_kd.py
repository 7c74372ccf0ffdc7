"""Sequence-level distillation data (Kim & Rush 2016, sections 3.2-3.3) as `datasets.map` pipelines.

- Seq-KD: the teacher beam-searches every source (K = 5); its best hypothesis becomes the new target.
- Seq-Inter: the teacher's K-best list (K = 35 in the paper); the hypothesis closest to the reference by smoothed
  sentence BLEU (or chrF) becomes the new target: a target the teacher finds likely that is still near the truth.

Both work with any transformers seq2seq teacher and its own tokenizer: hypotheses are decoded to text, so the student
re-tokenizes them with its own vocabulary. The output keeps the `translation` column layout of the input (with the
new target), the original target as `reference`, and the teacher's log-probability of the new target.

A dataset folder of distilled data carries its record (`distillation.json`: the settings, K among them, the teacher
and the measured speed), which [`read_distillation_record`] reads and [`distilled_num_beams`] checks against a K
given on the command line, so that a student's card names the K its data were made with.
"""

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset, concatenate_datasets, load_from_disk
from sacrebleu.metrics import BLEU, CHRF
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .modes import SEQUENCE_DATA
from .utils import (
    eos_token_ids,
    eval_mode,
    model_fingerprint,
    output_length_limit,
    sequence_log_probs,
    source_length_limit,
)

logger = logging.getLogger(__name__)


def _default_beams_help() -> str:
    return ", ".join(f"{data.default_num_beams} for {name}" for name, data in SEQUENCE_DATA.items())


SELECTION_METRICS = ("bleu", "chrf")


@dataclass
class SequenceDistillationConfig:
    """
    How the teacher makes the new targets.

    Args:
        mode (`str`, *optional*, defaults to `"seq_kd"`):
            `"seq_kd"` (the beam's best hypothesis) or `"seq_inter"` (the K-best hypothesis closest to the reference).
        num_beams (`int`, *optional*):
            Beam size K; defaults to 5 for Seq-KD and 35 for Seq-Inter, as in the paper.
        selection_metric (`str`, *optional*, defaults to `"bleu"`):
            Seq-Inter's similarity to the reference: smoothed sentence BLEU or chrF (sacrebleu).
        batch_size (`int`, *optional*, defaults to 64):
            Sources per `generate` call (sorted by length, so batches carry little padding).
        max_new_tokens (`int`, *optional*):
            Cap on hypothesis length; defaults to the teacher's generation config.
        length_penalty (`float`, *optional*, defaults to 1.0):
            Beam search's length penalty (transformers' convention).
    """

    mode: str = field(default="seq_kd", metadata={"help": "seq_kd or seq_inter.", "choices": list(SEQUENCE_DATA)})
    num_beams: int | None = field(
        default=None,
        metadata={"help": "Beam size K (default: the paper's, " + _default_beams_help() + ")."},
    )
    selection_metric: str = field(
        default="bleu", metadata={"help": "Seq-Inter selection: bleu or chrf.", "choices": list(SELECTION_METRICS)}
    )
    batch_size: int = field(default=64, metadata={"help": "Sources per generate call."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Cap on hypothesis length."})
    length_penalty: float = field(default=1.0, metadata={"help": "Beam search length penalty."})

    def __post_init__(self):
        if self.mode not in SEQUENCE_DATA:
            raise ValueError(f"mode must be one of {tuple(SEQUENCE_DATA)}, got {self.mode!r}.")
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(f"selection_metric must be one of {SELECTION_METRICS}, got {self.selection_metric!r}.")
        if self.num_beams is None:
            self.num_beams = SEQUENCE_DATA[self.mode].default_num_beams
        if self.num_beams < 1 or self.batch_size < 1:
            raise ValueError(f"num_beams and batch_size must be >= 1, got {self.num_beams} and {self.batch_size}.")


def check_distillation_inputs(
    dataset: Dataset, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, source_lang: str, target_lang: str
) -> None:
    """Everything that would make generation fail or give wrong data, checked before any generation starts."""
    if not (getattr(teacher.config, "is_encoder_decoder", False) and teacher.can_generate()):
        raise ValueError(f"The teacher ({type(teacher).__name__}) is not a seq2seq model that can generate().")
    if tokenizer.eos_token_id is None:
        raise ValueError("The teacher's tokenizer has no EOS token, so hypotheses could not end; set its eos_token.")
    if "translation" not in dataset.column_names:
        raise ValueError(f"The dataset has columns {dataset.column_names} but no `translation` column.")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty.")
    pairs = dataset["translation"]
    missing = [
        i
        for i, pair in enumerate(pairs)
        if not all(isinstance(pair.get(lang), str) for lang in (source_lang, target_lang))
    ]
    if missing:
        raise ValueError(
            f"{len(missing)} rows (rows {missing[:10]}{' ...' if len(missing) > 10 else ''}) have no {source_lang!r} "
            f"or no {target_lang!r} text in `translation` (e.g. {pairs[missing[0]]}); every row needs both, the "
            f"reference too (it is kept and scored). Fix or remove them."
        )
    empty = [i for i, pair in enumerate(pairs) if not pair[source_lang].strip()]
    if empty:
        raise ValueError(
            f"{len(empty)} empty source sentences (rows {empty[:10]}{' ...' if len(empty) > 10 else ''}); "
            f"filter them out first, e.g. dataset.filter(lambda row: row['translation'][{source_lang!r}].strip())."
        )


def distillation_fingerprint(teacher: PreTrainedModel, config: SequenceDistillationConfig, tokenizer) -> str:
    """A hash of what the new targets depend on: the teacher (config and weights), its tokenizer and generation
    settings, and the distillation settings."""
    digest = hashlib.sha256(model_fingerprint(teacher).encode())
    digest.update(repr(config).encode())
    digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(repr(teacher.generation_config.to_diff_dict()).encode())
    return digest.hexdigest()[:32]


def distill_batch(
    batch: dict,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: SequenceDistillationConfig,
    source_lang: str,
    target_lang: str,
) -> dict:
    """The `datasets.map(batched=True)` function: new targets for one batch of parallel sentences."""
    pairs = batch["translation"]
    sources = [pair[source_lang] for pair in pairs]
    references = [pair[target_lang] for pair in pairs]
    by_reference = SEQUENCE_DATA[config.mode].picks_by_reference
    num_return = config.num_beams if by_reference else 1
    encoded = tokenizer(sources, truncation=True, max_length=source_length_limit(teacher, tokenizer))
    inputs = tokenizer.pad({"input_ids": encoded["input_ids"]}, return_tensors="pt").to(teacher.device)
    generate_kwargs = {"num_beams": config.num_beams, "num_return_sequences": num_return, "do_sample": False}
    generate_kwargs["length_penalty"] = config.length_penalty
    if config.max_new_tokens is not None:
        generate_kwargs.update(output_length_limit(config.max_new_tokens))
    with torch.inference_mode():
        sequences = teacher.generate(**inputs, **generate_kwargs)  # (B * num_return, L), best first per source
        texts = [text.strip() for text in tokenizer.batch_decode(sequences, skip_special_tokens=True)]

        if by_reference:
            chosen, ranks, scores = _closest_to_references(texts, references, num_return, config.selection_metric)
        else:
            chosen, ranks, scores = list(range(len(sources))), [0] * len(sources), [None] * len(sources)
        chosen_sequences = sequences[chosen]  # (B, L)
        log_probs, _ = sequence_log_probs(teacher, inputs, chosen_sequences, eos_token_ids(teacher, tokenizer))

    columns = {
        "translation": [{source_lang: s, target_lang: texts[i]} for s, i in zip(sources, chosen)],
        "reference": references,
        "teacher_log_prob": log_probs.tolist(),
    }
    if by_reference:
        columns["rank"] = ranks
        columns[f"sentence_{config.selection_metric}"] = scores
    return columns


def _closest_to_references(texts, references, num_return, metric):
    """For each source, the index (into `texts`) of its K-best hypothesis scoring highest against the reference."""
    # Smoothed sentence BLEU (sacrebleu's default exponential smoothing), as sentence-level BLEU without smoothing
    # is zero for most hypotheses.
    scorer = BLEU(effective_order=True) if metric == "bleu" else CHRF()
    chosen, ranks, scores = [], [], []
    for row, reference in enumerate(references):
        candidates = texts[row * num_return : (row + 1) * num_return]
        candidate_scores = [scorer.sentence_score(text, [reference]).score for text in candidates]
        best = max(range(len(candidates)), key=lambda k: (candidate_scores[k], -k))  # ties: the likelier one
        chosen.append(row * num_return + best)
        ranks.append(best)
        scores.append(candidate_scores[best])
    return chosen, ranks, scores


def distill_dataset(
    dataset: Dataset,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: SequenceDistillationConfig,
    source_lang: str,
    target_lang: str,
    desc: str | None = None,
) -> Dataset:
    """
    Replaces every target of `dataset` with the teacher's (Seq-KD or Seq-Inter), in one `datasets.map` pass.

    Sources are sorted by length before batching (beam search over a batch runs as long as its longest member) and
    the original order is restored after. The map's fingerprint covers the teacher's weights, its tokenizer and the
    generation settings, so a re-run is served from the `datasets` cache and a changed teacher never is.

    Args:
        dataset (`Dataset`): rows with a `translation` column of `{source_lang: ..., target_lang: ...}`.
        teacher (`PreTrainedModel`): any transformers seq2seq model, on the device to use.
        tokenizer (`PreTrainedTokenizerBase`): the teacher's tokenizer.
        config ([`SequenceDistillationConfig`]): mode, beam size, selection rule, batch size.
        source_lang, target_lang (`str`): the language keys.
        desc (`str`, *optional*): the progress bar's label.

    Returns:
        `Dataset`: the same rows and columns, `translation` holding the new target, plus `reference` (the original
        target), `teacher_log_prob` (log p of the new target under the teacher) and, for Seq-Inter, `rank` (its
        position in the K-best list, 0 = the beam's best) and `sentence_bleu` / `sentence_chrf`.
    """
    check_distillation_inputs(dataset, teacher, tokenizer, source_lang, target_lang)
    fingerprint = distillation_fingerprint(teacher, config, tokenizer)
    # Character length stands in for token length: cheap, and close enough to group similar sources. Longest first: an
    # out-of-memory error shows up at once. (Ordered by `select`, not `Dataset.sort`, whose pyarrow call warns on
    # pyarrow >= 25 with a FutureWarning a user cannot act on; both sorts are stable, so the order is the same.)
    lengths = dataset.map(
        lambda batch: {"_length": [len(pair[source_lang]) for pair in batch["translation"]]},
        batched=True,
        remove_columns=dataset.column_names,
        desc="Measuring sources",
    )["_length"]
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    ordered = dataset.select(order)
    with eval_mode(teacher):
        distilled = ordered.map(
            distill_batch,
            fn_kwargs={
                "teacher": teacher,
                "tokenizer": tokenizer,
                "config": config,
                "source_lang": source_lang,
                "target_lang": target_lang,
            },
            batched=True,
            batch_size=config.batch_size,
            remove_columns=["translation"],
            new_fingerprint=hashlib.sha256(f"{ordered._fingerprint}-{fingerprint}".encode()).hexdigest()[:32],
            desc=desc or f"{config.mode} (K={config.num_beams})",
        )
    # The inverse permutation (where each input row went in `ordered`) puts the rows back in input order.
    restored = distilled.select(sorted(range(len(order)), key=order.__getitem__))
    # translation, then the new columns, then whatever else the rows carried (ids, ...).
    new_columns = [name for name in restored.column_names if name not in dataset.column_names]
    kept_columns = [name for name in dataset.column_names if name != "translation"]
    return restored.select_columns(["translation", *new_columns, *kept_columns])


def distill_in_shards(
    dataset: Dataset,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: SequenceDistillationConfig,
    source_lang: str,
    target_lang: str,
    work_dir: str | Path,
    shard_size: int = 2000,
    state: PartialState | None = None,
) -> tuple[Dataset | None, dict]:
    """
    [`distill_dataset`] split across processes and made resumable.

    The rows are cut into shards of `shard_size`; process p of N takes shards p, p + N, ... Each finished shard is
    saved under `work_dir` (written to a temporary folder and renamed, so a killed run never leaves half a shard), and
    a run started again skips the shards already there: it loses at most the shards in progress. When every process
    is done, the main process concatenates the shards in the original order.

    Args:
        work_dir (`str` or `Path`): where the shards go; it remembers which teacher, settings and data made them, and
            refuses to mix shards of different runs.
        shard_size (`int`, *optional*, defaults to 2000): rows per shard (the unit of resumption).
        state (`PartialState`, *optional*): the processes (accelerate / torchrun); one process when omitted.

    Returns:
        `(dataset, stats)`: the distilled dataset on the main process (`None` on the others), and
        `{"sentences": ..., "seconds": ..., "sentences_per_sec": ...}`: the sentences all processes computed in this
        run (skipped shards not counted) and the wall-clock time they took together.
    """
    state = state or PartialState()
    check_distillation_inputs(dataset, teacher, tokenizer, source_lang, target_lang)
    work_dir = Path(work_dir)
    signature = f"teacher+settings {distillation_fingerprint(teacher, config, tokenizer)} data {dataset._fingerprint}"
    stamp = work_dir / "made_by.txt"
    if state.is_main_process:
        work_dir.mkdir(parents=True, exist_ok=True)
        if stamp.exists() and stamp.read_text() != signature:
            raise ValueError(
                f"{work_dir} holds shards made by another teacher, other settings or other data ({stamp.read_text()}"
                f"); now: {signature}. Use another output folder, or delete this one to start over."
            )
        stamp.write_text(signature)
    state.wait_for_everyone()

    num_shards = math.ceil(len(dataset) / shard_size)

    def shard_path(shard):
        return work_dir / f"shard-{shard:05d}-of-{num_shards:05d}"

    def shard_rows(shard):
        return range(shard * shard_size, min((shard + 1) * shard_size, len(dataset)))

    pending = [shard for shard in range(num_shards) if not shard_path(shard).exists()]
    if len(pending) < num_shards:
        logger.info(f"{num_shards - len(pending)} of {num_shards} shards are done already: skipped.")
    state.wait_for_everyone()  # every process has seen the same pending list before any shard is written
    start = time.perf_counter()
    mine = pending[state.process_index :: state.num_processes]
    for done, shard in enumerate(mine, start=1):
        part = distill_dataset(
            dataset.select(shard_rows(shard)),
            teacher,
            tokenizer,
            config,
            source_lang,
            target_lang,
            desc=f"{config.mode} shard {shard + 1}/{num_shards} (process {state.process_index})",
        )
        temporary = shard_path(shard).with_name(shard_path(shard).name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        part.save_to_disk(temporary)
        temporary.rename(shard_path(shard))
        # Each shard's bar estimates that shard; this line, the whole run (on the main process, its own shards).
        elapsed = time.perf_counter() - start
        rows = sum(len(shard_rows(index)) for index in mine[:done])
        left = sum(len(shard_rows(index)) for index in mine[done:]) * elapsed / rows
        logger.info(
            f"Shard {shard + 1}/{num_shards} saved: {done} of this process's {len(mine)} shards done, "
            f"{rows / elapsed:.1f} sentences/s, about {_minutes(left)} left."
        )
    state.wait_for_everyone()
    seconds = time.perf_counter() - start
    computed = sum(len(shard_rows(shard)) for shard in pending)
    stats = {"sentences": computed, "seconds": seconds, "sentences_per_sec": computed / seconds if computed else 0.0}
    if not state.is_main_process:
        return None, stats
    shards = [load_from_disk(shard_path(shard)) for shard in range(num_shards)]
    return concatenate_datasets(shards), stats


RECORD_NAME = "distillation.json"


def write_distillation_record(
    folder: str | os.PathLike, config: SequenceDistillationConfig, teacher: str, dtype: torch.dtype, splits: dict
) -> None:
    """
    Writes the record of a distilled dataset folder (`distillation.json`): the settings (`config`, whose `num_beams`
    is K), the teacher, the dtype it generated in and, per split, what was measured (`splits`).
    """
    dtype = str(dtype).removeprefix("torch.")
    record = {"config": asdict(config), "teacher": teacher, "dtype": dtype, "splits": splits}
    (Path(folder) / RECORD_NAME).write_text(json.dumps(record, indent=2))


def read_distillation_record(folder: str | os.PathLike) -> dict | None:
    """The record [`write_distillation_record`] left in a dataset folder, or `None` when there is none."""
    path = Path(folder) / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def distilled_num_beams(kind: str, folder: str | os.PathLike, given: int | None, argument: str) -> int:
    """
    The beam size K that made the `kind` data (`seq_kd` or `seq_inter`) in `folder`: the one its record names, or
    `given` (the value of `argument`, e.g. `--seq_kd_num_beams`) for a folder without a record. A `given` K that
    differs from the record's, data of another kind, and a folder that says nothing when nothing is given, are
    errors that say what to pass.
    """
    record = read_distillation_record(folder)
    if record is None:
        if given is None:
            raise ValueError(
                f"{folder} does not say which beam size K made it (no {RECORD_NAME}, which recipes/distill_data.py "
                f"writes): pass {argument} K, for the model card."
            )
        return given
    made = record["config"]
    if made["mode"] != kind:
        raise ValueError(
            f"{folder} holds {made['mode']} data (its {RECORD_NAME}), not {kind} data: pass it as "
            f"--{made['mode']}_dataset, or make {kind} data with recipes/distill_data.py --mode {kind}."
        )
    if given is not None and given != made["num_beams"]:
        raise ValueError(
            f"{argument} {given}, but {folder} was made with K = {made['num_beams']} (its {RECORD_NAME}): leave "
            f"{argument} out (K is read from the data), or make data with K = {given}."
        )
    return made["num_beams"]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
