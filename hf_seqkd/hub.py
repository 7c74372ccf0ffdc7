"""
Model and dataset cards rendered from measured results (never typed by hand), and pushing to the Hub.

A model card is filled from two sources only: the `eval_results.json` that [`~hf_seqkd.evaluation.write_results`]
writes (BLEU, chrF, perplexity, parameter counts, words/s) and the facts of a [`CardInfo`] (language pair, datasets,
distillation mode, α, T, K, teacher, pruning ratio). The Trainer makes it where it makes its own card:
[`~hf_seqkd.trainer.TranslationTrainer`]'s `create_model_card` and `push_to_hub` call [`render_model_card`],
[`prepare_push_folder`] (exactly the files of the repository, written into a local folder that can be inspected) and
[`push_folder`] (their upload), which work on any saved model too (recipes/export_model.py).
"""

import copy
import glob
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from datasets import DatasetDict
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    metadata_load,
)
from huggingface_hub.repocard_data import model_index_to_eval_results

from .modes import MODES, SEQUENCE_DATA, sequence_data
from .resources import shipped_folder
from .utils import describe_machine

logger = logging.getLogger(__name__)

HUB_CARDS = shipped_folder("hub_cards", "hub_cards")  # the card templates, shipped with the package

MODEL_ROLES = ("teacher", "student")
# The keys of the `training` dict of `render_model_card`; anything else is a typo, not a silently dropped fact.
TRAINING_KEYS = (
    "mode",
    "alpha",
    "temperature",
    "num_beams",
    "seq_kd_num_beams",
    "selection_metric",
    "teacher",
    "dataset",
    "pruning_ratio",
)
MODEL_TAGS = ["translation", "knowledge-distillation", "lstm", "seq2seq", "hf_seqkd"]
# Weight files that a push replaces as a whole (see push_folder).
STALE_WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json"]
# Metadata that names other repositories (base_model, datasets) must hold Hub ids, not local folders.
HUB_ID_PATTERN = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_results(path: str | os.PathLike) -> dict:
    """
    Reads an `eval_results.json` written by [`~hf_seqkd.evaluation.write_results`].

    Args:
        path (`str` or `os.PathLike`): the JSON file, or the model folder that holds `eval_results.json`.

    Returns:
        `dict`: the results (`bleu_greedy`, `bleu_beam`, `chrf_*`, `ppl`, `params`, `words_per_sec_*`, ...).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "eval_results.json"
    return json.loads(path.read_text(encoding="utf-8"))


def is_hub_id(name: str | None) -> bool:
    """
    Whether `name` reads as a Hub repository id (`namespace/name`) rather than a local path (or the prefix of local
    plain parallel text, such as `corpus/test` for `corpus/test.de` + `corpus/test.en`).
    """
    if not name or HUB_ID_PATTERN.match(name) is None:
        return False
    return not os.path.exists(name) and not glob.glob(f"{glob.escape(name)}.*")


@dataclass
class CardInfo:
    """
    What a model card says besides the measured results; the facts [`render_model_card`] takes, kept together for
    [`~hf_seqkd.trainer.TranslationTrainer`], whose `create_model_card` renders the card from them.

    Args:
        role (`str`): `"teacher"` or `"student"`.
        source_lang (`str`), target_lang (`str`): ISO 639 codes of the language pair, e.g. `"es"`, `"en"`.
        dataset (`str`): the dataset the results are measured on (Hub id or name, e.g. `"bible_es_en"`).
        dataset_config (`str`, *optional*): the dataset's configuration, e.g. `"de-en"` for WMT.
        training (`dict`, *optional*): how the model was trained, all optional for a teacher:
            - `mode`: a training mode of [`~hf_seqkd.modes.MODES`], `"baseline"` by default;
            - `alpha`, `temperature`: Word-KD's α and T (needed by the modes that use Word-KD);
            - `num_beams`: the teacher's beam size K when it made the data (needed by the modes that train on
              sequence-level data; of a two-stage mode, the K of its last stage); `seq_kd_num_beams`: the K of the
              Seq-KD stage of a two-stage mode (`combined`); `selection_metric`: Seq-Inter's `"bleu"` (default) or
              `"chrf"` (ignored for Seq-KD);
            - `teacher`: the teacher's Hub id or folder (needed for a student; a Hub id becomes `base_model`);
            - `dataset`: the training data, e.g. the distilled dataset's Hub id (defaults to `dataset`);
            - `pruning_ratio`: the fraction of weights pruned, e.g. `0.8`.
        teacher_results (`dict`, `str` or `os.PathLike`, *optional*): the teacher's evaluation on the same test set
            (or the path of its `eval_results.json`), for a student's size and speed comparison.
        example (`str`, *optional*): a source sentence for the usage snippets (e.g. the first test source).
        split (`str`, *optional*, defaults to `"test"`): the split the results are measured on.
        license (`str`, *optional*, defaults to `"apache-2.0"`): the model's license (a Hub license id).
    """

    role: str
    source_lang: str
    target_lang: str
    dataset: str
    dataset_config: str | None = None
    training: dict | None = None
    teacher_results: dict | str | os.PathLike | None = None
    example: str | None = None
    split: str = "test"
    license: str = "apache-2.0"

    @classmethod
    def from_data_arguments(cls, data_args, role: str, test_split=None, training: dict | None = None, **kwargs):
        """
        The facts of a recipe run: the language pair and datasets of its `DataArguments`, its first test source as
        the example, and `training` (whose `dataset` defaults to the training data).
        """
        example = test_split[0]["translation"][data_args.source_lang] if test_split is not None else None
        training = {"dataset": data_args.dataset_name or data_args.train_file, **(training or {})}
        return cls(
            role=role,
            source_lang=data_args.source_lang,
            target_lang=data_args.target_lang,
            dataset=data_args.dataset_name or data_args.test_file,
            dataset_config=data_args.dataset_config_name,
            training=training,
            example=example,
            **kwargs,
        )

    def render_kwargs(self) -> dict:
        """These facts as keyword arguments of [`render_model_card`]."""
        return {item.name: getattr(self, item.name) for item in fields(self)}


def model_card_data(
    results: dict,
    info: CardInfo,
    *,
    repo_id: str,
    config=None,
    model_name: str | None = None,
    extra_tags: list[str] | None = None,
) -> ModelCardData:
    """
    The YAML metadata of a model card: `model-index` results, language pair, tags, datasets, base model.

    Args:
        results (`dict`): what [`~hf_seqkd.evaluation.evaluate_model`] returned, or `eval_results.json` as read back.
        info ([`CardInfo`]): the facts besides the results.
        repo_id (`str`): the model's Hub id (`user/name`); its name part names the model in `model-index`.
        config (`PretrainedConfig`, *optional*): the model's config; a model other than hf_seqkd's LSTM loses the
            `lstm` tag.
        model_name (`str`, *optional*): the name in `model-index`, instead of the name part of `repo_id`.
        extra_tags (`list[str]`, *optional*): tags added to hf_seqkd's.

    Returns:
        `ModelCardData`: the metadata; `model-index` holds BLEU and chrF of greedy and beam search.
    """
    if info.role not in MODEL_ROLES:
        raise ValueError(f"role must be one of {MODEL_ROLES}, got {info.role!r}.")
    training = normalize_training(info.training, info.role)
    num_beams = int(results["num_beams"])
    common = dict(
        task_type="translation",
        task_name="Translation",
        dataset_type=info.dataset,
        dataset_name=f"{info.dataset} {info.source_lang}-{info.target_lang}",
        dataset_config=info.dataset_config,
        dataset_split=info.split,
    )
    eval_results = []
    for metric, pretty in (("bleu", "BLEU"), ("chrf", "chrF")):
        # With one beam, evaluate_model's beam run is its greedy run: reported once.
        for search, beams in (("greedy", 1), ("beam", num_beams))[: 1 if num_beams == 1 else 2]:
            label = "greedy" if beams == 1 else f"beam {beams}"
            eval_results.append(
                EvalResult(
                    **common,
                    metric_type=metric,
                    metric_name=f"{pretty} ({label})",
                    metric_value=round(float(results[f"{metric}_{search}"]), 2),
                    # The sacrebleu signature says how the score was computed, so that it can be compared.
                    metric_args={"num_beams": beams, "signature": results[f"{metric}_signature"]},
                )
            )
    tags = list(MODEL_TAGS) + list(MODES[training["mode"]].tags)
    if config is not None and getattr(config, "model_type", None) != "lstm_seq2seq":
        tags.remove("lstm")  # any transformers seq2seq model can be a teacher
    if training.get("pruning_ratio"):
        tags.append("pruned")
    tags += [tag for tag in ([extra_tags] if isinstance(extra_tags, str) else extra_tags or []) if tag not in tags]
    # Only Hub ids link to repositories; a local folder in the metadata would be a dead (or rejected) reference.
    datasets = [name for name in dict.fromkeys([training.get("dataset"), info.dataset]) if is_hub_id(name)]
    teacher = training.get("teacher")
    return ModelCardData(
        model_name=model_name or repo_id.split("/")[-1],
        eval_results=eval_results,
        language=[info.source_lang, info.target_lang],
        license=info.license,
        library_name="transformers",
        pipeline_tag="translation",
        tags=tags,
        datasets=datasets or None,
        base_model=teacher if info.role == "student" and is_hub_id(teacher) else None,
        metrics=["bleu", "chrf"],
    )


def normalize_training(training: dict | None, role: str) -> dict:
    """
    Checks the training facts of a model card and fills in what follows from them (mode description, K defaults).

    Args:
        training (`dict`, *optional*): see [`render_model_card`].
        role (`str`): `"teacher"` or `"student"`.

    Returns:
        `dict`: a copy with `mode`, `mode_description` and, for sequence-level modes, `selection_rule`.
    """
    training = dict(training or {})
    unknown = set(training) - set(TRAINING_KEYS)
    if unknown:
        raise ValueError(f"Unknown training facts {sorted(unknown)}; the known ones are {TRAINING_KEYS}.")
    name = training.setdefault("mode", "baseline")
    if name not in MODES:
        raise ValueError(f"training['mode'] must be one of {list(MODES)}, got {name!r}.")
    mode = MODES[name]
    if role == "student" and mode.name != "baseline" and not training.get("teacher"):
        raise ValueError("A distilled student's card needs training['teacher'], the teacher's Hub id or folder.")
    if mode.word_kd:
        missing = [key for key in ("alpha", "temperature") if training.get(key) is None]
        if missing:
            raise ValueError(f"mode {name!r} needs training facts {missing}.")
    if mode.data:  # `num_beams` is the K of the data of its last stage
        if training.get("num_beams") is None:
            raise ValueError(f"mode {name!r} needs training['num_beams'], the teacher's beam size K.")
        if SEQUENCE_DATA[mode.data[-1]].picks_by_reference:
            # Seq-Inter picks by similarity to the reference: smoothed sentence BLEU unless said otherwise.
            metric = training["selection_metric"] = training.get("selection_metric") or "bleu"
            training["selection_rule"] = (
                f"of the teacher's {training['num_beams']}-best list, the hypothesis with the highest smoothed "
                f"sentence {metric.upper()} against the reference"
            )
        else:
            # A selection metric means nothing for Seq-KD (SequenceDistillationConfig carries one all the same).
            training["selection_metric"] = None
            training["selection_rule"] = (
                f"the top hypothesis of the teacher's beam search (K = {training['num_beams']})"
            )
    if training.get("seq_kd_num_beams") is not None and len(mode.data) < 2:
        raise ValueError(
            "training['seq_kd_num_beams'] is the K of the Seq-KD stage of a two-stage mode (combined); "
            f"mode {name!r} has one."
        )
    pruning_ratio = training.get("pruning_ratio")
    if pruning_ratio is not None and not 0.0 <= pruning_ratio < 1.0:
        raise ValueError(f"training['pruning_ratio'] must be in [0, 1), got {pruning_ratio}.")
    training["mode_description"] = mode.description
    return training


def speed_comparison(results: dict, teacher_results: dict) -> dict:
    """
    How a student compares with its teacher, from the two `eval_results.json`.

    Returns:
        `dict`: `params_ratio` and `nonzero_params_ratio` (teacher / student, "times smaller"),
        `speedup_greedy` and `speedup_beam` (student words/s / teacher words/s), `bleu_greedy_delta` and
        `bleu_beam_delta` (student - teacher).
    """

    def ratio(numerator: float, denominator: float) -> float | None:
        return numerator / denominator if denominator else None

    return {
        "params_ratio": ratio(teacher_results["params"], results["params"]),
        "nonzero_params_ratio": ratio(teacher_results["params_nonzero"], results["params_nonzero"]),
        "speedup_greedy": ratio(results["words_per_sec_greedy"], teacher_results["words_per_sec_greedy"]),
        "speedup_beam": ratio(results["words_per_sec_beam"], teacher_results["words_per_sec_beam"]),
        "bleu_greedy_delta": results["bleu_greedy"] - teacher_results["bleu_greedy"],
        "bleu_beam_delta": results["bleu_beam"] - teacher_results["bleu_beam"],
    }


def architecture(config) -> dict | None:
    """The sizes a card shows, from a model config (`None` when there is none)."""
    if config is None:
        return None
    names = (
        "model_type",
        "encoder_layers",
        "decoder_layers",
        "hidden_size",
        "embedding_size",
        "vocab_size",
        "attention_score",
        "input_feeding",
        "bidirectional_encoder",
    )
    return {name: getattr(config, name) for name in names if getattr(config, name, None) is not None}


def render_model_card(
    results: dict | str | os.PathLike,
    *,
    role: str,
    repo_id: str,
    source_lang: str,
    target_lang: str,
    dataset: str,
    training: dict | None = None,
    teacher_results: dict | str | os.PathLike | None = None,
    config=None,
    dataset_config: str | None = None,
    split: str = "test",
    license: str = "apache-2.0",
    example: str | None = None,
    machine: str | None = None,
    model_name: str | None = None,
    extra_tags: list[str] | None = None,
) -> ModelCard:
    """
    The model card of a teacher or a distilled student, from `hub_cards/teacher_model.md` or `student_model.md`.

    Every number comes from `results` (and `teacher_results`); every training setting from `training`.

    Args:
        results (`dict`, `str` or `os.PathLike`): the model's evaluation, as [`~hf_seqkd.evaluation.evaluate_model`]
            returns it, or the path of the `eval_results.json` (or of its folder).
        repo_id (`str`): the model's Hub id, `user/name`, used in the usage snippets.
        role, source_lang, target_lang, dataset, training, teacher_results, dataset_config, split, license, example:
            the facts of [`CardInfo`] (`CardInfo.render_kwargs()` gives them).
        config (`PretrainedConfig`, *optional*): the model's config, for the architecture table.
        machine (`str`, *optional*): where the speeds were measured; defaults to `results["machine"]` if present,
            else this machine (render the card where the model was evaluated).
        model_name (`str`, *optional*), extra_tags (`list[str]`, *optional*): see [`model_card_data`].

    Returns:
        `ModelCard`: the card; `card.save(folder / "README.md")` writes it.
    """
    results = _as_results(results)
    teacher_results = _as_results(teacher_results) if teacher_results is not None else None
    if role == "teacher" and teacher_results is not None:
        raise ValueError("teacher_results is for a student's card, to compare it with its teacher.")
    info = CardInfo(
        role, source_lang, target_lang, dataset, dataset_config, training, teacher_results, example, split, license
    )
    card_data = model_card_data(
        results, info, repo_id=repo_id, config=config, model_name=model_name, extra_tags=extra_tags
    )
    training = normalize_training(training, role)
    card = ModelCard.from_template(
        card_data,
        template_path=str(HUB_CARDS / f"{role}_model.md"),
        # The facts (language pair, datasets, split, ...), with the training facts normalized and the teacher's
        # results read.
        **{**info.render_kwargs(), "training": training, "teacher_results": teacher_results},
        repo_id=repo_id,
        model_name=card_data.model_name,
        results=results,
        num_beams=int(results["num_beams"]),
        mode=MODES[training["mode"]],
        training_dataset=training.get("dataset") or dataset,
        comparison=speed_comparison(results, teacher_results) if teacher_results is not None else None,
        architecture=architecture(config),
        # A JSON string is a valid Python string literal, quotes and accents included.
        example_literal=json.dumps(example or f"A sentence in {source_lang}.", ensure_ascii=False),
        machine=machine or results.get("machine") or describe_machine(),
    )
    # Optional template sections leave runs of blank lines behind; Markdown ignores them, readers of the raw file not.
    card.content = re.sub(r"\n{3,}", "\n\n", card.content)
    return card


def check_model_card(card: ModelCard | str | os.PathLike) -> tuple[str, list[EvalResult]]:
    """
    Checks a model card's metadata offline (`ModelCard.validate` asks the Hub's server, so it needs the network).

    The YAML block is parsed as the Hub parses it, its `model-index` is read back into `EvalResult`s, and the fields
    every hf_seqkd card carries are checked.

    Args:
        card (`ModelCard`, `str` or `os.PathLike`): a card, or the path of a `README.md`.

    Returns:
        `(model_name, eval_results)`: what `model-index` holds.

    Raises:
        `ValueError`: if the metadata is missing, unparsable or lacks a required field.
    """
    if isinstance(card, ModelCard):
        with tempfile.TemporaryDirectory() as tmp:
            card.save(Path(tmp) / "README.md")
            metadata = metadata_load(Path(tmp) / "README.md")
    else:
        metadata = metadata_load(card)
    if not metadata:
        raise ValueError("The card has no YAML metadata block.")
    missing = [key for key in ("model-index", "language", "license", "library_name", "tags") if key not in metadata]
    if missing:
        raise ValueError(f"The card's metadata lacks {missing}.")
    try:
        ModelCardData(**metadata)
        model_name, eval_results = model_index_to_eval_results(metadata["model-index"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"The card's model-index cannot be read: {error!r}") from error
    for result in eval_results:
        if not isinstance(result.metric_value, (int, float)):
            raise ValueError(f"{result.metric_name}: {result.metric_value!r} is not a number.")
    return model_name, eval_results


def prepare_push_folder(
    model,
    tokenizer,
    card: ModelCard,
    folder: str | os.PathLike,
    extra_files: list[str | os.PathLike] = (),
    storage_dtype: torch.dtype | None = None,
) -> list[str]:
    """
    Writes into `folder` exactly the files of the Hub repository, and returns their names.

    The model goes in safetensors with its config, generation config and (for hf_seqkd models) its modeling code,
    so that `AutoModelForSeq2SeqLM.from_pretrained(repo, trust_remote_code=True)` works without hf_seqkd; then the
    tokenizer, the card as `README.md`, and `extra_files` (e.g. `eval_results.json`). `folder` may already hold
    other files (a training output folder with checkpoints): only the returned names belong to the repository,
    which is what [`push_folder`] uploads.

    Args:
        model (`PreTrainedModel`): the model.
        tokenizer (`PreTrainedTokenizerBase`, *optional*): its tokenizer.
        card (`ModelCard`): its card, from [`render_model_card`].
        folder (`str` or `os.PathLike`): where to write (created if needed).
        extra_files (`list`, *optional*): more files to copy into `folder` under their own names.
        storage_dtype (`torch.dtype`, *optional*): store the weights in this dtype (e.g. `torch.float16`, half the
            size) while the config keeps the model's own dtype, so `from_pretrained` casts them back on loading:
            a CPU, where float16 or bfloat16 arithmetic can be many times slower, still computes in float32.

    Returns:
        `list[str]`: the file names, relative to `folder`, sorted.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Saved to a fresh folder first, to know exactly which files save_pretrained writes (shards, code files), then
    # moved in: a rename, so a large model is neither written twice nor held twice on disk.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".push-") as staging:
        staging = Path(staging)
        if storage_dtype is None:
            model.save_pretrained(staging)  # safetensors, config, generation config, modeling code
        else:
            compute_dtype = str(model.dtype).removeprefix("torch.")
            copy.deepcopy(model).to(storage_dtype).save_pretrained(staging)
            config = json.loads((staging / "config.json").read_text())
            config["dtype"] = compute_dtype  # what from_pretrained loads the weights as
            (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        card.save(staging / "README.md")
        for path in extra_files:
            shutil.copyfile(path, staging / Path(path).name)
        names = sorted(path.relative_to(staging).as_posix() for path in staging.rglob("*") if path.is_file())
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, folder / name)
    return names


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    files: list[str] | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload model with hf_seqkd",
    create_repo: bool = True,
    run_as_future: bool = False,
):
    """
    Uploads a folder written by [`prepare_push_folder`] to the Hub model repository `repo_id` in one commit, creating
    the repository if needed (needs a token with write access: `hf auth login`, or `token`).

    The card's metadata is checked offline first ([`check_model_card`]), so a broken card fails before anything is
    uploaded.

    Args:
        folder (`str` or `os.PathLike`): the folder.
        repo_id (`str`): `user/name` or `organization/name`.
        private (`bool`, *optional*): create the repository private; `None` follows the account's default. No effect
            on an existing repository.
        files (`list[str]`, *optional*): upload only these files (what `prepare_push_folder` returned); all of
            `folder` when `None`.
        token (`str`, *optional*): a Hub token; defaults to the saved login.
        revision (`str`, *optional*): the branch to commit to; defaults to `main`.
        commit_message (`str`, *optional*): the commit message.
        create_repo (`bool`, *optional*, defaults to `True`): create the repository first (`False` when it exists,
            e.g. made by the Trainer's `init_hf_repo`).
        run_as_future (`bool`, *optional*, defaults to `False`): return at once, with a `Future` of the commit.

    Returns:
        `CommitInfo`: the commit, with its URL.
    """
    folder = Path(folder)
    if (folder / "README.md").is_file():
        check_model_card(folder / "README.md")
    api = HfApi(token=token)
    if create_repo:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        repo_type="model",
        revision=revision,
        commit_message=commit_message,
        # Patterns are matched with fnmatch: escape the names so that each matches only itself.
        allow_patterns=[glob.escape(name) for name in files] if files is not None else None,
        # Weights of an earlier push that this one does not overwrite (other shards, a .bin) would be loaded
        # alongside or instead of the new ones: the commit removes them.
        delete_patterns=STALE_WEIGHT_PATTERNS,
        run_as_future=run_as_future,
    )


def render_distilled_dataset_card(
    *,
    repo_id: str,
    teacher: str,
    config,
    source_lang: str,
    target_lang: str,
    source_dataset: str,
    splits: dict,
    bleu_signature: str,
) -> DatasetCard:
    """
    The card of a Seq-KD / Seq-Inter dataset, from `hub_cards/distilled_dataset.md`.

    Args:
        config ([`~hf_seqkd.seq_kd.SequenceDistillationConfig`]): how the data were made (`mode`, K as `num_beams`,
            `selection_metric`).
        splits (`dict`): for each distilled split, `{"num_rows", "bleu", "sentences_per_sec", "seconds"}` as measured.
    """
    data = sequence_data(config.mode)
    card_data = DatasetCardData(
        language=[source_lang, target_lang],
        task_categories=["translation"],
        tags=["knowledge-distillation", "sequence-level-knowledge-distillation", data.name.replace("_", "-")],
        source_datasets=[source_dataset],
        pretty_name=f"{source_dataset} {source_lang}-{target_lang}, {data.name} targets",
    )
    selection_rule = (
        f"highest smoothed sentence {config.selection_metric.upper()} against the reference"
        if data.picks_by_reference
        else "the top hypothesis of the beam"
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(HUB_CARDS / "distilled_dataset.md"),
        repo_id=repo_id,
        teacher=teacher,
        data=data,  # the kind of data (hf_seqkd.modes.SEQUENCE_DATA): its name, method, selection
        config=config,
        selection_rule=selection_rule,
        source_lang=source_lang,
        target_lang=target_lang,
        source_dataset=source_dataset,
        distilled_splits=list(splits),
        splits=splits,
        bleu_signature=bleu_signature,
        machine=describe_machine(),
    )


def push_dataset(dataset: DatasetDict, card: DatasetCard, repo_id: str, private: bool = False) -> None:
    """Uploads the dataset and its card to the Hub (needs a token with write access: `hf auth login`)."""
    dataset.push_to_hub(repo_id, private=private)
    card.push_to_hub(repo_id, repo_type="dataset")


def _as_results(results: dict | str | os.PathLike) -> dict:
    return results if isinstance(results, dict) else load_results(results)
