"""
The one registry of how hf_seqkd makes models: the training modes of Kim & Rush (2016), Table 1, and the two kinds of
sequence-level distillation data. The student recipe (its `--mode` and one function per mode), the model and dataset
cards, the Seq-KD pipeline and the Table 1 report all read them from here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class SequenceData:
    """
    A kind of sequence-level distillation data (Kim & Rush, 2016, sections 3.2-3.3): how the teacher's translations
    replace the references.

    Args:
        name (`str`): `seq_kd` or `seq_inter`; the `--mode` of recipes/distill_data.py.
        method (`str`): what the new target is, for the dataset card.
        default_num_beams (`int`): the paper's beam size K for this kind (5 and 35).
        picks_by_reference (`bool`): whether the target is chosen from the K-best list by its similarity to the
            reference (Seq-Inter) rather than being the beam's best (Seq-KD).
    """

    name: str
    method: str
    default_num_beams: int
    picks_by_reference: bool


@dataclass(frozen=True)
class TrainingMode:
    """
    How a model is trained: one row of the paper's Table 1.

    Args:
        name (`str`): the `--mode` of recipes/train_student.py.
        summary (`str`): one line for `--help`.
        description (`str`): the model card's sentence, in the paper's words.
        table_row (`str`): the Table 1 description of a student trained so.
        tags (`tuple[str, ...]`): the model card's tags for it.
        word_kd (`bool`): whether it learns from the teacher's word distributions (Word-KD: needs α and T, and a
            student that shares the teacher's vocabulary).
        data (`tuple[str, ...]`): the sequence-level data it trains on, in the order of its stages.
    """

    name: str
    summary: str
    description: str
    table_row: str
    tags: tuple[str, ...] = ()
    word_kd: bool = False
    data: tuple[str, ...] = ()


SEQUENCE_DATA = {
    data.name: data
    for data in (
        SequenceData("seq_kd", "Seq-KD: the teacher's best beam-search hypothesis", 5, picks_by_reference=False),
        SequenceData(
            "seq_inter", "Seq-Inter: the teacher's K-best hypothesis closest to the reference", 35,
            picks_by_reference=True,
        ),
    )
}  # fmt: skip

MODES = {
    mode.name: mode
    for mode in (
        TrainingMode(
            "baseline", "the references", "Baseline: trained on the reference translations (no distillation)",
            "student, references",
        ),
        TrainingMode(
            "word_kd", "the references and the teacher's per-token distributions (online, or its top-k cached once)",
            "Word-KD: (1 - α) · NLL of the reference + α · T² · cross-entropy to the teacher's word distributions",
            "student, Word-KD", tags=("word-kd",), word_kd=True,
        ),
        TrainingMode(
            "seq_kd", "the teacher's beam-search translations",
            "Seq-KD: trained on the teacher's beam-search translations of the training set", "student, Seq-KD",
            tags=("seq-kd",), data=("seq_kd",),
        ),
        TrainingMode(
            "seq_inter", "the teacher's K-best translation closest to the reference",
            "Seq-Inter: trained on the teacher's K-best hypothesis closest to the reference", "student, Seq-Inter",
            tags=("seq-inter",), data=("seq_inter",),
        ),
        TrainingMode(
            "combined", "the paper's best: seq_kd, then fine-tuning on Seq-Inter data with the Word-KD loss",
            "Seq-KD + Seq-Inter + Word-KD: trained on the teacher's beam-search translations (Seq-KD), then "
            "fine-tuned on its K-best hypotheses closest to the references (Seq-Inter) with the Word-KD loss",
            "student, Seq-KD + Seq-Inter + Word-KD", tags=("seq-kd", "seq-inter", "word-kd"), word_kd=True,
            data=("seq_kd", "seq_inter"),
        ),
    )
}  # fmt: skip


def training_mode(name: str) -> TrainingMode:
    """The mode called `name`; a ValueError that lists the modes otherwise."""
    if name not in MODES:
        raise ValueError(f"Unknown training mode {name!r}; the modes are {list(MODES)}.")
    return MODES[name]


def sequence_data(name: str) -> SequenceData:
    """The kind of sequence-level data called `name`; a ValueError that lists the kinds otherwise."""
    if name not in SEQUENCE_DATA:
        raise ValueError(f"Unknown sequence-level data {name!r}; the kinds are {list(SEQUENCE_DATA)}.")
    return SEQUENCE_DATA[name]
