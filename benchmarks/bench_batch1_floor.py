"""How fast generate() could translate one sentence at a time on this machine, and OpenNMT-py in the same run.

The batch-1 row of bench_speed.py (2x128, V = 4000, 30 random source ids -> exactly 30 target tokens, one thread),
taken apart. For greedy search and beam 5, per sentence:

- `generate() per call`: a generate() call for one token on a model whose steps return stored logits
  (bench_speed.FixedLogitsModel): the encoder, generate()'s own setup (generation config, validation, logits
  processors, stopping criteria) and one search step. Every translation pays it once.
- `search per token`: what each further token costs that model (its search alone): (30 tokens - 1 token) / 29.
- `step`: the real decoding step (decoder `step` + output layer), at the search's rows (1, or 5 beams), in a loop.
- `products`: the step's matrix products alone (LSTM cells, attention score and context, W_c, output layer), each
  timed in a loop at its shape in the fastest of: float32 as stored, float32 from a transposed copy, bfloat16 from a
  transposed copy. No pointwise work, no indexing, no dtype casts: a floor no decoding step in PyTorch goes under.

From these, two bounds on generate()'s tokens/s, against OpenNMT-py's in this run:
- `bound, free search`: per call + 29 x step (the search costs nothing beyond the first step);
- `bound, products only`: per call + 29 x products (and the step has nothing but its matrix products).
Where the second bound is below a target ratio, no change to the search or the step's framework overhead can reach it
through generate() on this machine.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_batch1_floor.py          # OpenNMT-py when importable (peers.py)
"""

import argparse
import os
import platform
import time

import torch
import transformers

try:  # run as `python benchmarks/bench_batch1_floor.py`
    import bench_speed
    from peers import OpenNMTPeer, load_opennmt
except ImportError:  # imported as benchmarks.bench_batch1_floor
    from benchmarks import bench_speed
    from benchmarks.peers import OpenNMTPeer, load_opennmt

TARGET_LENGTH = bench_speed.TARGET_LENGTH


def seconds_per_call(fn, repeats: int, rounds: int = 5) -> float:
    """Best over `rounds` of the mean time of `repeats` calls (warm up first)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def fastest_product(rows: int, weight: torch.Tensor, repeats: int) -> float:
    """Seconds of (rows, in) x W^T for W (out, in), in the fastest layout and dtype measured here."""
    x = torch.randn(rows, weight.shape[1])
    transposed = weight.t().contiguous()
    candidates = [
        lambda: torch.nn.functional.linear(x, weight),
        lambda: torch.mm(x, transposed),
        lambda x16=x.bfloat16(), t16=transposed.bfloat16(): torch.mm(x16, t16),
    ]
    for fn in candidates:
        fn()
    return min(seconds_per_call(fn, repeats) for fn in candidates)


def products_per_step(model, rows: int, source_length: int, repeats: int) -> float:
    """Seconds of one decoding step's matrix products at `rows` rows (each in its fastest form)."""
    decoder = model.model.decoder
    weights = [w for layer in decoder.lstm.layers for w in (layer.weight_ih, layer.weight_hh)]
    weights += [decoder.attention.output_proj.weight, model.lm_head.weight]
    seconds = sum(fastest_product(rows, weight, repeats) for weight in weights)
    hidden = model.config.hidden_size
    query, keys = torch.randn(rows, 1, hidden), torch.randn(rows, hidden, source_length)
    weights_over_source, memory = torch.randn(rows, 1, source_length), torch.randn(rows, source_length, hidden)
    seconds += seconds_per_call(lambda: torch.bmm(query, keys), repeats)  # scores h_t W_a h_s (keys projected once)
    seconds += seconds_per_call(lambda: torch.bmm(weights_over_source, memory), repeats)  # context
    return seconds


@torch.inference_mode()
def step_seconds(model, rows: int, source_ids: torch.Tensor, repeats: int) -> float:
    """Seconds of the real decoding step (decoder `step` + output layer) at `rows` rows, as the search loops run it."""
    encoder_outputs = model.get_encoder()(source_ids.expand(rows, -1))
    state = model.model.decoder.init_state(encoder_outputs, torch.ones_like(source_ids.expand(rows, -1)))
    output_layer = model._step_output_layer(state.step_weights.transposed)
    tokens = torch.full((rows,), 5)
    return seconds_per_call(lambda: model._next_decoding_step(tokens, state, output_layer), repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=16, help="Sentences translated per timing.")
    parser.add_argument("--repeats", type=int, default=300, help="Calls per timing of a step or a product.")
    parser.add_argument("--no_peers", action="store_true", help="Skip OpenNMT-py even when it is installed.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    row = bench_speed.ROWS["128x2-b1"]
    onmt = None if args.no_peers else load_opennmt()
    model, floor_model = bench_speed.build_model(row), bench_speed.fixed_logits_model(row)
    peer = OpenNMTPeer(onmt, row.hidden, row.layers, row.vocab) if onmt else None
    batches = bench_speed.source_batches(row, args.sentences)
    first_sentence = [batches[0]]
    load = os.getloadavg()[0]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread; "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}, OpenNMT-py {onmt.__version__ if onmt else 'not installed'}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
        f"load average before {load:.2f}"
    )
    print(
        f"# {row.hidden}x{row.layers}, V = {row.vocab}, batch 1, {TARGET_LENGTH} target tokens; times per sentence\n"
    )
    print(
        "| search | OpenNMT-py tokens/s | generate() tokens/s | ratio | generate() per call | search per token | step "
        "| products | bound, free search (ratio) | bound, products only (ratio) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for num_beams in (1, 5):
        # OpenNMT-py and generate() interleaved, best of 3 rounds each (after a warm-up), as in bench_speed.py.
        runs = {"hf": lambda n=num_beams: bench_speed.hf_generate(model, batches, n)}
        if peer:
            runs["peer"] = lambda n=num_beams: peer.translate_all(batches, n, TARGET_LENGTH)
        for run in runs.values():
            run()
        rates = bench_speed.interleaved_best_rates(runs, 3)
        seconds = {key: TARGET_LENGTH / rate for key, rate in rates.items()}  # per sentence
        hf, peer_seconds = seconds["hf"], seconds.get("peer")

        def floor_generate(length, n=num_beams):
            return bench_speed.hf_generate(floor_model, first_sentence, n, length)

        floor_generate(TARGET_LENGTH)  # warm-up
        per_call = seconds_per_call(lambda: floor_generate(1), 20)
        whole = seconds_per_call(lambda: floor_generate(TARGET_LENGTH), 10)
        search = (whole - per_call) / (TARGET_LENGTH - 1)
        step = step_seconds(model, num_beams, batches[0], args.repeats)
        products = products_per_step(model, num_beams, batches[0].shape[1], args.repeats)
        rate = lambda seconds: TARGET_LENGTH / seconds  # noqa: E731
        free_search = per_call + (TARGET_LENGTH - 1) * step
        products_only = per_call + (TARGET_LENGTH - 1) * products
        ratio = lambda seconds: f" ({peer_seconds / seconds:.2f}x)" if peer_seconds else ""  # noqa: E731
        cells = [
            "greedy" if num_beams == 1 else f"beam {num_beams}",
            f"{rate(peer_seconds):,.0f}" if peer_seconds else "-",
            f"{rate(hf):,.0f}",
            f"{peer_seconds / hf:.2f}" if peer_seconds else "-",
            f"{per_call * 1e3:.2f} ms",
            f"{search * 1e6:.0f} us",
            f"{step * 1e6:.0f} us",
            f"{products * 1e6:.0f} us",
            f"{rate(free_search):,.0f}{ratio(free_search)}",
            f"{rate(products_only):,.0f}{ratio(products_only)}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\n# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
