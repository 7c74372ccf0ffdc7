"""Train a student in any regime of Kim & Rush (2016), Table 1.

    python recipes/train_student.py --config recipes/bible_es_en/student_seq_kd/config.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/train_student.py --config ...

Modes (`--mode`, the registry hf_seqkd.modes.MODES; one function of this script each):
    baseline   the references;
    word_kd    the references and the teacher's per-token distribution (online, or `--word_kd_cache` for the
               teacher's top-k cached once);
    seq_kd     the teacher's beam-search translations (`--seq_kd_dataset`, made by recipes/distill_data.py, or made
               here from `--teacher_model_name_or_path` and cached in the output folder);
    seq_inter  the teacher's K-best translation closest to the reference (`--seq_inter_dataset`, or made here);
    combined   the paper's best: seq_kd (this script's seq_kd mode, in `<output_dir>/stage1_seq_kd`, or a trained
               Seq-KD student given as `--seq_kd_model_name_or_path`), then fine-tuning on Seq-Inter data with the
               Word-KD loss in `<output_dir>`; each stage resumable.

K, the teacher's beam size, is `--seq_kd_num_beams` / `--seq_inter_num_beams` for data made here (the paper's 5 and 35
by default); data from recipes/distill_data.py say which K made them, and a K given for them must agree.

The student is an LSTM seq2seq (sized by `--preset`, `--hidden_size`, ...) or any other transformers seq2seq model
built from its config: `model_type: marian` and `model_config: {d_model: 256, ...}` in the YAML file. Every mode
works for it; word_kd and combined need it to share the teacher's vocabulary (the default tokenizer in those modes).

Validation and test always use the references of `--dataset_name` / the data files. At the end the student is
evaluated on the test split (greedy and beam); `eval_results.json` and a model card (`README.md`, compared with the
teacher's results when the teacher folder has them) are written next to it, and `--push_to_hub --hub_model_id
user/name` uploads them with the model. A killed run started again with the same command resumes where it stopped.
"""

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
from accelerate import PartialState
from datasets import DatasetDict, load_from_disk
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, set_seed

from hf_seqkd.arguments import ModelArguments, end_process_group, parse_args, setup_logging
from hf_seqkd.checks import check_distilled_dataset, check_parallel_rows
from hf_seqkd.data import DataArguments, load_parallel_dataset, tokenize_parallel_dataset
from hf_seqkd.hub import CardInfo
from hf_seqkd.modes import MODES, SEQUENCE_DATA, TrainingMode
from hf_seqkd.seq_kd import (
    SequenceDistillationConfig,
    distill_in_shards,
    distilled_num_beams,
    read_distillation_record,
)
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

STAGE1 = "stage1_seq_kd"  # the combined mode's Seq-KD student, inside its output folder


@dataclass
class StudentArguments:
    """
    Args:
        mode (`str`): a training mode of hf_seqkd.modes.MODES (see the module docstring).
        seq_kd_dataset (`str`, *optional*): a dataset folder written by recipes/distill_data.py in seq_kd mode.
        seq_inter_dataset (`str`, *optional*): the same in seq_inter mode.
        seq_kd_num_beams (`int`, *optional*): K of the Seq-KD data: of data made here (default: the paper's 5); of
            `--seq_kd_dataset`, read from the data (give it for a folder that does not record it).
        seq_inter_num_beams (`int`, *optional*): the same for Seq-Inter data (the paper: 35).
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

    mode: str = field(
        default="baseline",
        metadata={"help": "Training regime: " + "; ".join(f"{m.name}: {m.summary}" for m in MODES.values()) + ".",
                  "choices": list(MODES)},
    )  # fmt: skip
    seq_kd_dataset: str | None = field(default=None, metadata={"help": "Seq-KD dataset folder (distill_data.py)."})
    seq_inter_dataset: str | None = field(default=None, metadata={"help": "Seq-Inter dataset folder."})
    seq_kd_num_beams: int | None = field(
        default=None, metadata={"help": "K of Seq-KD data made here (default 5); for a dataset, read from it."}
    )
    seq_inter_num_beams: int | None = field(
        default=None, metadata={"help": "K of Seq-Inter data made here (default 35); for a dataset, read from it."}
    )
    distill_dtype: str = field(
        default="float32",
        metadata={
            "help": "Teacher dtype for data made here; auto: the faster of float32 and bfloat16, measured.",
            "choices": ["float32", "bfloat16", "float16", "auto"],
        },
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


@dataclass
class StudentRun:
    """
    What the mode functions share: the arguments, the raw data, the teacher (when one is given), the student's
    tokenizer, the run's folder (where data made here are cached), the K of each kind of data it trains on and the
    facts of the model card.
    """

    args: StudentArguments
    model_args: ModelArguments
    data_args: DataArguments
    training_args: KDSeq2SeqTrainingArguments
    stopping_args: EarlyStoppingArguments
    callbacks: list
    raw: DatasetDict
    tokenizer: object
    teacher: PreTrainedModel | None
    teacher_tokenizer: object
    folder: Path
    num_beams: dict
    facts: dict

    @property
    def mode(self) -> TrainingMode:
        return MODES[self.args.mode]

    def stage(self, output_dir: str | Path, **training_changes) -> "StudentRun":
        """The same run training into `output_dir`, with other training settings (`training_changes`)."""
        training_args = dataclasses.replace(self.training_args, output_dir=str(output_dir), **training_changes)
        return dataclasses.replace(self, training_args=training_args)

    def new_student(self) -> PreTrainedModel:
        return build_model(self.model_args, self.data_args, self.tokenizer)

    def check_word_kd_vocabulary(self, student: PreTrainedModel) -> None:
        """
        Word-KD needs a student that shares the teacher's vocabulary: the same size, and the same token for every
        id. Checked before any data are made or any training starts.
        """
        try:
            check_same_vocabulary(student, self.teacher, self.tokenizer, self.teacher_tokenizer)
            check_same_tokenizer(self.tokenizer, self.teacher_tokenizer)
        except ValueError as error:
            raise ValueError(
                f"--mode {self.mode.name}: {error} Or give the student the teacher's tokenizer: leave "
                f"--tokenizer_name_or_path out (this mode then uses the teacher's) and vocab_size out of model_config."
            ) from None

    def distilled(self, kind: str) -> DatasetDict:
        """
        The raw data with the training targets of `kind` (`seq_kd` or `seq_inter`): the `--<kind>_dataset` folder
        (checked), or made here with the teacher (K of `num_beams`) and cached in `<folder>/<kind>_data`.
        """
        folder = getattr(self.args, f"{kind}_dataset")
        source, target = self.data_args.source_lang, self.data_args.target_lang
        if folder is not None:  # checked before anything was loaded: a dataset folder with a train split
            train = check_parallel_rows(load_from_disk(folder)["train"], source, target, f"--{kind}_dataset {folder}")
        else:
            config = SequenceDistillationConfig(kind, self.num_beams[kind], batch_size=self.args.distill_batch_size)
            work_dir, dtype = self.folder / f"{kind}_data", resolve_dtype(self.args.distill_dtype, self.teacher.device)
            # A copy in the generation dtype: the teacher itself stays in float32 for Word-KD (combined mode).
            generator = self.teacher if dtype == self.teacher.dtype else copy.deepcopy(self.teacher).to(dtype)
            logger.info(f"Making {kind} data with the teacher (K={config.num_beams}, {dtype}) in {work_dir}; "
                        "later runs reuse it.")  # fmt: skip
            train, _ = distill_in_shards(
                self.raw["train"], generator, self.teacher_tokenizer, config, source, target, work_dir
            )
            state = PartialState()
            if state.is_main_process:
                train.save_to_disk(work_dir / "train")
            state.wait_for_everyone()
            train = load_from_disk(work_dir / "train")
        return DatasetDict({**self.raw, "train": train})

    def train(self, model: PreTrainedModel, raw: DatasetDict | None = None, word_kd: bool = False):
        """Tokenizes `raw` (by default the run's data), trains `model` (with the Word-KD loss if `word_kd`)."""
        logger.info(describe_model(model))
        args = self.training_args
        tokenized = tokenize_parallel_dataset(raw or self.raw, self.tokenizer, self.data_args, args.main_process_first)
        train, validation = tokenized["train"], tokenized.get("validation")
        common = dict(early_stopping=self.stopping_args, callbacks=self.callbacks, card=self.card())
        if not word_kd:
            return run_training(model, self.tokenizer, train, validation, args, **common)
        teacher = self.teacher
        if self.args.word_kd_cache:
            with args.main_process_first(desc="caching the teacher's top-k"):
                train = add_teacher_top_k(train, teacher, k=args.teacher_top_k)
                validation = add_teacher_top_k(validation, teacher, k=args.teacher_top_k) if validation else None
            # Trained from the cached columns, with no teacher in the trainer: the trainer would otherwise load the
            # teacher named in the arguments again and ignore the cache (online Word-KD, several times slower).
            teacher, args = None, dataclasses.replace(args, teacher_model_name_or_path=None)
        return run_training(
            model, self.tokenizer, train, validation, args, trainer_class=KDSeq2SeqTrainer, teacher_model=teacher,
            teacher_processing_class=self.teacher_tokenizer, **common,
        )  # fmt: skip

    def card(self) -> CardInfo:
        """The student's model card facts, compared with the teacher's results when its folder has them."""
        teacher = self.training_args.teacher_model_name_or_path
        teacher_results = Path(teacher, "eval_results.json") if teacher else None
        return CardInfo.from_data_arguments(
            self.data_args, "student", self.raw.get("test"), training=self.facts,
            teacher_results=teacher_results if teacher_results and teacher_results.is_file() else None,
        )  # fmt: skip


# ---- One function per mode: each trains the student and returns its trainer ---------------------------------------


def train_baseline(run: StudentRun):
    return run.train(run.new_student())


def train_word_kd(run: StudentRun):
    student = run.new_student()
    run.check_word_kd_vocabulary(student)
    return run.train(student, word_kd=True)


def train_seq_kd(run: StudentRun, student: PreTrainedModel | None = None):
    return run.train(student or run.new_student(), run.distilled("seq_kd"))


def train_seq_inter(run: StudentRun):
    return run.train(run.new_student(), run.distilled("seq_inter"))


def train_combined(run: StudentRun):
    """Stage 1: a Seq-KD student (given, trained already, or trained here by `train_seq_kd`); stage 2: Word-KD
    fine-tuning on Seq-Inter data."""
    given, stage1 = run.args.seq_kd_model_name_or_path, run.folder / STAGE1
    student = AutoModelForSeq2SeqLM.from_pretrained(given) if given else run.new_student()
    run.check_word_kd_vocabulary(student)  # before any data are made or any stage trains
    seq_inter = run.distilled("seq_inter")
    if given:
        logger.info(f"Stage 1 (Seq-KD) is the student in {given}: fine-tuning it.")
        stage1 = given
    elif (stage1 / "train_results.json").is_file():
        logger.info(f"Stage 1 (Seq-KD) is done already: fine-tuning from {stage1}.")
    else:
        train_seq_kd(run.stage(stage1), student)
    finetune = {"num_train_epochs": run.args.finetune_num_train_epochs, "max_steps": run.args.finetune_max_steps}
    if run.args.finetune_learning_rate is not None:
        finetune["learning_rate"] = run.args.finetune_learning_rate
    stage2 = run.stage(run.folder, **finetune)
    return stage2.train(AutoModelForSeq2SeqLM.from_pretrained(stage1), seq_inter, word_kd=True)


MODE_FUNCTIONS = {
    "baseline": train_baseline,
    "word_kd": train_word_kd,
    "seq_kd": train_seq_kd,
    "seq_inter": train_seq_inter,
    "combined": train_combined,
}
assert MODE_FUNCTIONS.keys() == MODES.keys(), "one function per mode of hf_seqkd.modes.MODES"


# ---- Before anything is loaded: what the mode needs, the K of its data, the facts of its card ---------------------


def data_kinds(mode: TrainingMode, args: StudentArguments, output_dir: str) -> tuple[list[str], list[str]]:
    """
    The kinds of sequence-level data the student is trained on, and those this run reads: the combined mode's Seq-KD
    data are not used with a given Seq-KD student, and not read again once its stage 1 is done.
    """
    given_stage1 = args.seq_kd_model_name_or_path is not None
    stage1_done = (Path(output_dir) / STAGE1 / "train_results.json").is_file()
    two_stages = len(mode.data) > 1
    trained = [kind for kind in mode.data if not (two_stages and kind == mode.data[0] and given_stage1)]
    return trained, [kind for kind in trained if not (two_stages and kind == mode.data[0] and stage1_done)]


def data_num_beams(args: StudentArguments, trained: list[str], read: list[str]) -> dict:
    """
    K of each kind of data the student is trained on: that of a dataset folder (its record, checked against the
    `--<kind>_num_beams` given), else the one given, else the paper's.
    """
    num_beams = {}
    for kind in trained:
        folder, given = getattr(args, f"{kind}_dataset"), getattr(args, f"{kind}_num_beams")
        if folder is not None and (kind in read or Path(folder).is_dir()):
            num_beams[kind] = distilled_num_beams(kind, folder, given, f"--{kind}_num_beams")
        else:
            num_beams[kind] = given or SEQUENCE_DATA[kind].default_num_beams
    return num_beams


def card_facts(mode: TrainingMode, args: StudentArguments, training_args, data_args, num_beams: dict) -> dict:
    """How this student is made, for its card: mode, dataset, teacher, α and T, and the K of its data."""
    facts = {"mode": mode.name, "dataset": data_args.dataset_name or data_args.train_file}
    teacher = training_args.teacher_model_name_or_path
    for kind in num_beams:  # data made elsewhere name their teacher in their record; else say where they came from
        folder = getattr(args, f"{kind}_dataset")
        if folder is not None and teacher is None:
            teacher = (read_distillation_record(folder) or {}).get("teacher") or f"the teacher that made {folder}"
    if teacher is not None:
        facts["teacher"] = teacher
    if mode.word_kd:
        facts.update(alpha=training_args.alpha, temperature=training_args.temperature)
    if mode.data and mode.data[-1] in num_beams:  # `num_beams` is the K of the last stage's data
        facts["num_beams"] = num_beams[mode.data[-1]]
    if len(mode.data) > 1 and mode.data[0] in num_beams:
        facts["seq_kd_num_beams"] = num_beams[mode.data[0]]
    return facts


def check_mode(mode: TrainingMode, args: StudentArguments, teacher_path: str | None, kinds: list[str]) -> None:
    """What the mode needs and the data folders it reads, checked before anything is loaded."""
    if mode.word_kd and teacher_path is None:
        raise ValueError(f"--mode {mode.name} needs --teacher_model_name_or_path (its per-token distributions).")
    if len(mode.data) > 1 and args.max_train_seconds is not None:
        raise ValueError(f"--max_train_seconds limits one training run; --mode {mode.name} has two: leave it out.")
    for kind in kinds:
        folder = getattr(args, f"{kind}_dataset")
        if folder is None and teacher_path is None:
            raise ValueError(
                f"--mode {mode.name} needs {kind} data: pass --{kind}_dataset or --teacher_model_name_or_path (a "
                f"folder made by recipes/distill_data.py, or the teacher to make the data in this run)."
            )
        check_distilled_dataset(folder, f"--{kind}_dataset")


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
    mode, teacher_path = MODES[student_args.mode], training_args.teacher_model_name_or_path
    trained, read = data_kinds(mode, student_args, training_args.output_dir)
    check_mode(mode, student_args, teacher_path, read)
    num_beams = data_num_beams(student_args, trained, read)
    facts = card_facts(mode, student_args, training_args, data_args, num_beams)
    callbacks = checkpoint_args.callbacks()  # stateless: shared by the stages of a two-stage mode
    if student_args.max_train_seconds is not None:
        callbacks.append(TrainingTimeLimitCallback(student_args.max_train_seconds))
    if mode.word_kd and model_args.tokenizer_name_or_path is None:
        # Word-KD compares distributions token by token: the student takes the teacher's vocabulary (that of the
        # given Seq-KD student, in the combined mode).
        default = (student_args.seq_kd_model_name_or_path if mode.name == "combined" else None) or teacher_path
        model_args = dataclasses.replace(model_args, tokenizer_name_or_path=default)

    raw = load_parallel_dataset(data_args)
    teacher = teacher_tokenizer = None
    if teacher_path is not None:
        teacher = AutoModelForSeq2SeqLM.from_pretrained(teacher_path).to(training_args.device).eval()
        teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = load_or_train_tokenizer(model_args, data_args, raw["train"], training_args.output_dir)
    run = StudentRun(
        student_args, model_args, data_args, training_args, stopping_args, callbacks, raw, tokenizer, teacher,
        teacher_tokenizer, Path(training_args.output_dir), num_beams, facts,
    )  # fmt: skip
    trainer = MODE_FUNCTIONS[mode.name](run)

    if "test" not in raw or not trainer.is_world_process_zero():
        return None
    results = trainer.evaluate_test_split(raw["test"], name=mode.name)
    trainer.create_model_card()
    if training_args.push_to_hub:
        trainer.push_to_hub()
    return results


if __name__ == "__main__":
    main()
    end_process_group()
