"""Train a student in any regime of Kim & Rush (2016), Table 1.

    python recipes/train_student.py --config recipes/bible_es_en/student_seq_kd/config.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/train_student.py --config ...

Modes (`--mode`):
    baseline   the references;
    word_kd    the references and the teacher's per-token distribution (online, or `--word_kd_cache` for the
               teacher's top-k cached once);
    seq_kd     the teacher's beam-search translations (`--seq_kd_dataset`, made by recipes/distill_data.py, or made
               here from `--teacher_model_name_or_path` and cached in the output folder);
    seq_inter  the teacher's K-best translation closest to the reference (`--seq_inter_dataset`, or made here);
    combined   the paper's best: seq_kd, then fine-tuning on Seq-Inter data with the Word-KD loss; one run in two
               stages (`<output_dir>/stage1_seq_kd`, then `<output_dir>`), each resumable.

The student is an LSTM seq2seq (sized by `--preset`, `--hidden_size`, ...) or any other transformers seq2seq model
built from its config: `model_type: marian` and `model_config: {d_model: 256, ...}` in the YAML file. Every mode
works for it; word_kd and combined need it to share the teacher's vocabulary (the default tokenizer in those modes).

Validation and test always use the references of `--dataset_name` / the data files. At the end the student is
evaluated on the test split (greedy and beam); `eval_results.json` and a model card (`README.md`, compared with the
teacher's results when the teacher folder has them) are written next to it, and `--push_to_hub --hub_model_id
user/name` uploads them with the model. A killed run started
again with the same command resumes where it stopped.
"""

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
from accelerate import PartialState
from datasets import load_from_disk
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, set_seed

from hf_seqkd.arguments import ModelArguments, parse_args, setup_logging
from hf_seqkd.checks import check_distilled_dataset, check_parallel_rows
from hf_seqkd.data import DataArguments, load_parallel_dataset, tokenize_parallel_dataset
from hf_seqkd.evaluation import evaluate_split
from hf_seqkd.hub import take_over_push_to_hub, write_card_and_push
from hf_seqkd.seq_kd import SequenceDistillationConfig, distill_in_shards
from hf_seqkd.training import (
    CheckpointArguments,
    EarlyStoppingArguments,
    TrainingTimeLimitCallback,
    build_model,
    describe_model,
    load_or_train_tokenizer,
    run_training,
)
from hf_seqkd.translation import resolve_dtype
from hf_seqkd.word_kd import (
    KDSeq2SeqTrainer,
    KDSeq2SeqTrainingArguments,
    add_teacher_top_k,
    check_same_tokenizer,
    check_same_vocabulary,
)

logger = logging.getLogger(__name__)

MODES = ("baseline", "word_kd", "seq_kd", "seq_inter", "combined")


@dataclass
class StudentArguments:
    """
    Args:
        mode (`str`): `baseline`, `word_kd`, `seq_kd`, `seq_inter` or `combined` (see the module docstring).
        seq_kd_dataset (`str`, *optional*): a dataset folder written by recipes/distill_data.py in seq_kd mode.
        seq_inter_dataset (`str`, *optional*): the same in seq_inter mode.
        seq_kd_num_beams (`int`): K of Seq-KD data made here (the paper: 5).
        seq_inter_num_beams (`int`): K of Seq-Inter data made here (the paper: 35).
        distill_dtype (`str`): the teacher's dtype while it makes Seq-KD / Seq-Inter data here; `auto` takes
            bfloat16 where this machine multiplies it faster than float32, measured
            ([`~hf_seqkd.translation.fastest_dtype`]). Word-KD always uses the teacher in float32.
        distill_batch_size (`int`): sources per generate call when making Seq-KD / Seq-Inter data here.
        word_kd_cache (`bool`): Word-KD from the teacher's top-k (`--teacher_top_k`) cached once, instead of running
            the teacher on every batch.
        finetune_num_train_epochs (`float`): length of the combined mode's second stage.
        finetune_learning_rate (`float`, *optional*): its learning rate (default: `--learning_rate`).
        finetune_max_steps (`int`): its length in steps instead (-1: use `finetune_num_train_epochs`).
        seq_kd_model_name_or_path (`str`, *optional*): the combined mode's stage 1, when a Seq-KD student is trained
            already (e.g. the `seq_kd` row of Table 1): it is fine-tuned instead of training a new one.
        max_train_seconds (`float`, *optional*): stop training after this many seconds of wall time (checked after
            every optimizer step; the last step is then evaluated and saved), to compare students trained for the
            same time. Counted from the start of this run's training: a resumed run gets the full budget again.
    """

    mode: str = field(default="baseline", metadata={"help": "Training regime.", "choices": list(MODES)})
    seq_kd_dataset: str | None = field(default=None, metadata={"help": "Seq-KD dataset folder (distill_data.py)."})
    seq_inter_dataset: str | None = field(default=None, metadata={"help": "Seq-Inter dataset folder."})
    seq_kd_num_beams: int = field(default=5, metadata={"help": "K of Seq-KD data made here."})
    seq_inter_num_beams: int = field(default=35, metadata={"help": "K of Seq-Inter data made here."})
    distill_dtype: str = field(
        default="float32",
        metadata={"help": "Teacher dtype for data made here; auto: the faster of float32 and bfloat16, measured.",
                  "choices": ["float32", "bfloat16", "float16", "auto"]},  # fmt: skip
    )
    distill_batch_size: int = field(default=64, metadata={"help": "Sources per generate call for data made here."})
    word_kd_cache: bool = field(default=False, metadata={"help": "Word-KD from the teacher's cached top-k."})
    finetune_num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs of the combined 2nd stage."})
    finetune_learning_rate: float | None = field(default=None, metadata={"help": "LR of the combined 2nd stage."})
    finetune_max_steps: int = field(default=-1, metadata={"help": "Steps of the combined 2nd stage (-1: epochs)."})
    seq_kd_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Combined: fine-tune this trained Seq-KD student instead of training one."}
    )
    max_train_seconds: float | None = field(
        default=None, metadata={"help": "Stop training after this many seconds of wall time (not for combined)."}
    )


def distilled_train_split(mode, folder, raw_train, teacher, tokenizer, args, data_args, output_dir):
    """The training split of Seq-KD (`mode` seq_kd) or Seq-Inter data: read from `folder`, or made and cached."""
    if folder is not None:  # checked by main: a dataset folder with a train split
        where = f"--{mode}_dataset {folder} (train split)"
        return check_parallel_rows(
            load_from_disk(folder)["train"], data_args.source_lang, data_args.target_lang, where
        )
    num_beams = args.seq_inter_num_beams if mode == "seq_inter" else args.seq_kd_num_beams
    config = SequenceDistillationConfig(mode=mode, num_beams=num_beams, batch_size=args.distill_batch_size)
    work_dir = Path(output_dir) / f"{mode}_data"
    dtype = resolve_dtype(args.distill_dtype, teacher.device)
    # A copy in the generation dtype: the teacher itself stays in float32 for Word-KD (combined mode).
    generator = teacher if dtype == teacher.dtype else copy.deepcopy(teacher).to(dtype)
    logger.info(f"Making {mode} data with the teacher (K={num_beams}, {dtype}) in {work_dir}; later runs reuse it.")
    distilled, _ = distill_in_shards(
        raw_train, generator, tokenizer, config, data_args.source_lang, data_args.target_lang, work_dir
    )
    del generator
    state = PartialState()
    if state.is_main_process:
        distilled.save_to_disk(work_dir / "train")
    state.wait_for_everyone()
    return load_from_disk(work_dir / "train")


def check_word_kd_vocabulary(mode, student, teacher, tokenizer, teacher_tokenizer) -> None:
    """
    Word-KD (modes word_kd, combined) needs a student that shares the teacher's vocabulary: the same size, and the
    same token for every id. Checked before any data are made or any training starts (combined trains a whole
    Seq-KD stage first).
    """
    try:
        check_same_vocabulary(student, teacher, tokenizer, teacher_tokenizer)
        check_same_tokenizer(tokenizer, teacher_tokenizer)
    except ValueError as error:
        raise ValueError(
            f"--mode {mode}: {error} Or give the student the teacher's tokenizer: leave --tokenizer_name_or_path "
            f"out (this mode then uses the teacher's) and vocab_size out of model_config."
        ) from None


def train_stage(
    model, tokenizer, raw, data_args, training_args, stopping_args, teacher=None, cache_top_k=False, callbacks=None,
    teacher_tokenizer=None,
):
    """Tokenizes `raw`, trains `model` (with the Word-KD loss when a teacher is given) and returns the trainer."""
    logger.info(describe_model(model))
    tokenized = tokenize_parallel_dataset(raw, tokenizer, data_args, training_args.main_process_first)
    if teacher is None:
        return run_training(
            model, tokenizer, tokenized["train"], tokenized.get("validation"), training_args,
            early_stopping=stopping_args, callbacks=callbacks,
        )  # fmt: skip
    if cache_top_k:
        with training_args.main_process_first(desc="caching the teacher's top-k"):
            for split in [name for name in ("train", "validation") if name in tokenized]:
                tokenized[split] = add_teacher_top_k(tokenized[split], teacher, k=training_args.teacher_top_k)
        # Trained from the cached columns, with no teacher in the trainer: the trainer would otherwise load the
        # teacher named in the arguments again and ignore the cache (online Word-KD, several times slower).
        teacher = None
        training_args = dataclasses.replace(training_args, teacher_model_name_or_path=None)
    return run_training(
        model, tokenizer, tokenized["train"], tokenized.get("validation"), training_args,
        trainer_class=KDSeq2SeqTrainer, teacher_model=teacher, teacher_processing_class=teacher_tokenizer,
        early_stopping=stopping_args, callbacks=callbacks,
    )  # fmt: skip


ARGUMENTS = (
    StudentArguments,
    ModelArguments,
    DataArguments,
    KDSeq2SeqTrainingArguments,
    EarlyStoppingArguments,
    CheckpointArguments,
)


def main(args: list[str] | None = None) -> dict | None:
    student_args, model_args, data_args, training_args, stopping_args, checkpoint_args = parse_args(ARGUMENTS, args)
    setup_logging(training_args.process_index == 0)
    set_seed(training_args.seed)
    push_to_hub = take_over_push_to_hub(training_args)
    mode, seq_kd_student = student_args.mode, student_args.seq_kd_model_name_or_path
    teacher_path = training_args.teacher_model_name_or_path
    if mode in ("word_kd", "combined") and teacher_path is None:
        raise ValueError(f"--mode {mode} needs --teacher_model_name_or_path (its per-token distributions).")
    if mode == "combined" and student_args.max_train_seconds is not None:
        raise ValueError("--max_train_seconds limits one training run; the combined mode has two: leave it out.")
    callbacks = checkpoint_args.callbacks()  # stateless: shared by the combined mode's two stages
    if student_args.max_train_seconds is not None:
        callbacks.append(TrainingTimeLimitCallback(student_args.max_train_seconds))
    if mode == "word_kd" and model_args.tokenizer_name_or_path is None:
        # Word-KD compares distributions token by token: the student uses the teacher's vocabulary.
        model_args.tokenizer_name_or_path = teacher_path
    if mode == "combined" and model_args.tokenizer_name_or_path is None:
        model_args.tokenizer_name_or_path = student_args.seq_kd_model_name_or_path or teacher_path
    folder = {"seq_kd": student_args.seq_kd_dataset, "seq_inter": student_args.seq_inter_dataset}.get(mode)
    if mode in ("seq_kd", "seq_inter") and folder is None and teacher_path is None:
        raise ValueError(
            f"--mode {mode} needs {mode} data: pass --{mode}_dataset or --teacher_model_name_or_path (a folder made "
            f"by recipes/distill_data.py, or the teacher to make the data in this run)."
        )
    stage1_done = (Path(training_args.output_dir) / "stage1_seq_kd" / "train_results.json").is_file()
    for kind in ("seq_kd", "seq_inter"):  # the data folders this run reads, before anything is loaded
        if mode == kind or (mode == "combined" and (kind == "seq_inter" or not (seq_kd_student or stage1_done))):
            check_distilled_dataset(getattr(student_args, f"{kind}_dataset"), f"--{kind}_dataset")

    raw = load_parallel_dataset(data_args)
    teacher = teacher_tokenizer = None
    if teacher_path is not None:
        teacher = AutoModelForSeq2SeqLM.from_pretrained(teacher_path).to(training_args.device).eval()
        teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = load_or_train_tokenizer(model_args, data_args, raw["train"], training_args.output_dir)

    def with_train(split):
        return type(raw)({**raw, "train": split})

    if mode == "baseline":
        model = build_model(model_args, data_args, tokenizer)
        trainer = train_stage(model, tokenizer, raw, data_args, training_args, stopping_args, callbacks=callbacks)
    elif mode == "word_kd":
        model = build_model(model_args, data_args, tokenizer)
        check_word_kd_vocabulary(mode, model, teacher, tokenizer, teacher_tokenizer)
        cache = student_args.word_kd_cache
        trainer = train_stage(
            model, tokenizer, raw, data_args, training_args, stopping_args, teacher=teacher, cache_top_k=cache,
            callbacks=callbacks, teacher_tokenizer=teacher_tokenizer,
        )  # fmt: skip
    elif mode in ("seq_kd", "seq_inter"):
        folder = student_args.seq_kd_dataset if mode == "seq_kd" else student_args.seq_inter_dataset
        train = distilled_train_split(
            mode, folder, raw["train"], teacher, teacher_tokenizer, student_args, data_args, training_args.output_dir
        )
        model = build_model(model_args, data_args, tokenizer)
        trainer = train_stage(
            model, tokenizer, with_train(train), data_args, training_args, stopping_args, callbacks=callbacks
        )
    else:  # combined: Seq-KD, then Word-KD fine-tuning on Seq-Inter data
        given = student_args.seq_kd_model_name_or_path
        model = (
            AutoModelForSeq2SeqLM.from_pretrained(given) if given else build_model(model_args, data_args, tokenizer)
        )
        check_word_kd_vocabulary(mode, model, teacher, tokenizer, teacher_tokenizer)  # before any data or training
        seq_inter_train = distilled_train_split(
            "seq_inter", student_args.seq_inter_dataset, raw["train"], teacher, teacher_tokenizer, student_args,
            data_args, training_args.output_dir,
        )  # fmt: skip
        stage1_dir = Path(training_args.output_dir) / "stage1_seq_kd"
        if student_args.seq_kd_model_name_or_path is not None:
            stage1_dir = student_args.seq_kd_model_name_or_path
            logger.info(f"Stage 1 (Seq-KD) is the student in {stage1_dir}: fine-tuning it.")
        elif (stage1_dir / "train_results.json").is_file():
            logger.info(f"Stage 1 (Seq-KD) is done already: fine-tuning from {stage1_dir}.")
        else:
            seq_kd_train = distilled_train_split(
                "seq_kd", student_args.seq_kd_dataset, raw["train"], teacher, teacher_tokenizer, student_args,
                data_args, training_args.output_dir,
            )  # fmt: skip
            stage1_args = dataclasses.replace(training_args, output_dir=str(stage1_dir))
            train_stage(
                model, tokenizer, with_train(seq_kd_train), data_args, stage1_args, stopping_args, callbacks=callbacks
            )
        stage2 = {
            "num_train_epochs": student_args.finetune_num_train_epochs,
            "max_steps": student_args.finetune_max_steps,
        }
        if student_args.finetune_learning_rate is not None:
            stage2["learning_rate"] = student_args.finetune_learning_rate
        stage2_args = dataclasses.replace(training_args, **stage2)
        model = AutoModelForSeq2SeqLM.from_pretrained(stage1_dir)
        trainer = train_stage(
            model, tokenizer, with_train(seq_inter_train), data_args, stage2_args, stopping_args, teacher=teacher,
            teacher_tokenizer=teacher_tokenizer, callbacks=callbacks,
        )  # fmt: skip

    if "test" in raw and trainer.is_world_process_zero():
        results = evaluate_split(trainer.model, tokenizer, raw["test"], data_args, training_args.output_dir, mode)
        teacher_results = Path(teacher_path or "", "eval_results.json") if teacher_path else None
        write_card_and_push(
            trainer.model, tokenizer, results, raw["test"], data_args, training_args, push_to_hub, role="student",
            training=training_facts(student_args, training_args, data_args),
            teacher_results=teacher_results if teacher_results and teacher_results.is_file() else None,
        )  # fmt: skip
        return results
    return None


def training_facts(student_args, training_args, data_args) -> dict:
    """How this student was made, for its model card: mode, teacher, α and T, the beam sizes K of its data."""
    mode = student_args.mode
    facts = {"mode": mode, "dataset": data_args.dataset_name or data_args.train_file}
    teacher = training_args.teacher_model_name_or_path
    beams = {"seq_kd": student_args.seq_kd_num_beams, "seq_inter": student_args.seq_inter_num_beams}
    for kind, folder in (("seq_kd", student_args.seq_kd_dataset), ("seq_inter", student_args.seq_inter_dataset)):
        made_by = Path(folder or "", "distillation.json")
        if folder and made_by.is_file():  # data from recipes/distill_data.py says which teacher and K made it
            record = json.loads(made_by.read_text())
            beams[kind] = record["config"]["num_beams"]
            teacher = teacher or record["teacher"]
    data_folder = student_args.seq_kd_dataset or student_args.seq_inter_dataset
    if teacher is None and data_folder is not None:
        teacher = f"the teacher that made {data_folder}"  # data made elsewhere without a record of its teacher
    if teacher is not None:
        facts["teacher"] = teacher
    if mode in ("word_kd", "combined"):
        facts.update(alpha=training_args.alpha, temperature=training_args.temperature)
    if mode in ("seq_kd", "seq_inter"):
        facts["num_beams"] = beams[mode]
    if mode == "combined":
        facts.update(num_beams=beams["seq_inter"], seq_kd_num_beams=beams["seq_kd"])
    return facts


if __name__ == "__main__":
    main()
