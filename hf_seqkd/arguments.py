"""
The recipes' plumbing: dataclass arguments from a `--config` YAML file overridden by CLI flags, logging, and the end
of a multi-process run.
"""

import argparse
import dataclasses
import json
import logging
import os
import sys
import textwrap
from dataclasses import dataclass, field
from typing import get_type_hints

import torch
import yaml
from transformers import HfArgumentParser, Seq2SeqTrainingArguments, TrainingArguments

from .checks import check_arguments
from .configuration_lstm_seq2seq import ATTENTION_SCORES, PRESETS


@dataclass
class ModelArguments:
    """
    The model to train: a saved model to continue from, a new LSTM seq2seq built from a preset and overrides, or a
    new model of any other transformers seq2seq architecture built from its config (`model_type` + `model_config`).

    Args:
        model_name_or_path (`str`, *optional*):
            Start from this saved model (folder or Hub id) instead of a new one.
        model_type (`str`, *optional*):
            The architecture of a new model: `lstm_seq2seq` (the default) or any `AutoModelForSeq2SeqLM` model type,
            e.g. `marian`, `bart`, `t5`. Its vocabulary size and special-token ids come from the tokenizer.
        model_config (`dict` or `str`, *optional*):
            Config kwargs of the new model, a mapping in the YAML file or JSON on the command line; e.g. for
            `marian`: `{d_model: 256, encoder_layers: 3, decoder_layers: 3, encoder_attention_heads: 4, ...}`. For
            the LSTM they are [`LSTMSeq2SeqConfig`] kwargs, like the size flags below (which are LSTM-only).
        preset (`str`, *optional*):
            Paper sizes: `teacher_4x1000`, `student_2x500` or `student_2x300`. The size flags below override it.
        embedding_size, hidden_size, layers (`int`, *optional*):
            Sizes of a new model (`layers` for both encoder and decoder).
        dropout (`float`, *optional*), attention_score (`str`, *optional*), input_feeding (`bool`, *optional*),
        bidirectional_encoder (`bool`, *optional*), tie_word_embeddings (`bool`, *optional*):
            See [`LSTMSeq2SeqConfig`].
        tokenizer_name_or_path (`str`, *optional*):
            A saved tokenizer; when omitted, a joint BPE tokenizer is trained on the training split.
        tokenizer_vocab_size (`int`), tokenizer_min_frequency (`int`):
            Settings of that trained tokenizer.
    """

    model_name_or_path: str | None = field(default=None, metadata={"help": "Start from this saved model."})
    model_type: str | None = field(
        default=None, metadata={"help": "Architecture of a new model: lstm_seq2seq (default), marian, bart, t5, ..."}
    )
    model_config: dict | str | None = field(
        default=None, metadata={"help": "Config kwargs of a new model (a YAML mapping, or JSON), e.g. marian sizes."}
    )
    preset: str | None = field(default=None, metadata={"help": "Paper size preset.", "choices": list(PRESETS)})
    embedding_size: int | None = field(default=None, metadata={"help": "Embedding size of a new model."})
    hidden_size: int | None = field(default=None, metadata={"help": "LSTM size of a new model."})
    layers: int | None = field(default=None, metadata={"help": "Encoder and decoder layers of a new model."})
    dropout: float | None = field(default=None, metadata={"help": "Dropout of a new model."})
    attention_score: str | None = field(
        default=None, metadata={"help": "Luong score.", "choices": list(ATTENTION_SCORES)}
    )
    input_feeding: bool | None = field(default=None, metadata={"help": "Input feeding in the decoder."})
    bidirectional_encoder: bool | None = field(default=None, metadata={"help": "Bidirectional encoder."})
    tie_word_embeddings: bool | None = field(default=None, metadata={"help": "Tie decoder embeddings and softmax."})
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved tokenizer (else one is trained)."}
    )
    tokenizer_vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of a trained tokenizer."})
    tokenizer_min_frequency: int = field(default=2, metadata={"help": "min_frequency of a trained tokenizer."})

    def __post_init__(self):
        if isinstance(self.model_config, str):
            try:
                self.model_config = json.loads(self.model_config)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"--model_config must be a JSON object such as '{{\"d_model\": 256}}', got {self.model_config!r} "
                    f"({error})."
                ) from None
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise ValueError(f"model_config must be a mapping of config kwargs, got {self.model_config!r}.")
        new_model = self.model_type is not None or self.model_config
        if new_model and self.model_name_or_path is not None:
            raise ValueError(
                "model_type / model_config build a new model, but --model_name_or_path continues from a saved one "
                f"({self.model_name_or_path}): drop one of them."
            )
        if not self.is_lstm:
            lstm_flags = sorted(set(self.config_overrides()) | ({"preset"} if self.preset else set()))
            if lstm_flags:
                raise ValueError(
                    f"{lstm_flags} size an LSTM, but model_type is {self.model_type!r}: give that model's sizes in "
                    f"model_config instead (e.g. d_model, encoder_layers for marian)."
                )
        clash = sorted(set(self.model_config or {}) & set(self.config_overrides()))
        if clash:
            raise ValueError(f"{clash} are set both by their flags and in model_config: set them once.")

    @property
    def is_lstm(self) -> bool:
        """Whether a new model is the LSTM seq2seq (`model_type` unset or `lstm_seq2seq`)."""
        return self.model_type in (None, "lstm_seq2seq")

    def config_overrides(self) -> dict:
        """The model-size flags that were set, as `LSTMSeq2SeqConfig` kwargs."""
        overrides = {
            name: getattr(self, name)
            for name in (
                "embedding_size",
                "hidden_size",
                "dropout",
                "attention_score",
                "input_feeding",
                "bidirectional_encoder",
                "tie_word_embeddings",
            )
            if getattr(self, name) is not None
        }
        if self.layers is not None:
            overrides["encoder_layers"] = overrides["decoder_layers"] = self.layers
        return overrides


CONFIG_HELP = """\
Settings: `--config file.yaml` reads a YAML mapping whose keys are the flag names below (e.g. `learning_rate: 0.001`);
flags given on the command line override the file, e.g.
    --config recipes/bible_es_en/<run>/config.yaml --output_dir elsewhere --learning_rate 0.0005
The recipe's own arguments are listed first, transformers' training arguments (if it trains) last."""

TRAINER_DOCS = "https://huggingface.co/docs/transformers/main_classes/trainer#transformers.Seq2SeqTrainingArguments"


class RecipeArgumentParser(HfArgumentParser):
    """
    `HfArgumentParser` whose `--help` reads well for a recipe: a short usage line, the recipe's description and how
    `--config` works, then one group of flags per dataclass, the recipe's own first and the long list of
    transformers' `TrainingArguments` last (the fields a `TrainingArguments` subclass adds, e.g. the Word-KD ones, in
    a group of their own before it). Parses into the dataclasses in the order given, whatever the order of the help.
    """

    def __init__(self, dataclass_types, description: str | None = None, **kwargs):
        self._given_order = list(dataclass_types)
        trainer_types = [dtype for dtype in self._given_order if issubclass(dtype, TrainingArguments)]
        own_types = [dtype for dtype in self._given_order if dtype not in trainer_types]
        usage = "%(prog)s [--config file.yaml] [--flag value ...]"
        text = "\n\n".join(part.strip("\n") for part in (description, CONFIG_HELP) if part)
        super().__init__(
            own_types + trainer_types, usage=usage, description=text, formatter_class=_HelpFormatter, **kwargs
        )
        self.add_argument(
            "--config",
            metavar="file.yaml",
            default=argparse.SUPPRESS,  # read by parse_args before this parser runs
            help="YAML file of settings, keyed by flag name; flags on the command line win over it.",
        )

    def _add_dataclass_arguments(self, dtype):
        hints = get_type_hints(dtype)
        fields = [item for item in dataclasses.fields(dtype) if item.init]
        groups = [(dtype.__name__, _summary(dtype), fields)]
        if issubclass(dtype, TrainingArguments):
            base = Seq2SeqTrainingArguments if issubclass(dtype, Seq2SeqTrainingArguments) else TrainingArguments
            inherited = {item.name for item in dataclasses.fields(base)}
            groups = [
                (dtype.__name__, _summary(dtype), [item for item in fields if item.name not in inherited]),
                (
                    f"{base.__name__} (transformers)",
                    f"The Trainer's settings, documented at\n{TRAINER_DOCS}",
                    [item for item in fields if item.name in inherited],
                ),
            ]
        for title, summary, group_fields in groups:
            if not group_fields:
                continue
            group = self.add_argument_group(title, summary)
            for item in group_fields:
                item.type = hints[item.name]
                self._parse_dataclass_field(group, item)

    def parse_args_into_dataclasses(self, args=None, **kwargs):
        parsed = super().parse_args_into_dataclasses(args, **kwargs)
        by_type = {type(obj): obj for obj in parsed if dataclasses.is_dataclass(obj)}
        return tuple(by_type[dtype] for dtype in self._given_order)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each flag's help; the description keeps its own line breaks (its command lines)."""


def _summary(dtype) -> str | None:
    """The first sentence of a dataclass's docstring, wrapped; none when it starts with its `Args:` list."""
    doc = (dtype.__doc__ or "").strip()
    first = " ".join(doc.split("\n\n")[0].split())
    if not first or first.startswith(("Args:", f"{dtype.__name__}(")) or issubclass(dtype, TrainingArguments):
        return None
    return textwrap.fill(first.split(". ")[0].rstrip("."), width=96)


def parse_args(
    dataclass_types, args: list[str] | None = None, check_inputs: bool = True, description: str | None = None
):
    """
    Parses `dataclass_types` from `--config file.yaml` (keys are the flag names) and the command line; flags given
    on the command line win over the file. Unknown keys in the file are an error, not silently ignored. With
    `check_inputs` (the default; off only to parse a config whose inputs are not made yet), so are paths of models and
    tokenizers that do not exist, and non-finite rates ([`~hf_seqkd.checks.check_arguments`]).

    `--help` starts with `description`, by default the docstring of the module that calls this function (the
    recipe's), and how `--config` and overrides work, then lists the flags of each dataclass in a group of its own,
    `TrainingArguments` last ([`RecipeArgumentParser`]).
    """
    args = sys.argv[1:] if args is None else args
    if description is None:
        description = sys._getframe(1).f_globals.get("__doc__")  # the calling recipe's module docstring
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        # Several processes launched (torchrun, accelerate) on a machine without GPU: without this, transformers'
        # TrainingArguments leaves every process a world of one instead of CPU DDP over gloo.
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")
    parser = RecipeArgumentParser(dataclass_types, description=description)
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config")
    known, remaining = config_parser.parse_known_args(args)
    if known.config is not None:
        with open(known.config) as handle:
            defaults = yaml.safe_load(handle) or {}
        destinations = {action.dest: action for action in parser._actions if action.dest != "config"}
        unknown = sorted(set(defaults) - set(destinations))
        if unknown:
            raise ValueError(f"{known.config}: unknown keys {unknown}. Each key must be a command-line flag name.")
        for name in defaults:
            destinations[name].required = False  # satisfied by the file
        parser.set_defaults(**defaults)
    parsed = parser.parse_args_into_dataclasses(remaining)
    if check_inputs:
        check_arguments(*parsed)  # paths exist, rates are finite: before any data or model is loaded
    return parsed


def setup_logging(is_main_process: bool = True) -> None:
    """Recipe logging to stdout: INFO on the main process, warnings only on the others (no output N times over)."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if is_main_process else logging.WARNING,
        stream=sys.stdout,
    )


def end_process_group() -> None:
    """
    Destroys the default process group of a multi-process run (`accelerate launch`, `torchrun`) once a recipe has
    finished; a single process has none and nothing happens.

    Called on every rank, after success only (on an error, another rank may still wait in a collective). Without it
    the Gloo backend's threads are torn down during interpreter finalization: a rank that finished first (any rank
    but 0, while rank 0 evaluated the test split) sometimes aborted with "terminate called without an active
    exception", and the launcher then failed the whole run.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
