"""Parallel data: a Hub dataset with a `translation` column, local JSON Lines / TSV files, or plain parallel text
(`train.de` + `train.en`), tokenized with `.map`."""

import contextlib
import gzip
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

from .checks import check_parallel_rows, could_be_hub_id, jsonl_line_of_row, read_tsv, scan_jsonl
from .resources import shipped_folder

logger = logging.getLogger(__name__)

# The Spanish-English Bible shipped with the package (data/README.md in the repository tells its provenance).
BUNDLED_CORPUS = shipped_folder("bible_es_en", "data/bible_es_en")
SPLITS = ("train", "validation", "test")


@dataclass
class DataArguments:
    """
    Where the parallel data comes from and how it is tokenized.

    Args:
        dataset_name (`str`, *optional*):
            A Hub dataset with a `translation` column (e.g. `wmt14`), a `DatasetDict` folder written by
            `save_to_disk` (such as the Seq-KD data of `recipes/distill_data.py`), or `bible_es_en` for the bundled
            corpus.
        dataset_config_name (`str`, *optional*):
            The Hub dataset's configuration (e.g. `de-en`).
        train_file, validation_file, test_file (`str`, *optional*):
            Local files instead of `dataset_name`: JSON Lines (`.jsonl`, `.json`, optionally `.gz`) with a
            `translation` column of `{lang: text}`, TSV (`.tsv`) with source and target in two columns, or the prefix
            of plain parallel text as JoeyNMT and fairseq name it: `corpus/train` reads `corpus/train.<source_lang>`
            and `corpus/train.<target_lang>` (each optionally `.gz`), one sentence per line, lines aligned.
        source_lang, target_lang (`str`):
            Keys of the source and target text in `translation`.
        max_source_length, max_target_length (`int`):
            Training pairs with more tokens on either side are dropped (and counted in the log); evaluation pairs are
            truncated instead, so that every evaluation sentence is scored.
        max_train_samples, max_eval_samples (`int`, *optional*):
            Keep only the first N training / evaluation pairs (quick runs, tests).
        preprocessing_num_workers (`int`, *optional*):
            Processes for `datasets.map`.
        overwrite_cache (`bool`):
            Recompute the tokenized data instead of reusing the `datasets` cache.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset with a `translation` column, a save_to_disk folder, or `bible_es_en`."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file or plain-text prefix."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file (or prefix)."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file (or prefix)."})
    source_lang: str = field(default="es", metadata={"help": "Source language key in `translation`."})
    target_lang: str = field(default="en", metadata={"help": "Target language key in `translation`."})
    max_source_length: int = field(
        default=128, metadata={"help": "Longer training pairs are dropped; evaluation sources truncated."}
    )
    max_target_length: int = field(
        default=128, metadata={"help": "Longer training pairs are dropped; evaluation targets truncated."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N training pairs."})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N validation/test pairs."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the tokenized data."})

    def __post_init__(self):
        files = (self.train_file, self.validation_file, self.test_file)
        if self.dataset_name is None and not any(files):
            raise ValueError(
                "No data: pass --dataset_name (e.g. bible_es_en) or --train_file/--validation_file/--test_file."
            )
        if self.dataset_name is not None and any(files):
            raise ValueError("Pass either --dataset_name or local files (--train_file, ...), not both.")
        if self.source_lang == self.target_lang:
            raise ValueError(f"source_lang and target_lang are both {self.source_lang!r}.")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")


def load_parallel_dataset(args: DataArguments) -> DatasetDict:
    """
    Loads the raw parallel data as a `DatasetDict` whose splits (`train`, `validation`, `test`, as present) each
    have a `translation` column holding `{source_lang: ..., target_lang: ...}`.

    Every row kept is checked (after `max_train_samples` / `max_eval_samples`): a row without a source or target
    string is an error naming its file and line (or split and row), and pairs whose source or target is empty or only
    whitespace are dropped with a warning that counts them ([`~hf_seqkd.checks.check_parallel_rows`]).
    """
    files, locators = {}, {}
    if args.dataset_name == "bible_es_en":
        raw = load_dataset("json", data_files={split: str(BUNDLED_CORPUS / f"{split}.jsonl.gz") for split in SPLITS})
    elif args.dataset_name is not None and (Path(args.dataset_name) / "dataset_dict.json").is_file():
        raw = load_from_disk(args.dataset_name)  # e.g. Seq-KD data written by recipes/distill_data.py
    elif args.dataset_name is not None:
        if not Path(args.dataset_name).exists() and not could_be_hub_id(args.dataset_name):
            raise FileNotFoundError(
                f"--dataset_name {args.dataset_name}: no such folder (nor a Hub dataset id). A Seq-KD or Seq-Inter "
                f"dataset folder is made by recipes/distill_data.py, in <its output_dir>/dataset."
            )
        raw = load_dataset(args.dataset_name, args.dataset_config_name)
    else:
        files = {s: f for s, f in zip(SPLITS, (args.train_file, args.validation_file, args.test_file)) if f}
        raw = DatasetDict()
        for split, path in files.items():
            if is_plain_text_prefix(path, args):
                raw[split] = read_plain_text_pair(path, args)
            else:
                raw[split], locators[split] = _load_local_file(path, args)
    if args.max_train_samples is not None and "train" in raw:
        raw["train"] = raw["train"].select(range(min(args.max_train_samples, len(raw["train"]))))
    if args.max_eval_samples is not None:
        for split in ("validation", "test"):
            if split in raw:
                raw[split] = raw[split].select(range(min(args.max_eval_samples, len(raw[split]))))
    for split in list(raw):
        where = files.get(split) or f"{args.dataset_name} ({split} split)"
        raw[split] = check_parallel_rows(raw[split], args.source_lang, args.target_lang, where, locators.get(split))
    return raw


def _load_local_file(path: str, args: DataArguments) -> tuple[Dataset, Callable[[int], str]]:
    """The file's rows, and a function naming row i by its line in the file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    suffixes = Path(path).suffixes
    if ".tsv" in suffixes:
        return read_tsv(path, args.source_lang, args.target_lang), lambda row: f"line {row + 1}"
    if ".jsonl" in suffixes or ".json" in suffixes:
        blank_lines = scan_jsonl(path)
        try:
            dataset = load_dataset("json", data_files=path)["train"]
        except Exception as error:  # pyarrow's and datasets' parse errors do not name the file
            raise ValueError(
                f"Cannot read {path} as JSON Lines: {error}. Each line must be one JSON object such as "
                f'{{"translation": {{"{args.source_lang}": "...", "{args.target_lang}": "..."}}}}, with the same '
                f"types on every line."
            ) from error
        return dataset, jsonl_line_of_row(blank_lines)
    raise ValueError(f"Cannot read {path}: use JSON Lines (.jsonl, .jsonl.gz) with a `translation` column, or .tsv.")


PLAIN_TEXT_SUFFIXES = ("", ".gz")


def _plain_text_sides(prefix: str, lang: str) -> list[Path]:
    return [
        Path(f"{prefix}.{lang}{suffix}")
        for suffix in PLAIN_TEXT_SUFFIXES
        if Path(f"{prefix}.{lang}{suffix}").is_file()
    ]


def is_plain_text_prefix(path: str, args: DataArguments) -> bool:
    """
    Whether `path` names plain parallel text by its prefix: no file `path` itself, but `path.<source_lang>` or
    `path.<target_lang>` (or their `.gz`). A file without a known data suffix, found under neither name, counts as
    a prefix too, so that the error names the two files expected.
    """
    if Path(path).is_file():
        return False
    if _plain_text_sides(path, args.source_lang) or _plain_text_sides(path, args.target_lang):
        return True
    return not {".jsonl", ".json", ".tsv", ".gz"} & set(Path(path).suffixes)


def read_plain_text_pair(prefix: str, args: DataArguments) -> Dataset:
    """
    Reads plain parallel text: `<prefix>.<source_lang>` and `<prefix>.<target_lang>` (either may be `.gz`), one
    sentence per line (UTF-8, surrounding whitespace stripped), line i of one the translation of line i of the other.

    Lines empty on both sides are dropped (and counted in the log). Raises, before anything is tokenized or trained,
    when a side is missing, the two files have different line counts, or a line is empty on one side only (naming
    the files and the line numbers).

    Returns:
        A `Dataset` with a `translation` column of `{source_lang: ..., target_lang: ...}`, in file order.
    """
    paths = {}
    for lang in (args.source_lang, args.target_lang):
        found = _plain_text_sides(prefix, lang)
        if not found:
            expected = " or ".join(f"{prefix}.{lang}{suffix}" for suffix in PLAIN_TEXT_SUFFIXES)
            raise FileNotFoundError(
                f"Plain parallel text {prefix!r} needs one file per language, {prefix}.{args.source_lang} and "
                f"{prefix}.{args.target_lang} (or .gz), but there is no {expected}. Check the prefix and "
                f"--source_lang/--target_lang, or pass a .jsonl/.tsv file."
            )
        if len(found) > 1:
            raise ValueError(
                f"Both {found[0]} and {found[1]} exist: keep one of them, so that it is clear which to read."
            )
        paths[lang] = found[0]
    source_path, target_path = paths[args.source_lang], paths[args.target_lang]
    sources, targets = _read_lines(source_path), _read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(
            f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: plain parallel text needs "
            f"one sentence per line on both sides, line i of one the translation of line i of the other. Align the "
            f"files (a sentence split over two lines, or a missing/extra line, shifts every line after it)."
        )
    one_sided = [i for i, (source, target) in enumerate(zip(sources, targets)) if bool(source) != bool(target)]
    if one_sided:
        shown = ", ".join(str(i + 1) for i in one_sided[:10]) + (
            f" and {len(one_sided) - 10} more" if len(one_sided) > 10 else ""
        )
        first = one_sided[0]
        empty, other = (source_path, target_path) if not sources[first] else (target_path, source_path)
        text = sources[first] or targets[first]
        raise ValueError(
            f"{len(one_sided)} line(s) of {source_path} / {target_path} are empty on one side only: line {shown}. "
            f"E.g. line {first + 1} is empty in {empty} but reads {text[:60]!r} in {other}. Translate or remove "
            f"these lines in both files (lines empty on both sides are skipped)."
        )
    pairs = [
        {args.source_lang: source, args.target_lang: target} for source, target in zip(sources, targets) if source
    ]
    if len(pairs) < len(sources):
        logger.info(f"{prefix}: skipped {len(sources) - len(pairs)} lines empty on both sides.")
    logger.info(f"Read {len(pairs)} sentence pairs from {source_path} and {target_path}.")
    return Dataset.from_dict({"translation": pairs})


def _read_lines(path: Path) -> list[str]:
    """The stripped lines of a UTF-8 text file, `.gz` or not; only newlines end a line (not U+2028 and the like)."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                lines.append(line.decode("utf-8").strip())
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}, line {number}, is not UTF-8 ({error.reason}); convert the file to UTF-8."
                ) from None
    return lines


def source_and_target_texts(dataset: Dataset, args: DataArguments) -> tuple[list[str], list[str]]:
    """The raw source and target sentences of one split, in order."""
    pairs = dataset["translation"]
    return [p[args.source_lang] for p in pairs], [p[args.target_lang] for p in pairs]


def tokenize_parallel_dataset(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    args: DataArguments,
    main_process_first=None,
) -> DatasetDict:
    """
    Tokenizes every split with `datasets.map(batched=True)` (cached by `datasets`), giving `input_ids`,
    `attention_mask` and `labels`. Training pairs longer than the maximum lengths are dropped and counted;
    evaluation pairs are truncated.

    Args:
        main_process_first: a context manager factory such as `training_args.main_process_first`, so that with
            several processes the main one builds the cache and the others read it.
    """

    if main_process_first is None:
        main_process_first = _single_process
    tokenized = DatasetDict()
    for split, dataset in raw.items():
        truncate = split != "train"
        with main_process_first(desc=f"tokenizing {split}"):
            encoded = dataset.map(
                _tokenize_batch,
                fn_kwargs={"tokenizer": tokenizer, "args": args, "truncate": truncate},
                batched=True,
                num_proc=args.preprocessing_num_workers,
                remove_columns=dataset.column_names,
                load_from_cache_file=not args.overwrite_cache,
                desc=f"Tokenizing {split}",
            )
            if split == "train":
                kept = encoded.filter(
                    _within_lengths,
                    fn_kwargs={"args": args},
                    batched=True,
                    num_proc=args.preprocessing_num_workers,
                    load_from_cache_file=not args.overwrite_cache,
                    desc="Dropping long pairs",
                )
                dropped = len(encoded) - len(kept)
                logger.info(
                    f"train: kept {len(kept)} of {len(encoded)} pairs; dropped {dropped} "
                    f"({100 * dropped / len(encoded):.1f}%) longer than {args.max_source_length} source or "
                    f"{args.max_target_length} target tokens."
                )
                if len(kept) == 0:
                    raise ValueError("Every training pair is longer than the maximum lengths; raise them.")
                encoded = kept
        tokenized[split] = encoded
    return tokenized


@contextlib.contextmanager
def _single_process(desc: str = ""):
    yield


def _tokenize_batch(batch, tokenizer, args, truncate):
    sources = [pair[args.source_lang] for pair in batch["translation"]]
    targets = [pair[args.target_lang] for pair in batch["translation"]]
    # verbose=False: untruncated (training) pairs longer than the tokenizer's model_max_length are dropped, and
    # counted, by the caller; the tokenizer's warning that they "will result in indexing errors" is not for them.
    features = tokenizer(
        sources, truncation=truncate, max_length=args.max_source_length if truncate else None, verbose=False
    )
    labels = tokenizer(
        text_target=targets,
        truncation=truncate,
        max_length=args.max_target_length if truncate else None,
        verbose=False,
    )
    features["labels"] = labels["input_ids"]
    return features


def _within_lengths(batch, args):
    return [
        len(source) <= args.max_source_length and len(target) <= args.max_target_length
        for source, target in zip(batch["input_ids"], batch["labels"])
    ]
