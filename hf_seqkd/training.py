"""What every training recipe shares: tokenizer and model construction, BLEU for validation, resumable training."""

import dataclasses
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
from transformers.trainer_utils import get_last_checkpoint

from .arguments import ModelArguments
from .checks import check_resumable, last_intact_checkpoint
from .configuration_lstm_seq2seq import PRESETS, LSTMSeq2SeqConfig
from .data import DataArguments, source_and_target_texts
from .evaluation import corpus_scores
from .modeling_lstm_seq2seq import LSTMSeq2SeqForConditionalGeneration
from .tokenization import train_tokenizer
from .trainer import TranslationTrainer

logger = logging.getLogger(__name__)


@dataclass
class EarlyStoppingArguments:
    """
    When training stops before `num_train_epochs`: after `early_stopping_patience` evaluations in a row without a
    better `metric_for_best_model` (validation BLEU in the recipes). With `lr_scheduler_type: reduce_lr_on_plateau`
    and `lr_scheduler_kwargs: {mode: max, factor: 0.5, patience: 0}` the learning rate halves at every evaluation
    that does not improve (Luong et al., 2015), so `num_train_epochs` becomes an upper bound, not a schedule.

    Args:
        early_stopping_patience (`int`, *optional*):
            Evaluations without improvement before training stops; `None` or 0 trains for `num_train_epochs`. Needs
            `load_best_model_at_end: true` and `metric_for_best_model`, so the saved model is the best one.
        early_stopping_threshold (`float`):
            How much better than the best so far an evaluation must be to count as an improvement.
        plateau_warmup_epochs (`int`):
            Evaluations up to this epoch neither count towards `early_stopping_patience` nor halve the learning rate
            of `reduce_lr_on_plateau`. A fresh LSTM's validation BLEU wobbles near zero for its first epochs (in the
            Table 1 run a Seq-Inter student went 1.62 -> 0.81 at epoch 3, which halved its rate for good, then 2.77):
            a plateau there says nothing about convergence.
    """

    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without a better metric_for_best_model (0: never)."},
    )
    early_stopping_threshold: float = field(
        default=0.0, metadata={"help": "Smallest gain of metric_for_best_model that counts as an improvement."}
    )
    plateau_warmup_epochs: int = field(
        default=0,
        metadata={
            "help": "Evaluations up to this epoch neither count towards early stopping nor halve the learning rate "
            "(reduce_lr_on_plateau): the first epochs' BLEU wobbles near zero."
        },
    )

    def __post_init__(self):
        if self.early_stopping_patience is not None and self.early_stopping_patience < 0:
            raise ValueError(
                f"--early_stopping_patience must be 0 (off) or more (got {self.early_stopping_patience})."
            )
        if self.plateau_warmup_epochs < 0:
            raise ValueError(f"--plateau_warmup_epochs must be 0 (off) or more (got {self.plateau_warmup_epochs}).")

    def callbacks(self, training_args: Seq2SeqTrainingArguments) -> list:
        """The trainer callbacks these settings ask for (checked against `training_args`)."""
        warmup = self.plateau_warmup_epochs
        if not self.early_stopping_patience:
            return [PlateauWarmupCallback(warmup)] if warmup else []
        if not training_args.load_best_model_at_end or training_args.metric_for_best_model is None:
            raise ValueError(
                "--early_stopping_patience needs --load_best_model_at_end true and --metric_for_best_model (e.g. "
                "bleu): training stops on that metric and the best evaluated model is the one saved."
            )
        # A resumed run restores the callback's count of evaluations without improvement from the checkpoint.
        training_args.restore_callback_states_from_checkpoint = True
        if not warmup:  # transformers' own callback, under the name earlier runs' checkpoints recorded
            return [EarlyStoppingCallback(self.early_stopping_patience, self.early_stopping_threshold)]
        stopping = EarlyStoppingAfterWarmupCallback(
            self.early_stopping_patience, self.early_stopping_threshold, warmup
        )
        return [PlateauWarmupCallback(warmup), stopping]


def _in_warmup(state, warmup_epochs: int) -> bool:
    return state.epoch is not None and round(state.epoch, 6) <= warmup_epochs


class PlateauWarmupCallback(TrainerCallback):
    """
    `reduce_lr_on_plateau` (which the Trainer steps right after `on_evaluate`) takes every evaluation up to epoch
    `warmup_epochs` as an improvement, so that none of them halves the learning rate.
    """

    def __init__(self, warmup_epochs: int):
        self.warmup_epochs = warmup_epochs

    def on_evaluate(self, args, state, control, lr_scheduler=None, **kwargs):
        if _in_warmup(state, self.warmup_epochs) and isinstance(
            lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
        ):
            lr_scheduler.best = lr_scheduler.mode_worse  # any value beats it: no bad epoch is counted


class EarlyStoppingAfterWarmupCallback(EarlyStoppingCallback):
    """transformers' `EarlyStoppingCallback`, blind to the evaluations up to epoch `warmup_epochs`."""

    def __init__(
        self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0, warmup_epochs: int = 0
    ):
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.warmup_epochs = warmup_epochs

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if _in_warmup(state, self.warmup_epochs):
            self.early_stopping_patience_counter = 0
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)

    def state(self) -> dict:  # what a resumed run rebuilds the callback from
        state = super().state()
        state["args"]["warmup_epochs"] = self.warmup_epochs
        return state


@dataclass
class CheckpointArguments:
    """
    Checkpoints between those of `save_strategy`, so that a killed run started again loses little work: with
    `eval_strategy: epoch` (which `load_best_model_at_end` ties `save_strategy` to) an epoch can take many minutes.

    Args:
        intermediate_save_steps (`int`, *optional*):
            Also save a checkpoint every this many optimizer steps. Not evaluated: evaluation, early stopping and the
            learning-rate schedule keep following `eval_strategy`, and with `save_total_limit` the best checkpoint
            and the newest are kept. `None` saves only as `save_strategy` says.
    """

    intermediate_save_steps: int | None = field(
        default=None,
        metadata={"help": "Also save a checkpoint (not evaluated) every this many steps, to resume a killed run."},
    )

    def __post_init__(self):
        if self.intermediate_save_steps is not None and self.intermediate_save_steps < 1:
            raise ValueError(
                f"--intermediate_save_steps must be 1 or more (got {self.intermediate_save_steps}); leave it out to "
                f"save only as --save_strategy says."
            )

    def callbacks(self) -> list:
        """
        The trainer callbacks these settings ask for; pass them as `callbacks` to [`run_training`] (before the
        callback that checks the loss before every save).
        """
        return [IntermediateCheckpointCallback(self.intermediate_save_steps)] if self.intermediate_save_steps else []


class IntermediateCheckpointCallback(TrainerCallback):
    """Saves a checkpoint every `steps` optimizer steps, whatever `save_strategy` says ([`CheckpointArguments`])."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.steps == 0:
            control.should_save = True


def load_or_train_tokenizer(
    model_args: ModelArguments, data_args: DataArguments, train_split: Dataset, output_dir: str
) -> PreTrainedTokenizerBase:
    """
    The given tokenizer (or the model's); else the one a previous run of this recipe saved in `output_dir` (so a
    resumed run keeps its vocabulary); else a joint BPE trained on the training split's two sides and saved to
    `output_dir`, where other processes (run under `main_process_first`) then find it.
    """
    name = model_args.tokenizer_name_or_path or model_args.model_name_or_path
    if name is not None:
        return AutoTokenizer.from_pretrained(name)
    if os.path.isfile(os.path.join(output_dir, "tokenizer.json")):
        logger.info(f"Loading the tokenizer saved in {output_dir}.")
        return AutoTokenizer.from_pretrained(output_dir)
    sources, targets = source_and_target_texts(train_split, data_args)
    logger.info(f"Training a joint BPE tokenizer ({model_args.tokenizer_vocab_size} tokens) on {len(sources)} pairs.")
    tokenizer = train_tokenizer(
        itertools.chain(sources, targets),
        vocab_size=model_args.tokenizer_vocab_size,
        min_frequency=model_args.tokenizer_min_frequency,
        model_max_length=max(data_args.max_source_length, data_args.max_target_length),
    )
    tokenizer.save_pretrained(output_dir)
    return tokenizer


def build_model(
    model_args: ModelArguments, data_args: DataArguments, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """
    The saved model to continue from; a new LSTM seq2seq sized by the preset, `model_config` and the size flags; or
    a new model of another `model_type` (e.g. `marian`) from `model_config`. A new model takes its vocabulary size
    and special tokens from `tokenizer` (the decoder starts from `<s>`, or `<pad>` when the tokenizer has no `<s>`).
    """
    if model_args.model_name_or_path is not None:
        return AutoModelForSeq2SeqLM.from_pretrained(model_args.model_name_or_path)
    user_config = dict(model_args.model_config or {})
    if model_args.is_lstm:
        make_config = PRESETS[model_args.preset] if model_args.preset else LSTMSeq2SeqConfig
        config = make_config(
            **_token_ids(tokenizer),
            # The data limits filter training pairs; the model accepts longer sources (up to the config's 256 or
            # more) and generates up to twice the longest training target by default.
            max_source_length=max(256, data_args.max_source_length),
            max_target_length=2 * data_args.max_target_length,
            **{**user_config, **model_args.config_overrides()},
        )
        return LSTMSeq2SeqForConditionalGeneration(config)
    return _build_transformers_model(model_args.model_type, user_config, data_args, tokenizer)


def _token_ids(tokenizer: PreTrainedTokenizerBase) -> dict:
    return dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _build_transformers_model(
    model_type: str, user_config: dict, data_args: DataArguments, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """A new `AutoModelForSeq2SeqLM` of `model_type` from `user_config`, its tokens those of `tokenizer`."""
    token_ids = _token_ids(tokenizer)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
    token_ids["decoder_start_token_id"] = start
    for name in ("vocab_size", "decoder_vocab_size"):
        if name in user_config and user_config[name] != len(tokenizer):
            raise ValueError(
                f"model_config sets {name}={user_config[name]}, but the tokenizer has {len(tokenizer)} tokens: leave "
                f"{name} out (it is taken from the tokenizer) or pick a tokenizer of that size."
            )
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"model_type {model_type!r} is not a transformers model type (e.g. marian, bart, t5).")
    if model_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"model_type {model_type!r} is not a seq2seq language model (AutoModelForSeq2SeqLM); use one such as "
            f"marian, bart, t5 or lstm_seq2seq."
        )
    config = AutoConfig.for_model(model_type, **{**token_ids, **user_config})
    positions = getattr(config, "max_position_embeddings", None)
    longest = max(data_args.max_source_length, data_args.max_target_length)
    if positions is not None and positions < longest:
        raise ValueError(
            f"model_config: max_position_embeddings={positions} is shorter than the data's max_source_length / "
            f"max_target_length ({longest}); raise it, or lower those."
        )
    if getattr(config, "decoder_vocab_size", None) not in (None, len(tokenizer)):
        config.decoder_vocab_size = len(tokenizer)  # e.g. Marian's default, meant for its own vocabularies
    if getattr(config, "forced_eos_token_id", None) is not None and "forced_eos_token_id" not in user_config:
        config.forced_eos_token_id = tokenizer.eos_token_id  # defaults name the architecture's own vocabulary
    model = AutoModelForSeq2SeqLM.from_config(config)
    # Room to generate twice the longest training target, within the model's positions.
    max_length = 2 * data_args.max_target_length + 1
    model.generation_config.max_length = min(max_length, positions) if positions else max_length
    return model


def bleu_metrics(tokenizer: PreTrainedTokenizerBase):
    """A `compute_metrics` for `predict_with_generate`: corpus BLEU and chrF (sacrebleu) of the generations."""

    def compute_metrics(eval_prediction):
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        predictions = np.where(predictions < 0, tokenizer.pad_token_id, predictions)
        labels = np.where(labels < 0, tokenizer.pad_token_id, labels)
        hypotheses = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        references = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        scores = corpus_scores(hypotheses, references)
        return {"bleu": scores["bleu"], "chrf": scores["chrf"]}

    return compute_metrics


class TrainingTimeLimitCallback(TrainerCallback):
    """
    Stops training once `max_seconds` of wall time have passed since `on_train_begin`, checked after every optimizer
    step; that last step is then evaluated (when the run evaluates at all) and saved, so that with
    `load_best_model_at_end` it competes with the earlier checkpoints. For comparing models trained for equal time.
    """

    def __init__(self, max_seconds: float):
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}.")
        self.max_seconds = max_seconds
        self.start = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.start < self.max_seconds:
            return
        logger.info(f"Training time limit of {self.max_seconds:.0f} s reached at step {state.global_step}: stopping.")
        control.should_training_stop = True
        control.should_evaluate = args.eval_strategy != "no"
        control.should_save = args.save_strategy != "no"


def run_training(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None,
    training_args: Seq2SeqTrainingArguments,
    trainer_class=TranslationTrainer,
    early_stopping: EarlyStoppingArguments | None = None,
    **trainer_kwargs,
):
    """
    Trains with `trainer_class` and saves the final (or best, with `load_best_model_at_end`) model and tokenizer in
    `output_dir`. A run that was killed resumes from the last checkpoint in `output_dir` (or from
    `--resume_from_checkpoint`), losing at most the steps since that checkpoint; the log says which checkpoint it
    resumes from, or that it starts fresh. With `early_stopping`, training ends once the validation metric stops
    improving (see [`EarlyStoppingArguments`]). `trainer_kwargs` go to the trainer, e.g. `callbacks` (such as
    [`CheckpointArguments.callbacks`]) and `card` (a [`~hf_seqkd.hub.CardInfo`], for the model card).

    The model card is filled from the evaluation that follows training, so the Trainer's own pushes while it
    trains (the repository made up front, every checkpoint, `save_model`) are off even with `push_to_hub`: evaluate,
    then call `trainer.create_model_card()` and `trainer.push_to_hub()` ([`~hf_seqkd.trainer.TranslationTrainer`]),
    which pushes once.

    Returns:
        The trainer, after training.
    """
    if training_args.push_to_hub:
        training_args = dataclasses.replace(training_args, push_to_hub=False)
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
        compute_metrics=bleu_metrics(tokenizer) if training_args.predict_with_generate else None,
        **trainer_kwargs,
    )
    # A NaN loss must reach the logs, where NonFiniteLossCallback stops training, not be averaged away.
    training_args.logging_nan_inf_filter = False
    trainer.add_callback(NonFiniteLossCallback())
    for callback in early_stopping.callbacks(training_args) if early_stopping else []:
        trainer.add_callback(callback)
    checkpoint = training_args.resume_from_checkpoint
    given = checkpoint is not None
    if checkpoint is None:
        checkpoint = last_intact_checkpoint(training_args.output_dir)
    if isinstance(checkpoint, str):
        check_resumable(checkpoint, model)
    if trainer.is_world_process_zero():
        logger.info(resume_message(checkpoint, training_args.output_dir, given))
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    trainer.save_model()  # model, tokenizer (processing_class), generation config, modeling code
    return trainer


def resume_message(checkpoint: str | None, output_dir: str, given: bool = False) -> str:
    """The log line that says whether training resumes (from which checkpoint, step and epoch) or starts fresh."""
    if checkpoint is None:
        return f"Starting training from step 0: no checkpoint found in {output_dir}."
    how = "--resume_from_checkpoint" if given else "the last checkpoint in output_dir"
    state_path = os.path.join(checkpoint, "trainer_state.json")
    where = ""
    if os.path.isfile(state_path):
        with open(state_path) as handle:
            state = json.load(handle)
        # Not the saved run's max_steps: this run may have been given another length.
        where = f" at step {state.get('global_step')}, epoch {state.get('epoch') or 0:.2f}"
    return f"Resuming training from {checkpoint} ({how}){where}; the steps before it are not trained again."


def describe_model(model: PreTrainedModel) -> str:
    """One line on a model: its type, sizes (layers x hidden, embedding, vocabulary) and parameter count."""
    config = model.config
    layers = getattr(config, "encoder_layers", None) or getattr(config, "num_layers", None)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    sizes = []
    if layers and hidden:
        decoder_layers = getattr(config, "decoder_layers", layers)
        sizes.append(f"{layers}x{hidden}" if decoder_layers == layers else f"{layers}+{decoder_layers}x{hidden}")
    embedding = getattr(config, "embedding_size", None)
    if embedding and embedding != hidden:
        sizes.append(f"embedding {embedding}")
    sizes.append(f"vocabulary {config.vocab_size}")
    return f"Model: {config.model_type} {', '.join(sizes)}; {model.num_parameters():,} parameters."


class NonFiniteLossError(RuntimeError):
    """Training diverged: the weights or the logged losses are NaN or infinite."""


class NonFiniteLossCallback(TrainerCallback):
    """
    Stops training with [`NonFiniteLossError`] when the training loss (or the evaluation loss) is NaN or infinite, or
    an optimizer step leaves a weight NaN or infinite: before that step's checkpoint, any final model, card or upload,
    so the last checkpoint stays good. Also warns once when the loss is far above that of a uniform guess over the
    vocabulary: training is diverging.

    The loss reaches the callback through the logs, so it needs `logging_nan_inf_filter=False` (which
    [`run_training`] sets: the filter would average a NaN loss away and log the mean of the earlier ones, 0 when
    there are none), and it makes the Trainer log at every step that saves, evaluates or ends training (the log comes
    first). A mixed-precision step that overflows is skipped by the gradient scaler and leaves loss and weights
    finite, so it stops nothing.
    """

    def __init__(self):
        self._warned = False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        finite = torch.stack([param.detach().isfinite().all() for param in model.parameters()]).all()
        if not finite.item():
            raise self._error(args, state, "the weights are NaN or infinite after this step's update")
        self._log_before_saving(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._log_before_saving(control)

    @staticmethod
    def _log_before_saving(control):
        if control.should_save or control.should_evaluate or control.should_training_stop:
            control.should_log = True  # the loss since the last log is checked before anything is saved

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        for key in ("loss", "eval_loss"):
            value = (logs or {}).get(key)
            if isinstance(value, float | int) and not math.isfinite(value):
                raise self._error(
                    args, state, f"the {'evaluation' if key == 'eval_loss' else 'training'} loss is {value}"
                )
        loss = (logs or {}).get("loss")
        vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
        if loss is not None and vocab_size and loss > 10 * math.log(vocab_size) and not self._warned:
            self._warned = True
            logger.warning(
                f"Step {state.global_step}: loss {loss:.4g}, over 10 times that of a uniform guess over the "
                f"{vocab_size} tokens ({math.log(vocab_size):.2f}): training is diverging. Lower --learning_rate "
                f"(now {args.learning_rate}) or set --max_grad_norm."
            )

    @staticmethod
    def _error(args, state, what: str) -> NonFiniteLossError:
        last = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        kept = f"The last checkpoint, {last}, is from before it" if last else "No checkpoint was saved"
        return NonFiniteLossError(
            f"Training diverged at step {state.global_step}: {what}. Stopped: no model, results or card written. "
            f"{kept}. Lower --learning_rate (now {args.learning_rate}), set --max_grad_norm, or check the data; "
            f"then run again (it resumes from the last checkpoint; or use another --output_dir to start over)."
        )
