"""Prune a trained student by weight magnitude and retrain it with the pruned weights held at zero (Kim & Rush 2016,
sec. 5, after See et al. 2016).

    python recipes/prune_student.py --config recipes/bible_es_en/pruned_80/config.yaml
    python recipes/prune_student.py --config recipes/bible_es_en/pruned_80/config.yaml --ratio 0.9 --max_steps 0

The student (`--model_name_or_path`, a dense or compact folder) loses the `--ratio` smallest-magnitude fraction of its
weights (`--scheme class-blind`: one threshold over all weights; `class-uniform`: the same fraction of every weight
tensor), then trains on `--dataset_name` (give it the data the student was trained on, e.g. its Seq-KD data) with
`PruningMaskCallback` holding the pruned weights at zero; `--max_steps 0` skips retraining. Any flag of
`Seq2SeqTrainingArguments` sets the retraining; a killed run started again resumes from its last checkpoint, with the
masks saved there.

Into `--output_dir` go the dense model (`save_pretrained`, loads anywhere), the compact one in `compact/`
(`model.sparse.safetensors`: bitmask + nonzero values; `AutoModelForSeq2SeqLM.from_pretrained` loads it), the
test-split evaluation `eval_results.json` and `pruning_report.json`: nonzero parameters, sparsity, teacher
parameters per nonzero student parameter (with `--teacher_model_name_or_path`) and the weight-file sizes, dense and
compact.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
from transformers import Seq2SeqTrainingArguments, set_seed

from hf_seqkd.arguments import ModelArguments, end_process_group, parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset, tokenize_parallel_dataset
from hf_seqkd.evaluation import evaluate_split
from hf_seqkd.pruning import SCHEMES, PruningMaskCallback, load_pruned, magnitude_prune, pruning_report, save_pruned
from hf_seqkd.training import CheckpointArguments, EarlyStoppingArguments, load_or_train_tokenizer, run_training
from hf_seqkd.utils import count_parameters

logger = logging.getLogger(__name__)


@dataclass
class PruningArguments:
    """
    Args:
        ratio (`float`): fraction of the prunable weights to zero, in [0, 1).
        scheme (`str`): `class-blind` (one magnitude threshold over all prunable weights, the paper's) or
            `class-uniform` (`ratio` of each weight tensor).
        prune_biases (`bool`): prune biases too (by default only weight matrices: embeddings, LSTM, attention,
            softmax).
        teacher_model_name_or_path (`str`, *optional*): the teacher, to report its parameters per nonzero student
            parameter (only its config is read).
        num_beams (`int`): beam size of the test evaluation's beam-search run (the other is greedy).
        evaluate_before_retraining (`bool`): also evaluate the pruned model before retraining, into
            `<output_dir>/before_retraining`.
    """

    ratio: float = field(default=0.8, metadata={"help": "Fraction of the prunable weights to zero."})
    scheme: str = field(default="class-blind", metadata={"help": "Pruning scheme.", "choices": list(SCHEMES)})
    prune_biases: bool = field(default=False, metadata={"help": "Prune biases too."})
    teacher_model_name_or_path: str | None = field(
        default=None, metadata={"help": "The teacher, for the parameter ratio in the report."}
    )
    num_beams: int = field(default=5, metadata={"help": "Beam size of the test evaluation."})
    evaluate_before_retraining: bool = field(
        default=False, metadata={"help": "Evaluate the pruned model before retraining too."}
    )


ARGUMENTS = (
    PruningArguments,
    ModelArguments,
    DataArguments,
    Seq2SeqTrainingArguments,
    EarlyStoppingArguments,
    CheckpointArguments,
)


def main(args: list[str] | None = None) -> dict | None:
    prune_args, model_args, data_args, training_args, stopping_args, checkpoint_args = parse_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    if model_args.model_name_or_path is None:
        raise ValueError("Pass --model_name_or_path: the trained student to prune.")
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    name = f"pruned {prune_args.ratio:.0%} {prune_args.scheme}"

    raw = load_parallel_dataset(data_args)
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = load_or_train_tokenizer(model_args, data_args, raw["train"], training_args.output_dir)
    model = load_pruned(model_args.model_name_or_path)
    before = count_parameters(model)
    # Deterministic: a resumed run computes the same masks again (and the callback takes the checkpoint's anyway).
    masks = magnitude_prune(model, prune_args.ratio, prune_args.scheme, prune_biases=prune_args.prune_biases)

    retrain = training_args.max_steps > 0 or (training_args.max_steps < 0 and training_args.num_train_epochs > 0)
    if retrain:
        if prune_args.evaluate_before_retraining and "test" in raw and training_args.process_index == 0:
            evaluate_split(
                model.to(training_args.device), tokenizer, raw["test"], data_args.source_lang, data_args.target_lang,
                output_dir / "before_retraining", f"{name}, not retrained", num_beams=prune_args.num_beams,
            )  # fmt: skip
        tokenized = tokenize_parallel_dataset(raw, tokenizer, data_args, training_args.main_process_first)
        callback = PruningMaskCallback(masks)
        trainer = run_training(
            model, tokenizer, tokenized["train"], tokenized.get("validation"), training_args,
            early_stopping=stopping_args, callbacks=[callback, *checkpoint_args.callbacks()],
        )  # fmt: skip
        model, is_main = trainer.model, trainer.is_world_process_zero()
    else:
        model, is_main = model.to(training_args.device), training_args.process_index == 0
        if is_main:
            model.save_pretrained(output_dir)
            tokenizer.save_pretrained(output_dir)
    if not is_main:
        return None

    save_pruned(model, output_dir / "compact", tokenizer)
    results = {}
    if "test" in raw:
        results = evaluate_split(
            model, tokenizer, raw["test"], data_args.source_lang, data_args.target_lang, output_dir, name,
            num_beams=prune_args.num_beams,
        )  # fmt: skip
    report = {
        "student": model_args.model_name_or_path,
        "ratio": prune_args.ratio,
        "scheme": prune_args.scheme,
        "prune_biases": prune_args.prune_biases,
        "params_nonzero_before_pruning": before["params_nonzero"],
        "pruned_tensors": len(masks),
        **pruning_report(model, prune_args.teacher_model_name_or_path, folder=[output_dir, output_dir / "compact"]),
    }
    for key in ("bleu_greedy", "bleu_beam", "ppl"):
        if key in results:
            report[key] = results[key]
    (output_dir / "pruning_report.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info(f"Pruning report: {json.dumps(report)}")
    return {**results, **report}


if __name__ == "__main__":
    main()
    end_process_group()
