"""Model and dataset cards rendered from measured results (never typed by hand), and pushing to the Hub."""

import platform
from pathlib import Path

import torch
from datasets import DatasetDict
from huggingface_hub import DatasetCard, DatasetCardData

HUB_CARDS = Path(__file__).resolve().parent.parent / "hub_cards"
METHODS = {
    "seq_kd": "Seq-KD: the teacher's best beam-search hypothesis",
    "seq_inter": "Seq-Inter: the teacher's K-best hypothesis closest to the reference",
}


def machine_description() -> str:
    """What the speed figures were measured on."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    processor = platform.processor() or platform.machine()
    return f"{processor} CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


def render_distilled_dataset_card(
    *,
    repo_id: str,
    teacher: str,
    mode: str,
    num_beams: int,
    selection_metric: str,
    source_lang: str,
    target_lang: str,
    source_dataset: str,
    splits: dict,
    bleu_signature: str,
) -> DatasetCard:
    """
    The card of a Seq-KD / Seq-Inter dataset, from `hub_cards/distilled_dataset.md`.

    Args:
        splits (`dict`): for each distilled split, `{"num_rows", "bleu", "sentences_per_sec", "seconds"}` as measured.
    """
    card_data = DatasetCardData(
        language=[source_lang, target_lang],
        task_categories=["translation"],
        tags=["knowledge-distillation", "sequence-level-knowledge-distillation", mode.replace("_", "-")],
        source_datasets=[source_dataset],
        pretty_name=f"{source_dataset} {source_lang}-{target_lang}, {mode} targets",
    )
    selection_rule = (
        "the top hypothesis of the beam"
        if mode == "seq_kd"
        else f"highest smoothed sentence {selection_metric.upper()} against the reference"
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(HUB_CARDS / "distilled_dataset.md"),
        repo_id=repo_id,
        teacher=teacher,
        method=METHODS[mode],
        method_key=mode,
        num_beams=num_beams,
        selection_metric=selection_metric,
        selection_rule=selection_rule,
        source_lang=source_lang,
        target_lang=target_lang,
        source_dataset=source_dataset,
        distilled_splits=list(splits),
        splits=splits,
        bleu_signature=bleu_signature,
        machine=machine_description(),
    )


def push_dataset(dataset: DatasetDict, card: DatasetCard, repo_id: str, private: bool = False) -> None:
    """Uploads the dataset and its card to the Hub (needs a token with write access: `hf auth login`)."""
    dataset.push_to_hub(repo_id, private=private)
    card.push_to_hub(repo_id, repo_type="dataset")
