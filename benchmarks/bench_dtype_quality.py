"""What decoding in a lower precision costs in translation quality: a model's test-split BLEU and chrF in float32
and in another dtype (default bfloat16), greedy and beam search, and how many translations are identical.

    python benchmarks/bench_dtype_quality.py --model models/bible-es-en-teacher --dataset_name bible_es_en \
        --source_lang es --target_lang en

`--dtype auto` (hf_seqkd.translation.fastest_dtype) chooses a lower precision only where it is faster; this says
whether its output is as good. Prints a markdown table; no timing (see bench_speed.py and bench_decode_speed.py).
"""

from dataclasses import dataclass, field

import torch

from hf_seqkd.arguments import parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.evaluation import corpus_scores
from hf_seqkd.translation import DTYPES, load_translation_model, translate
from hf_seqkd.utils import describe_machine


@dataclass
class DtypeQualityArguments:
    """
    Args:
        model (`str`): the model folder or Hub id.
        dtype (`str`): the precision compared with float32.
        split (`str`): the split to translate.
        num_beams (`list[int]`): the searches (1 = greedy).
        batch_size (`int`): sentences a batch.
    """

    model: str = field(metadata={"help": "The model folder or Hub id."})
    dtype: str = field(
        default="bfloat16", metadata={"help": "Precision compared with float32.", "choices": ["bfloat16", "float16"]}
    )
    split: str = field(default="test", metadata={"help": "Split to translate."})
    num_beams: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "Searches (1: greedy)."})
    batch_size: int = field(default=64, metadata={"help": "Sentences a batch."})


def main(args: list[str] | None = None) -> list[dict]:
    bench_args, data_args = parse_args((DtypeQualityArguments, DataArguments), args)
    setup_logging()
    split = load_parallel_dataset(data_args)[bench_args.split]
    sources, references = source_and_target_texts(split, data_args)
    model, tokenizer = load_translation_model(bench_args.model)
    # float32 first: the weights are cast down once and never back (a round trip through bfloat16 rounds them).
    hypotheses, rows = {}, []
    for dtype in ("float32", bench_args.dtype):
        model.to(DTYPES[dtype])
        for num_beams in bench_args.num_beams:
            hypotheses[dtype, num_beams] = translate(
                sources, model, tokenizer, num_beams=num_beams, batch_size=bench_args.batch_size
            )
            same = sum(a == b for a, b in zip(hypotheses[dtype, num_beams], hypotheses["float32", num_beams]))
            scores = corpus_scores(hypotheses[dtype, num_beams], references)
            rows.append({"dtype": dtype, "num_beams": num_beams, **scores, "identical": same / len(sources)})
    rows.sort(key=lambda row: row["num_beams"])  # each search's two dtypes side by side
    print(f"{bench_args.model}, {len(sources)} {bench_args.split} sentences, batch {bench_args.batch_size}; "
          f"{describe_machine(model.device)}\n")  # fmt: skip
    print("| search | dtype | BLEU | chrF | translations identical to float32's |\n|---|---|---:|---:|---:|")
    for row in rows:
        search = "greedy" if row["num_beams"] == 1 else f"beam {row['num_beams']}"
        print(f"| {search} | {row['dtype']} | {row['bleu']:.3f} | {row['chrf']:.3f} | {100 * row['identical']:.0f}% |")
    return rows


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
