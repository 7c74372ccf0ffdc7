r"""Train a teacher (or any LSTM seq2seq) on parallel data.

    python recipes/train_teacher.py --config recipes/bible_es_en/teacher/config.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/train_teacher.py \
        --config recipes/bible_es_en/teacher_4x1000/config.yaml

Any flag of `ModelArguments`, `DataArguments` or `Seq2SeqTrainingArguments` can be set in the YAML file or on the
command line (which wins). A killed run started again with the same command resumes from its last checkpoint.
At the end the model is evaluated on the test split (greedy and beam), and `eval_results.json` and a model card
(`README.md`, filled from those results) are written next to it; with `--push_to_hub --hub_model_id user/name` the
model, tokenizer, modeling code and card are then uploaded to the Hub.
"""

import logging

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
from transformers import Seq2SeqTrainingArguments, set_seed

from hf_seqkd.arguments import ModelArguments, end_process_group, parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset, tokenize_parallel_dataset
from hf_seqkd.hub import CardInfo
from hf_seqkd.training import (
    CheckpointArguments,
    EarlyStoppingArguments,
    build_model,
    describe_model,
    load_or_train_tokenizer,
    run_training,
)

logger = logging.getLogger(__name__)


ARGUMENTS = (ModelArguments, DataArguments, Seq2SeqTrainingArguments, EarlyStoppingArguments, CheckpointArguments)


def main(args: list[str] | None = None) -> dict | None:
    model_args, data_args, training_args, stopping_args, checkpoint_args = parse_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    set_seed(training_args.seed)

    raw = load_parallel_dataset(data_args)
    if training_args.push_to_hub and "test" not in raw:
        raise ValueError("--push_to_hub needs a test split: the model card is filled from its evaluation.")
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = load_or_train_tokenizer(model_args, data_args, raw["train"], training_args.output_dir)
    tokenized = tokenize_parallel_dataset(raw, tokenizer, data_args, training_args.main_process_first)
    model = build_model(model_args, data_args, tokenizer)
    logger.info(describe_model(model))

    card = CardInfo.from_data_arguments(data_args, "teacher", raw.get("test"), training={"mode": "baseline"})
    trainer = run_training(
        model, tokenizer, tokenized["train"], tokenized.get("validation"), training_args, early_stopping=stopping_args,
        callbacks=checkpoint_args.callbacks(), card=card,
    )  # fmt: skip
    if "test" not in raw or not trainer.is_world_process_zero():
        return None
    results = trainer.evaluate_test_split(raw["test"], name="teacher")
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return results


if __name__ == "__main__":
    main()
    end_process_group()
