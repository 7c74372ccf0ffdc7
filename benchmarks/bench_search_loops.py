"""The LSTM model's own search loops against GenerationMixin's, on real sentences: words/s of generate() each way,
greedy and beam search, one sentence at a time and in batches, and whether the two give the same translations.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_search_loops.py --model models/bible-es-en-teacher \
        --dataset_name bible_es_en --source_lang es --target_lang en

generate() runs the model's `_sample` / `_beam_search` where a search asks for token ids only (README, Speed); this
times them against transformers' own loops on the same model, sentences and machine, interleaved (every round times
each loop once; the table keeps each one's best round), and counts the translations that differ (expected: none).
Prints a markdown table.
"""

import time
from dataclasses import dataclass, field

import torch
import transformers
from transformers import GenerationMixin

from hf_seqkd.arguments import parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.translation import DTYPES, load_translation_model, translate
from hf_seqkd.utils import describe_machine


@dataclass
class SearchLoopArguments:
    """
    Args:
        model (`str`): an LSTM model folder or Hub id.
        split (`str`): the split to translate.
        num_sentences (`int`): its first sentences to translate.
        num_beams (`list[int]`): the searches (1 = greedy).
        batch_sizes (`list[int]`): sentences a generate() call.
        rounds (`int`): interleaved rounds; each measurement keeps its best.
        dtype (`str`): the precision to decode in (in bfloat16, equal logits make tied scores common).
    """

    model: str = field(metadata={"help": "An LSTM model folder or Hub id."})
    split: str = field(default="test", metadata={"help": "Split to translate."})
    num_sentences: int = field(default=256, metadata={"help": "Its first sentences to translate."})
    num_beams: list[int] = field(default_factory=lambda: [1, 5], metadata={"help": "Searches (1: greedy)."})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 64], metadata={"help": "Sentences a generate() call."})
    rounds: int = field(default=2, metadata={"help": "Interleaved rounds; each measurement keeps its best."})
    dtype: str = field(default="float32", metadata={"help": "Precision to decode in.", "choices": list(DTYPES)})


class GenerationMixinLoops:
    """Within this block, the model class runs GenerationMixin's `_sample` and `_beam_search` instead of its own."""

    def __init__(self, model):
        self.model_class = type(model)

    def __enter__(self):
        self.own = self.model_class.__dict__["_sample"], self.model_class.__dict__["_beam_search"]
        self.model_class._sample, self.model_class._beam_search = GenerationMixin._sample, GenerationMixin._beam_search

    def __exit__(self, *exc):
        self.model_class._sample, self.model_class._beam_search = self.own


def main(args: list[str] | None = None) -> list[dict]:
    bench_args, data_args = parse_args((SearchLoopArguments, DataArguments), args)
    setup_logging()
    split = load_parallel_dataset(data_args)[bench_args.split]
    sources, _ = source_and_target_texts(split.select(range(min(bench_args.num_sentences, len(split)))), data_args)
    model, tokenizer = load_translation_model(bench_args.model)
    model.to(DTYPES[bench_args.dtype])
    if "_beam_search" not in type(model).__dict__:
        raise ValueError(f"{bench_args.model} is a {type(model).__name__}, which has no search loops of its own.")
    rows = []
    for batch_size in bench_args.batch_sizes:
        for num_beams in bench_args.num_beams:
            best, outputs = {}, {}
            for _ in range(bench_args.rounds):
                for loops in ("own", "GenerationMixin"):
                    start = time.perf_counter()
                    if loops == "own":
                        outputs[loops] = translate(sources, model, tokenizer, num_beams, batch_size)
                    else:
                        with GenerationMixinLoops(model):
                            outputs[loops] = translate(sources, model, tokenizer, num_beams, batch_size)
                    words = sum(len(text.split()) for text in outputs[loops])
                    best[loops] = max(best.get(loops, 0.0), words / (time.perf_counter() - start))
            differ = sum(a != b for a, b in zip(outputs["own"], outputs["GenerationMixin"]))
            rows.append(
                {"batch_size": batch_size, "num_beams": num_beams, **best, "differ": differ, "sentences": len(sources)}
            )
    print(
        f"{bench_args.model} in {bench_args.dtype}, the first {len(sources)} {bench_args.split} sentences, "
        f"{torch.get_num_threads()} "
        f"thread(s), {describe_machine()}, transformers {transformers.__version__}; "
        f"words/s of generate(), best of {bench_args.rounds} interleaved rounds\n"
    )
    print("| batch | search | model's own loops | GenerationMixin's | ratio | translations that differ |")
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        search = "greedy" if row["num_beams"] == 1 else f"beam {row['num_beams']}"
        print(
            f"| {row['batch_size']} | {search} | {row['own']:,.0f} | {row['GenerationMixin']:,.0f} | "
            f"{row['own'] / row['GenerationMixin']:.2f} | {row['differ']} of {row['sentences']} |"
        )
    return rows


if __name__ == "__main__":
    main()
