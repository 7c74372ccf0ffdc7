"""hf_seqkd: sequence-level knowledge distillation (Kim & Rush, 2016) for transformers seq2seq models.

Importing the package registers the LSTM model with transformers' Auto classes, so that
`AutoModelForSeq2SeqLM.from_pretrained(folder)` works without `trust_remote_code`.
"""

import os

# OpenMP threads that spin while they wait made 2-thread training 20-30x slower (0.8 s -> 16-24 s a step) when another
# job shared the 2 cores. libgomp reads the policy once, when torch loads it, so it is set here, before this package
# first imports torch, unless the user chose one. Recipes and the CLI import hf_seqkd before torch for this reason.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_lstm_seq2seq import LSTMSeq2SeqConfig
from .hub import CardInfo
from .modeling_lstm_seq2seq import (
    LSTMDecoderState,
    LSTMEncoderOutput,
    LSTMSeq2SeqForConditionalGeneration,
    LSTMSeq2SeqModel,
    LSTMSeq2SeqPreTrainedModel,
)
from .pruning import (
    PruningMaskCallback,
    apply_masks,
    load_pruned,
    magnitude_prune,
    pruning_report,
    save_pruned,
)
from .trainer import TranslationTrainer
from .word_kd import (
    DataCollatorForWordKD,
    KDSeq2SeqTrainer,
    KDSeq2SeqTrainingArguments,
    WordKDLoss,
    add_teacher_top_k,
    word_kd_loss,
)

__version__ = "0.1.0"

AutoConfig.register(LSTMSeq2SeqConfig.model_type, LSTMSeq2SeqConfig, exist_ok=True)
AutoModel.register(LSTMSeq2SeqConfig, LSTMSeq2SeqModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration, exist_ok=True)
# save_pretrained then copies the modeling code next to the weights, for trust_remote_code loading anywhere.
LSTMSeq2SeqConfig.register_for_auto_class()
LSTMSeq2SeqModel.register_for_auto_class("AutoModel")
LSTMSeq2SeqForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "LSTMDecoderState",
    "LSTMEncoderOutput",
    "LSTMSeq2SeqConfig",
    "LSTMSeq2SeqForConditionalGeneration",
    "LSTMSeq2SeqModel",
    "LSTMSeq2SeqPreTrainedModel",
    "DataCollatorForWordKD",
    "KDSeq2SeqTrainer",
    "KDSeq2SeqTrainingArguments",
    "WordKDLoss",
    "add_teacher_top_k",
    "word_kd_loss",
    "PruningMaskCallback",
    "apply_masks",
    "load_pruned",
    "magnitude_prune",
    "pruning_report",
    "save_pruned",
    "CardInfo",
    "TranslationTrainer",
]
