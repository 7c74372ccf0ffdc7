"""Decoding speed of a student with greedy search against its teacher with beam search, in one run (Kim & Rush
2016, Table 1's speed claim: the Seq-KD student decoding greedily is ~10x faster than the teacher's beam search).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_decode_speed.py --student outputs/table1/seq_kd \
        --teacher outputs/table1/teacher --dataset_name bible_es_en --output_dir outputs/table1/decode_speed

Both models translate the same test sentences at each batch size (batch 1: the first `--batch1_sentences`; batch 64:
the whole split), after one warm-up batch each; only `generate` is timed. Writes `decode_speed.json` and
`decode_speed.md` (the machine, words/s, sentences/s and the ratio student greedy / teacher beam) to `--output_dir`.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hf_seqkd.arguments import parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.evaluation import corpus_scores, decode_and_score
from hf_seqkd.translation import load_translation_model
from hf_seqkd.utils import describe_machine

logger = logging.getLogger(__name__)


@dataclass
class DecodeSpeedArguments:
    """
    Args:
        student (`str`), teacher (`str`): the two model folders (or Hub ids).
        output_dir (`str`): where decode_speed.json / .md go.
        split (`str`): the split whose sources are translated.
        batch_sizes (`list[int]`): the batch sizes to time.
        batch1_sentences (`int`): sentences timed at batch size 1 (the whole split takes long there).
        student_num_beams (`int`), teacher_num_beams (`int`): 1 = greedy.
        device (`str`, *optional*): defaults to the GPU when there is one.
    """

    student: str = field(metadata={"help": "The student folder or Hub id."})
    teacher: str = field(metadata={"help": "The teacher folder or Hub id."})
    output_dir: str = field(metadata={"help": "Where decode_speed.json and decode_speed.md go."})
    split: str = field(default="test", metadata={"help": "Split to translate."})
    batch_sizes: list[int] = field(default_factory=lambda: [1, 64], metadata={"help": "Batch sizes to time."})
    batch1_sentences: int = field(default=300, metadata={"help": "Sentences timed at batch size 1."})
    student_num_beams: int = field(default=1, metadata={"help": "Student beam size (1: greedy)."})
    teacher_num_beams: int = field(default=5, metadata={"help": "Teacher beam size."})
    device: str | None = field(default=None, metadata={"help": "Device; the GPU when there is one."})


ARGUMENTS = (DecodeSpeedArguments, DataArguments)


def main(args: list[str] | None = None) -> dict:
    bench_args, data_args = parse_args(ARGUMENTS, args)
    setup_logging()
    device = bench_args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    split = load_parallel_dataset(data_args)[bench_args.split]
    sources, references = source_and_target_texts(split, data_args)
    runs = {
        "student": (bench_args.student, bench_args.student_num_beams),
        "teacher": (bench_args.teacher, bench_args.teacher_num_beams),
    }
    models = {name: load_translation_model(path, device) for name, (path, _) in runs.items()}

    measurements = []
    for batch_size in bench_args.batch_sizes:
        count = min(len(sources), bench_args.batch1_sentences) if batch_size == 1 else len(sources)
        for name, (path, num_beams) in runs.items():
            model, tokenizer = models[name]
            decode_and_score(model, tokenizer, sources[: max(batch_size, 8)], num_beams, batch_size)  # warm-up
            run = decode_and_score(model, tokenizer, sources[:count], num_beams, batch_size)
            measurements.append(
                {
                    "model": name,
                    "path": path,
                    "num_beams": num_beams,
                    "batch_size": batch_size,
                    "sentences": count,
                    "seconds": run["seconds"],
                    "words_per_sec": run["words_per_sec"],
                    "tokens_per_sec": run["tokens_per_sec"],
                    "sentences_per_sec": count / run["seconds"],
                    "bleu": corpus_scores(run["hypotheses"], references[:count])["bleu"],
                }
            )
            logger.info(f"{name} (beam {num_beams}), batch {batch_size}: {run['words_per_sec']:.0f} words/s")

    ratios = {}
    for batch_size in bench_args.batch_sizes:
        student, teacher = (next(m for m in measurements if m["batch_size"] == batch_size and m["model"] == name)
                            for name in ("student", "teacher"))  # fmt: skip
        ratios[str(batch_size)] = student["words_per_sec"] / teacher["words_per_sec"]
    result = {
        "machine": describe_machine(device),
        "split": bench_args.split,
        "measurements": measurements,
        "speedup_student_over_teacher": ratios,
    }
    output_dir = Path(bench_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "decode_speed.json").write_text(json.dumps(result, indent=2))
    (output_dir / "decode_speed.md").write_text(render_markdown(result))
    print(render_markdown(result), flush=True)
    return result


def speed_comparison(ratio: float) -> str:
    """The student's speed against the teacher's in words, whichever is faster (a ratio below 1 is no speed-up)."""
    if ratio >= 1:
        return f"the student's search is {ratio:.1f}x as fast as the teacher's"
    return f"the student's search is slower: {ratio:.2f}x the teacher's speed ({1 / ratio:.1f}x slower)"


def render_markdown(result: dict) -> str:
    lines = [
        f"Machine: {result['machine']}; {result['split']} split.",
        "",
        "| batch | model | search | sentences | words/s | sentences/s | BLEU (these sentences) |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for m in result["measurements"]:
        search = "greedy" if m["num_beams"] == 1 else f"beam {m['num_beams']}"
        lines.append(
            f"| {m['batch_size']} | {m['model']} | {search} | {m['sentences']} | {m['words_per_sec']:,.0f} "
            f"| {m['sentences_per_sec']:,.1f} | {m['bleu']:.2f} |"
        )
    lines.append("")
    for batch_size, ratio in result["speedup_student_over_teacher"].items():
        lines.append(f"- batch {batch_size}: {speed_comparison(ratio)}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
