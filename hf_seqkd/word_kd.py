"""Word-level knowledge distillation (Hinton et al., 2015; Kim & Rush, 2016, sec. 3.1) for transformers seq2seq models.

At every target position t of the reference y, the student q learns both the reference token and the teacher's
whole distribution p over the next token:

    L = (1 - α) · NLL(y_t | q) + α · T² · CE(p^T, q^T),    p^T = softmax(z_teacher / T),  q^T = softmax(z_student / T)

summed over the target tokens (labels != -100) and divided by their number. The teacher and the student must share
one vocabulary; when they do not, sequence-level KD (`hf_seqkd.seq_kd`) learns from the teacher's translations as
text instead.

The teacher comes in one of two ways:

- online: [`KDSeq2SeqTrainer`] runs a frozen teacher on every batch (`teacher_model=` a model, folder or Hub id);
- offline: [`add_teacher_top_k`] runs the teacher once over the tokenized training set and stores its k most likely
  tokens per target position; [`KDSeq2SeqTrainer`] with `teacher_model=None` then trains from those columns with no
  teacher in memory. With top-k, p^T is the softmax of the k stored log-probabilities / T, renormalised over the k
  tokens, and q^T is read at those k tokens.

```python
trainer = KDSeq2SeqTrainer(model=student, teacher_model="outputs/bible_es_en/teacher", args=args,
                           train_dataset=tokenized["train"], processing_class=tokenizer)
```
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from datasets import Dataset, List, Value
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainingArguments,
)

from .trainer import TranslationTrainer
from .utils import eval_mode, model_fingerprint, pad_right

logger = logging.getLogger(__name__)

# The columns `add_teacher_top_k` writes, each of shape (target_length, k) per row.
TOP_K_LOG_PROBS = "teacher_top_k_log_probs"
TOP_K_IDS = "teacher_top_k_ids"
TOP_K_COLUMNS = (TOP_K_LOG_PROBS, TOP_K_IDS)


@dataclass
class KDSeq2SeqTrainingArguments(Seq2SeqTrainingArguments):
    """
    [`~transformers.Seq2SeqTrainingArguments`] with the settings of word-level knowledge distillation.

    Args:
        alpha (`float`, *optional*, defaults to 0.5):
            Weight α of the distillation term: the loss is (1 - α) · NLL of the reference + α · KD. 0 is plain
            training on the references, 1 pure distillation; Kim & Rush (2016) use 0.5.
        temperature (`float`, *optional*, defaults to 1.0):
            Softmax temperature T of both distributions in the KD term, which is multiplied by T² (Hinton et al.,
            2015) so that its gradients keep their scale whatever T.
        teacher_model_name_or_path (`str`, *optional*):
            The teacher (folder or Hub id) when [`KDSeq2SeqTrainer`] is given no `teacher_model`.
        teacher_top_k (`int`, *optional*, defaults to 32):
            How many of the teacher's most likely tokens [`add_teacher_top_k`] stores per target position for offline
            Word-KD (8 to 64 keep nearly all of the teacher's probability mass).
    """

    alpha: float = field(default=0.5, metadata={"help": "Weight of the KD term: (1 - alpha) * NLL + alpha * KD."})
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the KD term (scaled by T^2)."})
    teacher_model_name_or_path: str | None = field(
        default=None, metadata={"help": "The teacher model (folder or Hub id) for online Word-KD."}
    )
    teacher_top_k: int = field(
        default=32, metadata={"help": "Teacher tokens per target position cached for offline Word-KD."}
    )

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}.")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")
        if self.teacher_top_k < 1:
            raise ValueError(f"teacher_top_k must be >= 1, got {self.teacher_top_k}.")
        super().__post_init__()


class WordKDLoss(NamedTuple):
    """
    What [`word_kd_loss`] returns. The sums are over this batch's target tokens, so that they add up across batches
    and processes.

    Args:
        loss (`torch.Tensor`): the scalar to minimise, ((1 - α) · `nll_sum` + α · `kd_sum`) / `num_items_in_batch`.
        nll_sum (`torch.Tensor`): negative log-likelihood of the reference tokens.
        kd_sum (`torch.Tensor`): T² · cross-entropy from the teacher's to the student's distribution at temperature
            T; 0 when α = 0 (not computed).
        num_tokens (`torch.Tensor`): number of target tokens (labels != -100).
    """

    loss: torch.Tensor
    nll_sum: torch.Tensor
    kd_sum: torch.Tensor
    num_tokens: torch.Tensor


def word_kd_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    teacher_top_k_log_probs: torch.Tensor | None = None,
    teacher_top_k_ids: torch.Tensor | None = None,
    alpha: float = 0.5,
    temperature: float = 1.0,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> WordKDLoss:
    """
    The Word-KD loss of one batch: (1 - α) · NLL(reference) + α · T² · CE(p^T, q^T), summed over the target tokens
    and divided by `num_items_in_batch`.

    The T² factor follows Hinton et al. (2015): the gradient of CE(p^T, q^T) with respect to the student's logits
    shrinks as 1/T² (as (z_student - z_teacher) / (V T²) for large T), so multiplying by T² keeps the soft targets'
    share of the gradient independent of T. The cross-entropy differs from KL(p^T || q^T) by the teacher's entropy
    only, a constant: the gradients are the same.

    Args:
        student_logits (`torch.Tensor` of shape `(batch_size, target_length, vocab_size)`): the student's logits.
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`): reference ids; -100 marks padding, which
            is left out of every term (logits there change nothing).
        teacher_logits (`torch.Tensor` of shape `(batch_size, target_length, vocab_size)`, *optional*): the
            teacher's logits at the same positions (online Word-KD).
        teacher_top_k_log_probs (`torch.Tensor` of shape `(batch_size, target_length, k)`, *optional*): the
            teacher's k largest log-probabilities per position (offline Word-KD; any float dtype).
        teacher_top_k_ids (`torch.Tensor` of shape `(batch_size, target_length, k)`, *optional*): their token ids.
        alpha (`float`, *optional*, defaults to 0.5): weight of the KD term. With α = 0 no teacher is needed.
        temperature (`float`, *optional*, defaults to 1.0): softmax temperature T of the KD term.
        num_items_in_batch (`int` or `torch.Tensor`, *optional*): the number of target tokens of the whole
            (accumulated, all-process) batch; the token sums are divided by it, which makes gradient accumulation
            exact. Defaults to this batch's token count.

    Returns:
        [`WordKDLoss`]: `loss`, `nll_sum`, `kd_sum`, `num_tokens`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    has_top_k = teacher_top_k_log_probs is not None or teacher_top_k_ids is not None
    if has_top_k and (teacher_top_k_log_probs is None or teacher_top_k_ids is None):
        raise ValueError("Pass both `teacher_top_k_log_probs` and `teacher_top_k_ids`, or neither.")
    if has_top_k and teacher_logits is not None:
        raise ValueError("Pass the teacher either as `teacher_logits` or as top-k, not both.")
    if alpha > 0 and teacher_logits is None and not has_top_k:
        raise ValueError("alpha > 0 needs the teacher: pass `teacher_logits` or the teacher's top-k.")
    if student_logits.shape[:2] != labels.shape:
        raise ValueError(
            f"`student_logits` {tuple(student_logits.shape)} do not match `labels` {tuple(labels.shape)}."
        )
    vocab_size = student_logits.shape[-1]

    # Only target positions enter the loss: padding is dropped before the softmax, so it can change nothing.
    mask = labels.ne(-100)  # (B, T)
    logits = student_logits[mask].float()  # (N, V)
    log_probs = torch.log_softmax(logits, dim=-1)  # (N, V)
    nll_sum = torch.nn.functional.nll_loss(log_probs, labels[mask], reduction="sum")
    kd_sum = nll_sum.new_zeros(())
    if alpha > 0:
        student_log_probs = log_probs if temperature == 1.0 else torch.log_softmax(logits / temperature, dim=-1)
        if teacher_logits is not None:
            if teacher_logits.shape[-1] != vocab_size:
                raise vocabulary_mismatch_error(
                    f"the teacher has {teacher_logits.shape[-1]} tokens and the student {vocab_size}"
                )
            _check_positions("teacher_logits", teacher_logits, labels)
            teacher_probs = torch.softmax(teacher_logits[mask].float() / temperature, dim=-1)  # (N, V)
        else:
            _check_positions("teacher_top_k_log_probs", teacher_top_k_log_probs, labels)
            _check_positions("teacher_top_k_ids", teacher_top_k_ids, labels)
            ids = teacher_top_k_ids[mask].long()  # (N, k)
            if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
                raise vocabulary_mismatch_error(
                    f"the cached teacher ids go up to {int(ids.max())} and the student has {vocab_size} tokens"
                )
            # The teacher's k best tokens, renormalised among themselves; the student is read at the same tokens.
            teacher_probs = torch.softmax(teacher_top_k_log_probs[mask].float() / temperature, dim=-1)  # (N, k)
            student_log_probs = student_log_probs.gather(1, ids)  # (N, k)
        kd_sum = -(teacher_probs * student_log_probs).sum() * temperature**2

    num_tokens = mask.sum()
    denominator = num_tokens if num_items_in_batch is None else num_items_in_batch
    if torch.is_tensor(denominator):
        denominator = denominator.to(nll_sum.device)
    loss = ((1.0 - alpha) * nll_sum + alpha * kd_sum) / denominator
    return WordKDLoss(loss=loss, nll_sum=nll_sum, kd_sum=kd_sum, num_tokens=num_tokens)


def _check_positions(name: str, tensor: torch.Tensor, labels: torch.Tensor) -> None:
    if tensor.dim() != 3 or tensor.shape[:2] != labels.shape:
        raise ValueError(
            f"`{name}` has shape {tuple(tensor.shape)}; expected (batch_size, target_length, ...) = "
            f"{tuple(labels.shape)} + (...,), one entry per label position."
        )


def vocabulary_mismatch_error(mismatch: str) -> ValueError:
    """The error for a teacher and a student whose vocabularies differ (`mismatch` says how); it points to Seq-KD."""
    return ValueError(
        f"Word-level KD compares the teacher's and the student's next-token distributions token by token, so both "
        f"must share one vocabulary; but {mismatch}. "
        f"Use sequence-level KD instead (`hf_seqkd.seq_kd`): the student learns from the teacher's translations as "
        f"text, which it tokenizes with its own tokenizer, so no shared vocabulary is needed."
    )


def check_same_vocabulary(
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    student_tokenizer: PreTrainedTokenizerBase | None = None,
    teacher_tokenizer: PreTrainedTokenizerBase | None = None,
) -> None:
    """
    Raises a ValueError (naming both sizes and pointing to Seq-KD) unless the two models predict over the same number
    of tokens and, when both tokenizers are given, the tokenizers map the same strings to the same ids.
    """
    student_size, teacher_size = _output_vocab_size(student), _output_vocab_size(teacher)
    if student_size != teacher_size:
        raise vocabulary_mismatch_error(f"the teacher has {teacher_size} tokens and the student {student_size}")
    if student_tokenizer is not None and teacher_tokenizer is not None:
        check_same_tokenizer(student_tokenizer, teacher_tokenizer)


def check_same_tokenizer(
    student_tokenizer: PreTrainedTokenizerBase, teacher_tokenizer: PreTrainedTokenizerBase
) -> None:
    """The ValueError of [`check_same_vocabulary`] unless both tokenizers map the same strings to the same ids."""
    if student_tokenizer.get_vocab() != teacher_tokenizer.get_vocab():
        raise vocabulary_mismatch_error(
            f"the teacher's tokenizer ({len(teacher_tokenizer)} tokens) maps tokens to other ids than the "
            f"student's ({len(student_tokenizer)} tokens)"
        )


def _output_vocab_size(model: PreTrainedModel) -> int:
    head = model.get_output_embeddings()
    return head.weight.shape[0] if head is not None else model.config.get_text_config().vocab_size


# ---- Offline Word-KD: the teacher's top-k, cached once ----------------------------------------------------------


def add_teacher_top_k(
    dataset: Dataset,
    teacher: PreTrainedModel,
    k: int = 32,
    batch_size: int = 64,
    load_from_cache_file: bool = True,
) -> Dataset:
    """
    Runs `teacher` once over a tokenized dataset and stores, per target position, its k most likely tokens: columns
    `teacher_top_k_log_probs` (float16) and `teacher_top_k_ids` (int32), each of shape `(target_length, k)` per row.

    One `datasets.map(batched=True)` pass under `torch.inference_mode()`; within each chunk of 16 batches the rows
    are sorted by length so that batches carry little padding. The result is cached by `datasets` under a
    fingerprint of the input dataset, the teacher's configuration and weights, and k: a changed teacher is never
    served a stale cache.

    Args:
        dataset (`Dataset`): unpadded `input_ids` and `labels` columns, as from
            [`~hf_seqkd.data.tokenize_parallel_dataset`] (the attention mask is rebuilt from the lengths).
        teacher (`PreTrainedModel`): any transformers seq2seq model over the student's vocabulary; it is run on its
            current device, in eval mode (its previous mode is restored after).
        k (`int`, *optional*, defaults to 32): tokens kept per position.
        batch_size (`int`, *optional*, defaults to 64): sentence pairs per teacher forward pass.
        load_from_cache_file (`bool`, *optional*, defaults to `True`): reuse a cached result of the same inputs.

    Returns:
        `Dataset`: `dataset` with the two columns added.
    """
    missing = {"input_ids", "labels"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"The dataset has columns {dataset.column_names} but not {sorted(missing)}: tokenize it first."
        )
    vocab_size = _output_vocab_size(teacher)
    if not 1 <= k <= vocab_size:
        raise ValueError(f"k must be in [1, {vocab_size}] (the teacher's vocabulary), got {k}.")
    features = dataset.features.copy()
    features[TOP_K_LOG_PROBS] = List(List(Value("float16")))
    features[TOP_K_IDS] = List(List(Value("int32")))
    fingerprint = _hash(dataset._fingerprint, model_fingerprint(teacher), f"top_k={k}", "word_kd.v1")[:32]
    with eval_mode(teacher):
        return dataset.map(
            _teacher_top_k_batch,
            fn_kwargs={"teacher": teacher, "k": k, "batch_size": batch_size},
            batched=True,
            batch_size=16 * batch_size,  # the length-sorting window
            features=features,
            new_fingerprint=fingerprint,
            load_from_cache_file=load_from_cache_file,
            desc=f"Caching the teacher's top-{k}",
        )


@torch.inference_mode()
def _teacher_top_k_batch(batch, teacher, k, batch_size):
    sources, targets = batch["input_ids"], batch["labels"]
    pad_token_id = teacher.config.pad_token_id if teacher.config.pad_token_id is not None else 0
    device = teacher.device
    log_probs_out, ids_out = [None] * len(targets), [None] * len(targets)
    order = sorted(range(len(targets)), key=lambda i: (len(targets[i]), len(sources[i])))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        input_ids = pad_right([sources[i] for i in rows], pad_token_id)  # (b, S), right-padded
        attention_mask = pad_right([[1] * len(sources[i]) for i in rows], 0)  # (b, S)
        labels = pad_right([targets[i] for i in rows], -100)  # (b, T)
        # Given `labels`, the teacher builds its own decoder inputs (with its own decoder start token).
        logits = teacher(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            labels=labels.to(device),
            use_cache=False,
        ).logits  # (b, T, V)
        top = torch.log_softmax(logits.float(), dim=-1).topk(k, dim=-1)  # (b, T, k)
        values = top.values.to(torch.float16).cpu().numpy()
        indices = top.indices.to(torch.int32).cpu().numpy()
        for row, i in enumerate(rows):
            log_probs_out[i], ids_out[i] = values[row, : len(targets[i])], indices[row, : len(targets[i])]
    return {TOP_K_LOG_PROBS: log_probs_out, TOP_K_IDS: ids_out}


def _hash(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


@dataclass
class DataCollatorForWordKD:
    """
    Wraps a seq2seq collator (such as [`~transformers.DataCollatorForSeq2Seq`], which pads `labels`) so that it also
    batches the cached top-k columns: each becomes a `(batch_size, target_length, k)` tensor aligned with the padded
    `labels` (zeros at padding, which the loss ignores). Batches without those columns pass through unchanged.

    Args:
        collator (`Callable`): the wrapped collator.
    """

    collator: Callable

    def __call__(self, features: list[dict]) -> dict:
        columns = [name for name in TOP_K_COLUMNS if name in features[0]]
        if not columns:
            return self.collator(features)
        cached = {name: [feature[name] for feature in features] for name in columns}
        batch = self.collator([{k: v for k, v in feature.items() if k not in columns} for feature in features])
        batch_size, length = batch["labels"].shape
        left = getattr(getattr(self.collator, "tokenizer", None), "padding_side", "right") == "left"
        for name, rows in cached.items():
            dtype = np.float16 if name == TOP_K_LOG_PROBS else np.int32
            arrays = [np.asarray(row, dtype=dtype) for row in rows]
            padded = np.zeros((batch_size, length, arrays[0].shape[-1]), dtype=dtype)  # (B, T, k)
            for row, (array, feature) in enumerate(zip(arrays, features)):
                if array.ndim != 2 or len(array) != len(feature["labels"]):
                    raise ValueError(
                        f"Row {row} has {len(feature['labels'])} labels but `{name}` of shape {array.shape}: was the "
                        f"dataset changed after `add_teacher_top_k`?"
                    )
                if left:
                    padded[row, length - len(array) :] = array
                else:
                    padded[row, : len(array)] = array
            batch[name] = torch.from_numpy(padded)
        return batch


# ---- The trainer --------------------------------------------------------------------------------------------------


class KDSeq2SeqTrainer(TranslationTrainer):
    """
    A [`~transformers.Seq2SeqTrainer`] that trains the student with the Word-KD loss of [`word_kd_loss`], with
    hf_seqkd's model card and push ([`~hf_seqkd.trainer.TranslationTrainer`]).

    The teacher is frozen (no gradients, eval mode, run under `torch.no_grad()`), kept out of the optimizer and never
    saved: checkpoints and `save_model` hold the student only. Each model builds its decoder inputs from `labels`, so
    a teacher of another architecture (another decoder start token) works as long as it shares the vocabulary.

    The loss is exact under gradient accumulation and DDP, as the parent's: the token sums are divided by
    `num_items_in_batch` (the target tokens of the whole accumulated batch, over all processes) and, when the Trainer
    averages tokens across devices, multiplied by the number of processes (DDP then averages gradients). With α = 0
    the training is that of `Seq2SeqTrainer`, to float rounding. Train and eval logs get `nll_loss` and `kd_loss`
    (without the α weights): token-weighted means over the logging window (or evaluation set) and all processes.

    Args:
        model (`PreTrainedModel`): the student.
        teacher_model (`PreTrainedModel` or `str`, *optional*): the teacher, or its folder / Hub id; defaults to
            `args.teacher_model_name_or_path`. `None` there too means offline Word-KD: the datasets must then have
            the columns of [`add_teacher_top_k`].
        args ([`KDSeq2SeqTrainingArguments`]): training arguments with `alpha` and `temperature`.
        data_collator (`Callable`, *optional*): defaults to `DataCollatorForSeq2Seq(processing_class)`; it is
            wrapped in [`DataCollatorForWordKD`] to batch the cached top-k columns.
        teacher_processing_class (`PreTrainedTokenizerBase`, *optional*): the teacher's tokenizer, checked against
            `processing_class`; loaded from `teacher_model` when that is a folder / Hub id that has one.
        kwargs: the other arguments of [`~hf_seqkd.trainer.TranslationTrainer`] (`card`) and of
            [`~transformers.Seq2SeqTrainer`] (`train_dataset`, `eval_dataset`, `processing_class`, `compute_metrics`,
            ...).
    """

    def __init__(
        self,
        model: PreTrainedModel | None = None,
        teacher_model: PreTrainedModel | str | None = None,
        args: KDSeq2SeqTrainingArguments | None = None,
        data_collator: Callable | None = None,
        teacher_processing_class: PreTrainedTokenizerBase | None = None,
        **kwargs,
    ):
        if not isinstance(args, KDSeq2SeqTrainingArguments):
            raise TypeError(f"`args` must be KDSeq2SeqTrainingArguments (with alpha, temperature), got {type(args)}.")
        if kwargs.get("compute_loss_func") is not None or args.label_smoothing_factor > 0:
            raise ValueError("KDSeq2SeqTrainer computes its own loss: no `compute_loss_func` nor label smoothing.")
        if teacher_model is None:
            teacher_model = args.teacher_model_name_or_path
        if isinstance(teacher_model, str):
            if teacher_processing_class is None:
                teacher_processing_class = _load_tokenizer_if_any(teacher_model)
            teacher_model = AutoModelForSeq2SeqLM.from_pretrained(teacher_model)
        if data_collator is None:
            if kwargs.get("processing_class") is None:
                raise ValueError("Pass `processing_class` (the tokenizer) or a `data_collator`.")
            data_collator = DataCollatorForSeq2Seq(kwargs["processing_class"], label_pad_token_id=-100)
        if not isinstance(data_collator, DataCollatorForWordKD):
            data_collator = DataCollatorForWordKD(data_collator)
        super().__init__(model=model, args=args, data_collator=data_collator, **kwargs)
        if self.args.n_gpu > 1:
            raise NotImplementedError("torch.nn.DataParallel is not supported: launch one process per GPU (DDP).")

        datasets = self._named_datasets()
        with_columns = [name for name, dataset in datasets.items() if set(TOP_K_COLUMNS) <= set(dataset.column_names)]
        if teacher_model is not None:
            check_same_vocabulary(self.model, teacher_model, self.processing_class, teacher_processing_class)
            teacher_model.requires_grad_(False)
            teacher_model.eval()
            if with_columns:
                logger.warning("A teacher model was given: the cached top-k columns are ignored (online Word-KD).")
        elif self.args.alpha > 0 and len(with_columns) < len(datasets):
            split = next(name for name in datasets if name not in with_columns)
            raise ValueError(
                f"No teacher: pass `teacher_model` (online Word-KD), or add the teacher's top-k to the {split} "
                f"dataset with `add_teacher_top_k` (offline Word-KD); it has columns {datasets[split].column_names}."
            )
        self.teacher_model = teacher_model
        self._teacher_prepared = False
        self._kd_totals: dict[str, torch.Tensor] = {}  # mode -> [nll_sum, kd_sum, num_tokens] since the last log

    def _named_datasets(self) -> dict:
        """The train and eval datasets that have column names (`datasets.Dataset`), by split name."""
        evals = self.eval_dataset if isinstance(self.eval_dataset, dict) else {"eval": self.eval_dataset}
        named = {"train": self.train_dataset, **evals}
        return {name: dataset for name, dataset in named.items() if getattr(dataset, "column_names", None)}

    def _set_signature_columns_if_needed(self):
        # `remove_unused_columns` keeps only the student's forward arguments: keep the cached teacher columns too.
        super()._set_signature_columns_if_needed()
        self._signature_columns += [name for name in TOP_K_COLUMNS if name not in self._signature_columns]

    def _teacher(self) -> PreTrainedModel:
        if not self._teacher_prepared:
            # On first use, not in __init__: Trainer.evaluation_loop prepares the student (mixed precision, DeepSpeed)
            # only while the accelerator holds no model yet, which a teacher prepared in __init__ would break.
            self.teacher_model = self.accelerator.prepare_model(self.teacher_model, evaluation_mode=True)
            self._teacher_prepared = True
        return self.teacher_model

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        cached = {name: inputs.pop(name) for name in TOP_K_COLUMNS if name in inputs}
        labels = inputs["labels"]
        # Given `labels`, the student builds its decoder inputs; the loss it computes along is not used.
        outputs = model(**inputs)

        teacher = {}
        if self.args.alpha > 0 and self.teacher_model is not None:
            # The teacher gets `labels`, not the student's decoder inputs, and builds its own.
            teacher_inputs = {name: value for name, value in inputs.items() if not name.startswith("decoder_")}
            with torch.no_grad():
                teacher["teacher_logits"] = self._teacher()(**teacher_inputs, use_cache=False).logits
        elif self.args.alpha > 0:
            if not cached:
                raise ValueError(f"No teacher model and no {TOP_K_COLUMNS} in the batch: nothing to distill from.")
            teacher["teacher_top_k_log_probs"], teacher["teacher_top_k_ids"] = (
                cached[TOP_K_LOG_PROBS],
                cached[TOP_K_IDS],
            )
        parts = word_kd_loss(
            outputs.logits,
            labels,
            alpha=self.args.alpha,
            temperature=self.args.temperature,
            num_items_in_batch=num_items_in_batch,
            **teacher,
        )
        loss = parts.loss
        # As Trainer.compute_loss: each process divided its token sums by the tokens of all processes, and DDP
        # averages gradients over processes, so multiply back. training_step then leaves the loss unscaled for
        # gradient accumulation exactly when num_items_in_batch was given (loss_is_scaled_for_ga = None).
        if (
            self.args.average_tokens_across_devices
            and self.model_accepts_loss_kwargs
            and num_items_in_batch is not None
        ):
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())

        mode = "train" if model.training else "eval"
        totals = torch.stack([parts.nll_sum, parts.kd_sum, parts.num_tokens.to(parts.nll_sum)]).detach()
        self._kd_totals[mode] = totals if mode not in self._kd_totals else self._kd_totals[mode] + totals
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        if not self.args.predict_with_generate or prediction_loss_only or "labels" not in inputs:
            # Trainer.prediction_step computes the loss with self.compute_loss: the Word-KD loss.
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
        # Seq2SeqTrainer's generation branch calls the student directly (plain NLL): compute the Word-KD loss here,
        # then let it generate (and compute a loss that is discarded) from the student's inputs only.
        inputs = self._prepare_inputs(inputs)
        num_items_in_batch = self._get_num_items_in_batch([inputs], self.args.device)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch).detach().mean()
        student_inputs = {name: value for name, value in inputs.items() if name not in TOP_K_COLUMNS}
        _, generated_tokens, labels = super().prediction_step(
            model, student_inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs
        )
        return loss, generated_tokens, labels

    def evaluation_loop(self, *args, metric_key_prefix: str = "eval", **kwargs):
        self._kd_totals.pop("eval", None)
        output = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        output.metrics.update({f"{metric_key_prefix}_{k}": v for k, v in self._pop_kd_metrics("eval").items()})
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log, of the window since the last one
            logs = {**logs, **self._pop_kd_metrics("train")}
        super().log(logs, start_time)

    def _pop_kd_metrics(self, mode: str) -> dict[str, float]:
        """Token-weighted means of the NLL and KD terms since the last call, over all processes (a collective)."""
        totals = self._kd_totals.pop(mode, None)
        if totals is None:
            totals = torch.zeros(3, device=self.args.device)
        if self.accelerator.num_processes > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        nll_sum, kd_sum, num_tokens = totals.tolist()
        if num_tokens == 0:
            return {}
        metrics = {"nll_loss": nll_sum / num_tokens}
        if self.args.alpha > 0:
            metrics["kd_loss"] = kd_sum / num_tokens
        return metrics


def _load_tokenizer_if_any(name_or_path: str) -> PreTrainedTokenizerBase | None:
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError, TypeError):  # a model saved without its tokenizer
        return None
