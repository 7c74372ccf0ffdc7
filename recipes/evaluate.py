r"""Evaluate a saved translation model on a split: BLEU/chrF greedy and beam, perplexity, p(t=ŷ), words/s, params.

    python recipes/evaluate.py --model_name_or_path outputs/bible_es_en/teacher --dataset_name bible_es_en \
        --split test --num_beams 5 --output_dir outputs/bible_es_en/teacher/test

Writes `eval_results.json` (plus the greedy and beam translations, one per line) into `--output_dir` and prints the
markdown row. Works for any transformers seq2seq model with its tokenizer.
"""

from dataclasses import dataclass, field

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd.arguments import parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset
from hf_seqkd.evaluation import evaluate_split


@dataclass
class EvaluationArguments:
    """
    Args:
        model_name_or_path (`str`): the model folder or Hub id.
        output_dir (`str`): where the results go.
        split (`str`): the split to evaluate.
        name (`str`): the model's name in the markdown row.
        num_beams (`int`): beam size of the beam-search run (the other is greedy).
        batch_size (`int`): sentences per batch.
        device (`str`, *optional*): e.g. `cuda`; defaults to the GPU when there is one.
        trust_remote_code (`bool`): allow models that need their own code.
    """

    model_name_or_path: str = field(metadata={"help": "The model folder or Hub id."})
    output_dir: str = field(metadata={"help": "Where eval_results.json and the translations go."})
    split: str = field(default="test", metadata={"help": "The split to evaluate."})
    name: str = field(default="model", metadata={"help": "The model's name in the markdown row."})
    num_beams: int = field(default=5, metadata={"help": "Beam size of the beam-search run."})
    batch_size: int = field(default=64, metadata={"help": "Sentences per batch."})
    device: str | None = field(default=None, metadata={"help": "Device; the GPU when there is one."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow models that need their own code."})


ARGUMENTS = (EvaluationArguments, DataArguments)


def main(args: list[str] | None = None) -> dict:
    eval_args, data_args = parse_args(ARGUMENTS, args)
    setup_logging()
    raw = load_parallel_dataset(data_args)
    if eval_args.split not in raw:
        raise ValueError(f"No {eval_args.split!r} split; the data has {list(raw)}.")
    device = eval_args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForSeq2SeqLM.from_pretrained(
        eval_args.model_name_or_path, trust_remote_code=eval_args.trust_remote_code
    ).to(device)
    tokenizer = AutoTokenizer.from_pretrained(
        eval_args.model_name_or_path, trust_remote_code=eval_args.trust_remote_code
    )
    return evaluate_split(
        model,
        tokenizer,
        raw[eval_args.split],
        data_args.source_lang,
        data_args.target_lang,
        eval_args.output_dir,
        name=eval_args.name,
        num_beams=eval_args.num_beams,
        batch_size=eval_args.batch_size,
    )


if __name__ == "__main__":
    main()
