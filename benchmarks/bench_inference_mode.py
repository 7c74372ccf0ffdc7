"""What running the model's own search loops under `torch.inference_mode` gains, at batch 1 (README, Speed).

generate() only turns gradients off; the model's `_sample` / `_beam_search` run their loops in inference mode
(`modeling_lstm_seq2seq._untracked_search`). This times generate() on bench_speed.py's batch-1 row (2x128, V = 4000,
30 random source ids -> exactly 30 target tokens, one thread) with the loops as they are and with the same loops
unwrapped (no inference mode, the ids cloned as before), in paired rounds: A then B, `--rounds` times, each a pass
over `--sentences` sentences. A busy machine slows both halves of a round alike, so the median of the per-round
ratios is the figure to read; best rounds are printed too.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_inference_mode.py
"""

import argparse
import os
import platform
import statistics
import time

import torch
import transformers

from hf_seqkd.modeling_lstm_seq2seq import LSTMSeq2SeqForConditionalGeneration

try:  # run as `python benchmarks/bench_inference_mode.py`
    import bench_speed
except ImportError:  # imported as benchmarks.bench_inference_mode
    from benchmarks import bench_speed

LOOPS = ("_direct_sample", "_direct_beam_search")


def untracked_loops_off():
    """Swap the model class's loops for the same loops outside inference mode; returns a function that undoes it."""
    model_class = LSTMSeq2SeqForConditionalGeneration
    wrapped = {name: model_class.__dict__[name] for name in LOOPS}
    for name, loop in wrapped.items():
        setattr(model_class, name, lambda *args, _loop=loop.__wrapped__, **kwargs: _loop(*args, **kwargs).clone())
    return lambda: [setattr(model_class, name, loop) for name, loop in wrapped.items()]


def paired_rounds(model, batches, num_beams: int, rounds: int) -> dict:
    """Seconds of A (loops without inference mode) and B (as they are) per round, alternating, after a warm-up."""
    seconds = {"A": [], "B": []}
    for round_index in range(rounds + 1):
        for arm in ("A", "B"):
            restore = untracked_loops_off() if arm == "A" else None
            try:
                start = time.perf_counter()
                bench_speed.hf_generate(model, batches, num_beams)
                elapsed = time.perf_counter() - start
            finally:
                if restore:
                    restore()
            if round_index:  # round 0 warms up
                seconds[arm].append(elapsed)
    return seconds


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=8, help="Sentences a round translates, one at a time.")
    parser.add_argument("--rounds", type=int, default=15, help="Paired rounds (after one warm-up round).")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    row = bench_speed.ROWS["128x2-b1"]
    model = bench_speed.build_model(row)
    batches = bench_speed.source_batches(row, args.sentences)
    tokens = args.sentences * bench_speed.TARGET_LENGTH
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread; "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; load average before {os.getloadavg()[0]:.2f}"
    )
    print(f"# {row.hidden}x{row.layers}, V = {row.vocab}, batch 1; {args.rounds} paired rounds of {args.sentences}\n")
    print(
        "| search | no inference mode, best tokens/s | inference mode, best tokens/s | speed-up, median (quartiles) |"
    )
    print("|---|---|---|---|")
    results = []
    for num_beams in (1, 5):
        seconds = paired_rounds(model, batches, num_beams, args.rounds)
        ratios = [a / b for a, b in zip(seconds["A"], seconds["B"])]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        result = {
            "num_beams": num_beams,
            "without": tokens / min(seconds["A"]),
            "with": tokens / min(seconds["B"]),
            "median": statistics.median(ratios),
        }
        results.append(result)
        search = "greedy" if num_beams == 1 else f"beam {num_beams}"
        print(
            f"| {search} | {result['without']:,.0f} | {result['with']:,.0f} | {result['median']:.3f} "
            f"({quartiles[0]:.3f}-{quartiles[2]:.3f}) |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
