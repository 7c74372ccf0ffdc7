"""Online vs offline (cached top-k) Word-KD: peak memory, training speed, caching time and BLEU of a student.

A student (new LSTM seq2seq, the teacher's tokenizer) is trained for N steps on the bundled Spanish-English Bible
with `KDSeq2SeqTrainer`, once with the teacher run on every batch (online) and once from the teacher's top-k cached
by `add_teacher_top_k` (offline), from the same seed and the same batches. Each measurement runs in its own process,
so that each peak memory (RSS high-water mark, `getrusage`) is its own:

    online    loads the teacher, trains N steps, decodes the validation split greedily (BLEU)
    cache     loads the teacher, caches its top-k over the training split (timed, never read from the datasets cache)
    offline   loads the cached split, trains N steps with no teacher in memory, decodes the validation split

Target tokens/s count the reference tokens of steps 2..N over their wall time (data loading, forward, teacher,
backward and optimizer step; step 1 is warm-up). Prints a markdown table.

    HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_word_kd.py \
        --teacher outputs/bible_es_en/teacher --steps 200
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, TrainerCallback, set_seed

from hf_seqkd.arguments import ModelArguments
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts, tokenize_parallel_dataset
from hf_seqkd.evaluation import corpus_scores, decode_and_score
from hf_seqkd.training import build_model
from hf_seqkd.word_kd import KDSeq2SeqTrainer, KDSeq2SeqTrainingArguments, add_teacher_top_k

MODES = ("online", "cache", "offline")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class TimedKDTrainer(KDSeq2SeqTrainer):
    """Counts the target tokens of every training batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_tokens = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.step_tokens.append(int(inputs["labels"].ne(-100).sum()))
        return super().training_step(model, inputs, num_items_in_batch)


class StepClock(TrainerCallback):
    def __init__(self):
        self.times = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def load_data(args, tokenizer):
    data_args = DataArguments(
        dataset_name="bible_es_en",
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
        max_source_length=args.max_length,
        max_target_length=args.max_length,
    )
    raw = load_parallel_dataset(data_args)
    raw.pop("test")
    return data_args, raw, tokenize_parallel_dataset(raw, tokenizer, data_args)


def train_student(args, mode, tokenizer, data_args, raw, train_dataset):
    set_seed(args.seed)
    model_args = ModelArguments(embedding_size=args.hidden_size, hidden_size=args.hidden_size, layers=args.layers)
    student = build_model(model_args, data_args, tokenizer)
    training_args = KDSeq2SeqTrainingArguments(
        output_dir=str(Path(args.output_dir) / mode),
        alpha=args.alpha,
        temperature=args.temperature,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        save_strategy="no",
        logging_steps=max(1, args.steps // 5),
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
    )
    clock = StepClock()
    trainer = TimedKDTrainer(
        model=student,
        teacher_model=args.teacher if mode == "online" else None,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        callbacks=[clock],
    )
    trainer.train()
    peak = peak_rss_mb()  # before decoding: the training's own high-water mark
    tokens = sum(trainer.step_tokens[1:])
    seconds = clock.times[-1] - clock.times[0] if len(clock.times) > 1 else float("nan")

    sources, references = source_and_target_texts(raw["validation"], data_args)
    decoded = decode_and_score(trainer.model, tokenizer, sources, num_beams=1, batch_size=args.batch_size)
    return {
        "peak_rss_mb": peak,
        "tokens_per_sec": tokens / seconds,
        "bleu_greedy": corpus_scores(decoded["hypotheses"], references)["bleu"],
        "final_loss": next((log["loss"] for log in reversed(trainer.state.log_history) if "loss" in log), None),
    }


def run_worker(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    data_args, raw, tokenized = load_data(args, tokenizer)
    cached_path = Path(args.output_dir) / f"train_top{args.k}"
    if args.worker == "online":
        result = train_student(args, "online", tokenizer, data_args, raw, tokenized["train"])
    elif args.worker == "cache":
        teacher = AutoModelForSeq2SeqLM.from_pretrained(args.teacher)
        start = time.perf_counter()
        cached = add_teacher_top_k(
            tokenized["train"], teacher, k=args.k, batch_size=args.cache_batch_size, load_from_cache_file=False
        )
        seconds = time.perf_counter() - start
        cached.save_to_disk(cached_path)
        tokens = sum(len(labels) for labels in tokenized["train"]["labels"])
        result = {"seconds": seconds, "tokens_per_sec": tokens / seconds, "peak_rss_mb": peak_rss_mb()}
    else:
        result = train_student(args, "offline", tokenizer, data_args, raw, load_from_disk(cached_path))
    Path(args.result).write_text(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="Teacher folder (model and tokenizer).")
    parser.add_argument("--steps", type=int, default=200, help="Training steps of each student.")
    parser.add_argument("--k", type=int, default=32, help="Cached teacher tokens per target position.")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--cache_batch_size", type=int, default=128, help="Batch of the caching pass.")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--hidden_size", type=int, default=128, help="Student embedding and LSTM size.")
    parser.add_argument("--layers", type=int, default=2, help="Student encoder and decoder layers.")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Default: the whole training split.")
    parser.add_argument("--max_eval_samples", type=int, default=200, help="Validation sentences for BLEU.")
    parser.add_argument("--max_length", type=int, default=100, help="max_source_length and max_target_length.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--output_dir", default=None, help="Where the cached split goes (default: a temp folder).")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    with tempfile.TemporaryDirectory() as temporary:
        output_dir = args.output_dir or temporary
        results = {}
        for mode in MODES:
            result_path = Path(output_dir) / f"{mode}.json"
            command = [sys.executable, __file__, *sys.argv[1:], "--output_dir", output_dir]
            command += ["--worker", mode, "--result", str(result_path)]
            print(f"Running {mode} ...", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, env=os.environ)
            results[mode] = json.loads(result_path.read_text())

    online, cache, offline = results["online"], results["cache"], results["offline"]
    print(
        f"\n# Word-KD, {args.steps} steps of batch {args.batch_size}, student {args.layers}x{args.hidden_size}, "
        f"teacher {args.teacher}, alpha {args.alpha}, T {args.temperature}, torch {torch.__version__}, "
        f"{args.threads or torch.get_num_threads()} threads\n"
    )
    print("| mode | peak RSS training (MB) | target tokens/s | caching pass | caching peak RSS (MB) | BLEU greedy |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| online | {online['peak_rss_mb']:.0f} | {online['tokens_per_sec']:,.0f} | - | - | "
        f"{online['bleu_greedy']:.2f} |"
    )
    print(
        f"| offline (top-{args.k}) | {offline['peak_rss_mb']:.0f} | {offline['tokens_per_sec']:,.0f} | "
        f"{cache['seconds']:.1f} s ({cache['tokens_per_sec']:,.0f} tokens/s) | {cache['peak_rss_mb']:.0f} | "
        f"{offline['bleu_greedy']:.2f} |"
    )


if __name__ == "__main__":
    main()
