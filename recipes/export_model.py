r"""Export a trained model folder as it would go to the Hub: weights, config, code, tokenizer, card, results.

    python recipes/export_model.py --model_name_or_path ~/hf_seqkd_runs/table1/teacher \
        --output_dir models/bible-es-en-teacher --storage_dtype float16

The card (`README.md`) and `eval_results.json` that the training recipe wrote next to the model are kept; the card's
usage snippets are rewritten to name the exported model (`--model_id`, by default the output folder) instead of the
training output folder, and to load it without `trust_remote_code` when its code stays out. With
`--storage_dtype float16` the weights take half the space on disk while the config keeps float32, so
`AutoModelForSeq2SeqLM.from_pretrained` loads them as float32 and a CPU decodes at full speed. With
`--remote_code false` the folder leaves out the copy of the modeling code (and its `auto_map`), for a model that is
loaded where hf_seqkd is installed: a copy inside this repository would only go stale. This is how the teacher
bundled in `models/bible-es-en-teacher/` was made (`--storage_dtype float16 --remote_code false`).
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd.arguments import parse_args, setup_logging
from hf_seqkd.hub import prepare_push_folder


@dataclass
class ExportArguments:
    """
    Args:
        model_name_or_path (`str`): the trained model folder, with its `README.md` card (and `eval_results.json`).
        output_dir (`str`): where the exported folder goes.
        storage_dtype (`str`): `float32` (as trained), `float16` or `bfloat16` for the weights on disk.
        remote_code (`bool`): keep the modeling code for `trust_remote_code` loading without hf_seqkd.
        model_id (`str`, *optional*): the name the card's usage snippets load the model by (default: `output_dir`).
    """

    model_name_or_path: str = field(metadata={"help": "The trained model folder (with its card)."})
    output_dir: str = field(metadata={"help": "Where the exported folder goes."})
    storage_dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype of the weights on disk; loading casts them back.",
            "choices": ["float32", "float16", "bfloat16"],
        },
    )
    remote_code: bool = field(
        default=True, metadata={"help": "Keep the modeling code (for loading without hf_seqkd installed)."}
    )
    model_id: str | None = field(
        default=None,
        metadata={"help": "How the card's usage snippets name the model: its Hub id, or (default) the output folder."},
    )


ARGUMENTS = (ExportArguments,)

# The cards' usage snippets (hub_cards/*.md) name the model after `hf-seqkd-translate --model`.
SNIPPET_MODEL_ID = re.compile(r"hf-seqkd-translate --model (\S+)")
REMOTE_CODE_INTRO = re.compile(
    r"With `transformers` alone, the model's code comes with it \(`trust_remote_code=True`; the tokenizer needs it"
    r" too,\s+because it reads the model's config\):"
)
WITHOUT_REMOTE_CODE_INTRO = (
    "With `transformers`: this folder carries no modeling code, so import hf_seqkd first (it registers the model"
    " type\nwith the Auto classes):"
)


def localize_card(text: str, model_id: str, remote_code: bool) -> str:
    """
    Rewrites a rendered card's usage snippets for the exported model: they load `model_id` instead of the training
    output folder the card was rendered with, and, without remote code, through `import hf_seqkd` instead of
    `trust_remote_code=True` (which would fail: the folder has no code to trust). A card without the snippets (not
    rendered from hub_cards/) is returned unchanged.
    """
    match = SNIPPET_MODEL_ID.search(text)
    if match:
        text = text.replace(match.group(1), model_id)
    if not remote_code and REMOTE_CODE_INTRO.search(text):
        text = REMOTE_CODE_INTRO.sub(WITHOUT_REMOTE_CODE_INTRO, text)
        text = text.replace(", trust_remote_code=True)", ")")
        text = text.replace(
            "from transformers import AutoModelForSeq2SeqLM",
            "import hf_seqkd  # noqa: F401\nfrom transformers import AutoModelForSeq2SeqLM",
        )
    return text


def main(args: list[str] | None = None) -> list[str]:
    (export_args,) = parse_args(ARGUMENTS, args)
    setup_logging()
    source = Path(export_args.model_name_or_path)
    card_path = source / "README.md"
    if not card_path.is_file():
        raise FileNotFoundError(
            f"{card_path}: no model card. Export a folder written by a training recipe (train_teacher.py, "
            "train_student.py, prune_student.py), which writes the card after evaluating the model."
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    extra = [source / "eval_results.json"] if (source / "eval_results.json").is_file() else []
    storage_dtype = None if export_args.storage_dtype == "float32" else getattr(torch, export_args.storage_dtype)
    card = ModelCard(
        localize_card(card_path.read_text(), export_args.model_id or export_args.output_dir, export_args.remote_code)
    )
    names = prepare_push_folder(model, tokenizer, card, export_args.output_dir, extra, storage_dtype=storage_dtype)
    if not export_args.remote_code:
        output_dir = Path(export_args.output_dir)
        code = [name for name in names if name.endswith(".py")]
        for name in code:
            (output_dir / name).unlink()
        config = json.loads((output_dir / "config.json").read_text())
        config.pop("auto_map", None)
        (output_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        names = [name for name in names if name not in code]
    print("\n".join(f"{export_args.output_dir}/{name}" for name in names))
    return names


if __name__ == "__main__":
    main()
