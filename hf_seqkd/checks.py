"""
Checks of what a user hands the recipes and `hf-seqkd-translate`: data files and their rows, model and dataset paths,
checkpoints to resume from, training arguments.

They run before the first expensive step of a job (tokenizing, generating, training), and each error names the file,
line, row or argument at fault and says what to do. The README section "What bad input gets" lists every bad input
and what it gets.
"""

import gzip
import hashlib
import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
from datasets import Dataset
from huggingface_hub import is_offline_mode, try_to_load_from_cache
from safetensors import safe_open
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

# How a distilled dataset folder is made, for the errors that find it missing.
DISTILL_HINT = (
    "Make it first with recipes/distill_data.py (e.g. `python recipes/distill_data.py --config "
    "recipes/bible_es_en/seq_kd_data/config.yaml`), which writes it to <its output_dir>/dataset; or leave this flag "
    "out and pass --teacher_model_name_or_path, so that this run makes the data itself."
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# ---- Data files and rows ------------------------------------------------------------------------------------------


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}, line {line}: not UTF-8 ({error.reason} at byte {error.start} of the line). Convert the file, "
            f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed`."
        ) from None


def scan_jsonl(path: str | os.PathLike) -> list[int]:
    """
    Reads a JSON Lines file (optionally gzipped) once before `datasets` loads it: every line must be UTF-8 and at
    least one must hold a record.

    Returns:
        `list[int]`: the numbers of the blank lines, which `datasets` skips; see [`jsonl_line_of_row`].
    """
    path = Path(path)
    blank, number = [], 0
    with _open_binary(path) as stream:
        for number, raw in enumerate(stream, start=1):
            if not _decode(raw, path, number).strip():
                blank.append(number)
    if number == len(blank):
        raise ValueError(f'{path} is empty: it has no JSON line of the form {{"translation": {{...}}}}.')
    return blank


def jsonl_line_of_row(blank_lines: list[int]) -> Callable[[int], str]:
    """Names row `i` of a dataset read from a JSON Lines file by its line in the file, blank lines included."""

    def locate(row: int) -> str:
        line = row + 1
        for blank in blank_lines:  # sorted
            if blank > line:
                break
            line += 1
        return f"line {line}"

    return locate


def read_tsv(path: str | os.PathLike, source_lang: str, target_lang: str) -> Dataset:
    """
    Reads a TSV file of `source<TAB>target` lines into a `translation` column, row `i` being line `i + 1`.

    Lines end at `\\n` only (a `\\r` before it is dropped; a lone `\\r` stays in the text), every line must have
    exactly two fields (an empty line counts as a blank pair), and no field is converted: `NA` or `1` stay text. The
    dataset's fingerprint is the file's content, so `datasets` caches and resumable distillation recognize it.
    """
    path = Path(path)
    sources, targets, wrong = [], [], []
    digest = hashlib.sha256(f"{source_lang}\t{target_lang}\n".encode())
    with _open_binary(path) as stream:
        content = stream.read()
    digest.update(content)
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the end of the last line, not a line
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path} is empty: it has no line of the form source<TAB>target.")
    for number, raw in enumerate(lines, start=1):
        text = _decode(raw, path, number)
        text = text[:-1] if text.endswith("\r") else text
        fields = text.split("\t") if text else ["", ""]
        if len(fields) != 2:
            wrong.append((number, len(fields)))
            continue
        sources.append(fields[0])
        targets.append(fields[1])
    if wrong:
        where = ", ".join(f"line {number} has {count}" for number, count in wrong[:5])
        raise ValueError(
            f"{path}: {len(wrong)} lines do not have exactly 2 tab-separated fields (source<TAB>target): {where}"
            f"{' ...' if len(wrong) > 5 else ''}. A tab inside a sentence cannot be told from the separator: "
            f"replace it with a space, drop the extra columns (e.g. `cut -f1,2`), or use JSON Lines."
        )
    table = pa.table(
        {"translation": [{source_lang: s, target_lang: t} for s, t in zip(sources, targets)]},
    )
    return Dataset(table, fingerprint=digest.hexdigest()[:16])


def check_parallel_rows(
    dataset: Dataset,
    source_lang: str,
    target_lang: str,
    where: str,
    locate: Callable[[int], str] | None = None,
) -> Dataset:
    """
    Checks every row's `translation` and drops the blank pairs.

    A row whose `translation` lacks a source or target string (JSON `null`, a missing or misspelled language key, a
    number) is an error naming the row and the fix. A pair whose source or target is empty or only whitespace is
    dropped, and the count and first rows logged as a warning: it would teach the model to translate nothing into
    something, or something into nothing.

    Args:
        dataset (`Dataset`): rows with a `translation` column.
        source_lang, target_lang (`str`): the language keys.
        where (`str`): the data's name in messages (a file, or a dataset name and split).
        locate (`Callable[[int], str]`, *optional*): names a row (e.g. `line 7` of a file); defaults to `row i`.

    Returns:
        `Dataset`: `dataset` without the blank pairs (the same object when there are none).
    """
    locate = locate or (lambda row: f"row {row}")
    if "translation" not in dataset.column_names:
        raise ValueError(
            f"{where} has columns {dataset.column_names} but no `translation` column of "
            f"{{{source_lang!r}: ..., {target_lang!r}: ...}}."
        )
    if len(dataset) == 0:
        raise ValueError(f"{where} has no rows.")
    feature = dataset.features["translation"]
    languages = set(feature) if isinstance(feature, dict) else set(getattr(feature, "languages", None) or [])
    missing = {source_lang, target_lang} - languages
    if languages and missing:  # no row has them
        raise ValueError(
            f"{where}: `translation` has languages {sorted(languages)}, not {sorted(missing)}; set "
            f"--source_lang/--target_lang."
        )
    bad, blank, row = [], [], 0
    for batch in dataset.select_columns("translation").iter(batch_size=10_000):
        for pair in batch["translation"]:
            texts = [pair.get(lang) if isinstance(pair, dict) else None for lang in (source_lang, target_lang)]
            if not all(isinstance(text, str) for text in texts):
                bad.append((row, pair))
            elif not (texts[0].strip() and texts[1].strip()):
                blank.append(row)
            row += 1
    if bad:
        first, pair = bad[0]
        found = {k: v for k, v in pair.items() if v is not None} if isinstance(pair, dict) else pair
        raise ValueError(
            f"{where}, {locate(first)}: `translation` must hold text for {source_lang!r} and {target_lang!r}, but "
            f"it is {found!r} (null values and missing keys show as absent). Rows like it: {len(bad)} ("
            f"{', '.join(locate(r) for r, _ in bad[:5])}{' ...' if len(bad) > 5 else ''}). Fix or remove them, or "
            f"set --source_lang/--target_lang to the keys the data uses."
        )
    if blank:
        if len(blank) == len(dataset):
            raise ValueError(f"{where}: every pair has an empty source or target.")
        logger.warning(
            f"{where}: dropped {len(blank)} of {len(dataset)} pairs whose source or target is empty or only "
            f"whitespace ({', '.join(locate(r) for r in blank[:5])}{' ...' if len(blank) > 5 else ''})."
        )
        blank_rows = set(blank)
        dataset = dataset.select([i for i in range(len(dataset)) if i not in blank_rows])
    return dataset


# ---- Paths of models and datasets ---------------------------------------------------------------------------------


def could_be_hub_id(name: str) -> bool:
    """Whether `name` has the form of a Hub repository id (`name` or `owner/name`), which a local path may share."""
    return bool(_HUB_ID.match(name)) and ".." not in name and len(name) <= 96


def check_model_path(name_or_path: str | None, argument: str, kind: str = "model") -> None:
    """
    Raises a clear error when `name_or_path` names no model (or tokenizer, `kind="tokenizer"`): a local path that
    does not exist (rather than transformers' "Repo id must be in the form ..." or "couldn't connect to the Hub"), a
    folder without the saved files, or a Hub id that offline mode cannot reach because it is not in the cache.
    """
    if name_or_path is None:
        return
    path = Path(name_or_path).expanduser()
    wanted = ("config.json",) if kind == "model" else ("tokenizer.json", "tokenizer_config.json")
    if path.is_dir():
        if not any((path / name).is_file() for name in wanted):
            checkpoints = sorted(path.glob(f"{PREFIX_CHECKPOINT_DIR}-*"))
            hint = (
                f" It has checkpoints ({checkpoints[-1].name}, ...): the run did not finish; run it again to resume "
                f"it, or give a checkpoint folder."
                if checkpoints
                else " Give the output folder of a finished training run."
            )
            raise FileNotFoundError(
                f"{argument} {name_or_path}: the folder holds no saved {kind} ({wanted[0]}).{hint}"
            )
        return
    if path.exists():
        raise NotADirectoryError(f"{argument} {name_or_path} is a file: give the folder a {kind} was saved to.")
    if not could_be_hub_id(name_or_path):
        raise FileNotFoundError(
            f"{argument} {name_or_path}: no such folder. Check the path; a {kind} folder is the output_dir of a "
            f"finished training run."
        )
    if is_offline_mode() and not isinstance(try_to_load_from_cache(name_or_path, wanted[-1]), str):
        raise FileNotFoundError(
            f"{argument} {name_or_path}: no such folder, and not a Hub {kind} in the local cache (HF_HUB_OFFLINE is "
            f"set, so the Hub is not asked). Check the path, or download the {kind} while online."
        )


def check_distilled_dataset(folder: str | None, argument: str) -> None:
    """Raises a clear error unless `folder` is a `DatasetDict` folder with a train split (as distill_data.py makes)."""
    if folder is None:
        return
    path = Path(folder)
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        if "train" not in splits:
            raise ValueError(f"{argument} {folder} has no train split (it has {splits}).")
        return
    if (path / "dataset" / "dataset_dict.json").is_file():
        raise FileNotFoundError(f"{argument} {folder} is distill_data.py's output_dir: give {path / 'dataset'}.")
    if (path / "shards").is_dir():
        raise FileNotFoundError(
            f"{argument} {folder}: distill_data.py has not finished there (shards, but no dataset yet). Run it "
            f"again with the same command: it skips the finished shards."
        )
    if path.exists():
        raise FileNotFoundError(f"{argument} {folder} is not a dataset folder (no dataset_dict.json). {DISTILL_HINT}")
    raise FileNotFoundError(f"{argument} {folder}: no such folder. {DISTILL_HINT}")


# ---- Arguments ----------------------------------------------------------------------------------------------------

# Every recipe argument that names a model or tokenizer. (Distilled dataset folders are checked by the recipe, which
# knows which its mode uses: [`check_distilled_dataset`].)
MODEL_ARGUMENTS = ("model_name_or_path", "teacher_model_name_or_path", "seq_kd_model_name_or_path")
TOKENIZER_ARGUMENTS = ("tokenizer_name_or_path",)
FINITE_ARGUMENTS = ("learning_rate", "finetune_learning_rate", "max_grad_norm", "alpha", "temperature")


def check_arguments(*parsed) -> None:
    """
    Checks the parsed recipe arguments (dataclasses) before anything is loaded: the paths of models and tokenizers
    exist, the learning rates and loss weights are finite numbers, and a push names its repository.
    """
    for arguments in parsed:
        for name in MODEL_ARGUMENTS:
            check_model_path(getattr(arguments, name, None), f"--{name}")
        for name in TOKENIZER_ARGUMENTS:
            check_model_path(getattr(arguments, name, None), f"--{name}", kind="tokenizer")
        for name in FINITE_ARGUMENTS:
            value = getattr(arguments, name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"--{name} {value}: must be a finite number.")
        if getattr(arguments, "learning_rate", 0.0) < 0:
            raise ValueError(f"--learning_rate {arguments.learning_rate}: must be >= 0.")
        names_no_repository = hasattr(arguments, "hub_model_id") and not arguments.hub_model_id
        if getattr(arguments, "push_to_hub", False) and names_no_repository:
            raise ValueError("--push_to_hub needs --hub_model_id user/name: the repository the model goes to.")


# ---- Checkpoints --------------------------------------------------------------------------------------------------


def checkpoint_problems(folder: str | os.PathLike) -> list[str]:
    """
    What makes a Trainer checkpoint folder unusable for resuming, cheaply found (headers, not weights, are read): a
    missing or unreadable `trainer_state.json` (written last, so a save that was killed lacks it), truncated
    safetensors files, truncated `.pt`/`.pth`/`.bin` files. Empty when the checkpoint is intact.
    """
    folder = Path(folder)
    problems = []
    for name in ("trainer_state.json", "config.json"):
        try:
            json.loads((folder / name).read_text())
        except FileNotFoundError:
            if name == "trainer_state.json":
                problems.append(f"no {name}")
        except (ValueError, OSError):
            problems.append(f"{name} is unreadable")
    weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    if not any(path.name.startswith(("model", "pytorch_model")) for path in weights):
        problems.append("no model weights")
    for path in sorted(weights):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as error:  # noqa: BLE001  (SafetensorError is not importable everywhere)
            if path.suffix == ".safetensors":
                problems.append(f"{path.name} is truncated or corrupt ({error})")
            elif not zipfile.is_zipfile(path):
                problems.append(f"{path.name} is truncated or corrupt")
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth")]):
        if not zipfile.is_zipfile(path):
            problems.append(f"{path.name} is truncated or corrupt")
    return problems


def _checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[1])


def last_intact_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """
    The newest checkpoint in `output_dir` that [`checkpoint_problems`] finds intact, with a warning for each newer one
    skipped (a run killed while saving leaves one). `None` when there is no checkpoint; an error when none is intact.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    checkpoints = sorted(
        (path for path in output_dir.iterdir() if re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-\d+", path.name)),
        key=_checkpoint_step,
        reverse=True,
    )
    checkpoints = [path for path in checkpoints if path.is_dir()]
    skipped = []
    for checkpoint in checkpoints:
        problems = checkpoint_problems(checkpoint)
        if not problems:
            for name, reasons in skipped:
                logger.warning(
                    f"{name} is incomplete ({'; '.join(reasons)}), probably from a run killed while saving it: "
                    f"resuming from {checkpoint.name} instead. The steps after it are trained again and {name} is "
                    f"overwritten when they reach it."
                )
            return str(checkpoint)
        skipped.append((checkpoint.name, problems))
    if skipped:
        details = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in skipped)
        raise ValueError(
            f"{output_dir} has checkpoints but none is intact ({details}). Delete them to start over, or use another "
            f"--output_dir."
        )
    return None


def check_resumable(checkpoint: str | os.PathLike, model) -> None:
    """
    Before resuming `model` from `checkpoint`: an error naming the checkpoint and the differing sizes when its weights
    have other shapes (the size flags or the tokenizer changed since it was saved), and a warning for each piece of
    training state the Trainer would silently start fresh (the optimizer, the learning-rate schedule).
    """
    checkpoint = Path(checkpoint)
    problems = checkpoint_problems(checkpoint)
    if problems:
        raise ValueError(f"Cannot resume from {checkpoint}: {'; '.join(problems)}. Pick another checkpoint.")
    saved = {}
    for path in checkpoint.glob("model*.safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            saved.update({name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()})
    current = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    differing = [name for name, shape in saved.items() if current.get(name, shape) != shape]
    unknown = [name for name in saved if name not in current]
    if differing or unknown:
        sizes = []
        config_path = checkpoint / "config.json"
        if config_path.is_file():
            then, now = json.loads(config_path.read_text()), model.config.to_dict()
            sizes = [
                f"{key} {then[key]} there, {now[key]} now"
                for key in sorted(set(then) & set(now))
                if then[key] != now[key]
                and isinstance(now[key], int | bool)
                and not key.startswith(("max_", "num_"))
                and "token_id" not in key
            ]
        tensors = [f"{name} {saved[name]} there, {current[name]} now" for name in differing[:3]]
        raise ValueError(
            f"{checkpoint} holds a model of another size than the one built now "
            f"({'; '.join(sizes or tensors) or f'weights {unknown[:3]} unknown to it'}). To resume that run, set the "
            f"size flags (and tokenizer) as it had them; to train the new size, use another --output_dir (or delete "
            f"the checkpoints there)."
        )
    for name, what in (("optimizer.pt", "optimizer (Adam's moments)"), ("scheduler.pt", "learning-rate schedule")):
        if not (checkpoint / name).is_file():
            logger.warning(
                f"{checkpoint} has no {name}: the {what} restarts fresh from the checkpoint's weights, so the next "
                f"steps differ from an uninterrupted run."
            )
