"""Decoding and training speed of the LSTM seq2seq beside OpenNMT-py, on the protocol of ../shared/BENCHMARKS.md.

Protocol: Luong general attention, input feeding, unidirectional LSTMs, E = H, V = 8000, dropout 0, random weights
(seed 0); N source sentences of 30 random ids, batch 64, exactly 30 output tokens each (min = max length); greedy
(transformers' greedy path, not a one-beam beam search; OpenNMT-py's GreedySearch) and beam 5; only the search is
timed. Training: batches of 64 pairs 30 -> 30, forward + loss + backward + Adam step, mean of 10 steps after 2 warm-up
steps. Batch 1 (how an interactive user translates): model 2x128, V = 4000, N = 32, one thread.

Both toolkits run in this process, interleaved: every round times each (toolkit, search) once, and the table keeps
each one's best round, so that a busy machine slows both alike. hf_seqkd is also timed through a bare loop of decoder
steps (fixed length, no EOS bookkeeping), and generate() is timed alone, on a model whose steps return stored logits
without arithmetic (FixedLogitsModel): what the search itself costs (the model's own search loops, or GenerationMixin's
where a search falls back to them), a bound for the model through generate(). The roofline column
is the arithmetic hf_seqkd performs per second (matrix products of the encoder, the decoder steps, attention and the
output layer; 3x the forward for training) against this machine's rate for a 1024^3 product in the dtype hf_seqkd
decodes in (float32 for training), at the same thread count.

`--dtype auto` decodes each search in the dtype `hf_seqkd.translation.fastest_dtype` measures as faster for its rows
(batch x beams), as `hf-seqkd-translate --dtype auto` does; `--peer_dtype bfloat16` runs OpenNMT-py in bfloat16 too.
Training always runs in float32.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_speed.py                     # all rows
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_speed.py --rows 128x2-b1     # batch 1 only

Run the batch-1 row in a process of its own when the peer's figure matters: after the batch-64 rows in the same
process, OpenNMT-py decoded one sentence at half to two thirds of its own process's speed (hf_seqkd's did not move).
    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_speed.py --dtype auto --peer_dtype bfloat16

OpenNMT-py is measured when importable (see benchmarks/peers.py; e.g. run this script with the python of a venv
that has it). Prints a markdown table of target tokens/s.
"""

import argparse
import os
import platform
import resource
import time
from dataclasses import dataclass

import torch
import transformers
from transformers.modeling_outputs import Seq2SeqLMOutput

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration
from hf_seqkd.modeling_lstm_seq2seq import DECODER_STATE_FIELD, decoder_state
from hf_seqkd.translation import resolve_dtype

try:  # run as `python benchmarks/bench_speed.py`
    from peers import OpenNMTPeer, load_opennmt
except ImportError:  # imported as benchmarks.bench_speed
    from benchmarks.peers import OpenNMTPeer, load_opennmt

SOURCE_LENGTH, TARGET_LENGTH = 30, 30


@dataclass
class Row:
    hidden: int
    layers: int
    vocab: int = 8000
    batch: int = 64
    threads: int | None = None  # None: --threads
    sentences: int = 256
    beam_sentences: int = 256
    train: bool = True


ROWS = {
    "256x2": Row(256, 2),
    "500x2": Row(500, 2),
    "1000x4": Row(1000, 4, beam_sentences=64, train=False),
    "128x2-b1": Row(128, 2, vocab=4000, batch=1, threads=1, sentences=32, beam_sentences=32, train=False),
}


def build_model(row: Row, dtype=torch.float32):
    torch.manual_seed(0)
    config = LSTMSeq2SeqConfig(
        vocab_size=row.vocab,
        embedding_size=row.hidden,
        hidden_size=row.hidden,
        encoder_layers=row.layers,
        decoder_layers=row.layers,
        dropout=0.0,
    )
    return LSTMSeq2SeqForConditionalGeneration(config).to(dtype=dtype).eval()


def source_batches(row: Row, num_sentences: int):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(4, row.vocab, (num_sentences, SOURCE_LENGTH), generator=generator)
    return [ids[i : i + row.batch] for i in range(0, num_sentences, row.batch)]


def hf_generate(model, batches, num_beams, length=TARGET_LENGTH):
    # No EOS id: every hypothesis runs exactly `length` steps without a min-length logits processor.
    kwargs = dict(num_beams=num_beams, max_length=length + 1, eos_token_id=None, do_sample=False)
    tokens = 0
    for input_ids in batches:
        out = model.generate(input_ids=input_ids, **kwargs)
        tokens += input_ids.shape[0] * (out.shape[1] - 1)
    return tokens


@torch.inference_mode()
def bare_search(model, input_ids, num_beams):
    """The decoder step loop without generate(): fixed length, no EOS handling, same arithmetic per token."""
    batch_size, vocab = input_ids.shape[0], model.config.decoder_vocab_size
    encoder_outputs = model.get_encoder()(input_ids)
    if num_beams > 1:
        encoder_outputs = type(encoder_outputs)(
            **{key: value.repeat_interleave(num_beams, dim=0) for key, value in encoder_outputs.items()}
        )
    tokens = torch.full((batch_size * num_beams, 1), model.config.decoder_start_token_id)
    state = None
    scores = torch.zeros(batch_size, num_beams)
    scores[:, 1:] = -1e9
    beam_offset = (torch.arange(batch_size) * num_beams)[:, None]
    for _ in range(TARGET_LENGTH):
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=tokens, cache=state)
        state = decoder_state(out)
        log_probs = out.logits[:, -1].float().log_softmax(-1)  # (B * K, V)
        if num_beams == 1:
            tokens = log_probs.argmax(-1, keepdim=True)
            continue
        candidates = (scores[:, :, None] + log_probs.view(batch_size, num_beams, -1)).view(batch_size, -1)
        scores, flat = candidates.topk(num_beams, dim=-1)  # (B, K)
        state.reorder_cache((flat // vocab + beam_offset).view(-1))
        tokens = (flat % vocab).view(-1, 1)
    return batch_size * TARGET_LENGTH


class FixedLogitsModel(LSTMSeq2SeqForConditionalGeneration):
    """
    generate()'s own cost: the encoder runs, but each decoder step returns the same stored logits without any
    arithmetic, so that the time is the search alone (the model's own search loops, or GenerationMixin's where a
    search falls back to them). Its tokens/s bound what the model can reach through generate() on this machine.
    """

    def forward(self, decoder_input_ids=None, encoder_outputs=None, attention_mask=None, **kwargs):
        state = kwargs.get("cache", kwargs.get("past_key_values"))
        if state is None:
            memory = encoder_outputs.last_hidden_state
            if attention_mask is None:
                attention_mask = memory.new_ones(memory.shape[:2], dtype=torch.long)
            state = self.model.decoder.init_state(encoder_outputs, attention_mask)
        state.seen_tokens += decoder_input_ids.shape[1]
        return Seq2SeqLMOutput(logits=self.stored_logits(decoder_input_ids.shape[0]), **{DECODER_STATE_FIELD: state})

    def _next_decoding_step(self, tokens, state, output_layer):
        """The decoding step of the model's own search loops (`_sample`, `_beam_search`), without arithmetic too."""
        state.seen_tokens += 1
        return self.stored_logits(tokens.shape[0])[:, -1], state

    def stored_logits(self, rows):
        if getattr(self, "fixed_logits", None) is None or self.fixed_logits.shape[0] < rows:
            generator = torch.Generator().manual_seed(3)
            self.fixed_logits = torch.randn(rows, 1, self.config.decoder_vocab_size, generator=generator)
        return self.fixed_logits[:rows]  # (rows, 1, V)


def fixed_logits_model(row: Row):
    torch.manual_seed(0)
    return FixedLogitsModel(build_model(row).config).eval()


def hf_bare(model, batches, num_beams):
    return sum(bare_search(model, input_ids, num_beams) for input_ids in batches)


def hf_train_step_fn(model, input_ids, labels):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        model(input_ids=input_ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def training_batch(row: Row):
    generator = torch.Generator().manual_seed(2)
    input_ids = torch.randint(4, row.vocab, (row.batch, SOURCE_LENGTH), generator=generator)
    labels = torch.randint(4, row.vocab, (row.batch, TARGET_LENGTH), generator=generator)
    return input_ids, labels


def interleaved_best_rates(runs: dict, rounds: int) -> dict:
    """
    Tokens/s of each run (a function returning the tokens it made), best of `rounds` rounds, each round timing every
    run once in turn, so that a busy machine slows all alike.
    """
    best = {}
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            tokens = run()
            best[key] = max(best.get(key, 0.0), tokens / (time.perf_counter() - start))
    return best


def time_training(step, tokens_per_step, steps=10, warmup=2):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return tokens_per_step / ((time.perf_counter() - start) / steps)


def matmul_rate(dtype=torch.float32, size=1024, repeats=10):
    """GFLOP/s of one size^3 product at the current thread count (best of `repeats`)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def minor_page_faults(fn) -> int:
    """Minor page faults of this process during one call of `fn`: memory the OS maps page by page as it is touched."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_token(row: Row, num_beams: int, training: bool = False) -> float:
    """Matrix-product FLOPs per target token: K decoder steps, the encoder's share, 3x the forward for training."""
    h, e, v, s, t = row.hidden, row.hidden, row.vocab, SOURCE_LENGTH, TARGET_LENGTH
    lstm = lambda inputs: 2 * 4 * h * (inputs + h)  # noqa: E731  one LSTM cell step
    step = lstm(e + h) + (row.layers - 1) * lstm(h)  # input feeding: layer 0 reads [y; h~]
    step += 2 * s * h * 2 + 2 * 2 * h * h  # scores and context over S, W_c [c; h]
    step += 2 * h * v  # output layer
    encoder = s * (lstm(e) + (row.layers - 1) * lstm(h) + 2 * h * h)  # + the keys W_a h_s
    forward = num_beams * step + encoder / t
    return 3 * forward if training else forward


def roofline(tokens_per_sec, flops, peak):
    achieved = tokens_per_sec * flops / 1e9
    return f"{achieved:.1f} ({100 * achieved / peak:.0f}%)"


DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16"}


def print_row(label, batch, threads, search, dtypes, best, roofline_cell):
    cells = [
        label,
        f"{batch}, {threads}",
        search,
        dtypes,
        f"{best['peer']:,.0f}" if "peer" in best else "-",
        f"{best['hf']:,.0f}",
        f"{best['hf'] / best['peer']:.2f}" if "peer" in best else "-",
        f"{best['bare']:,.0f}" if "bare" in best else "-",
        f"{best['floor']:,.0f}" if "floor" in best else "-",
        roofline_cell,
    ]
    print("| " + " | ".join(cells) + " |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=["256x2", "500x2", "128x2-b1"], choices=list(ROWS))
    parser.add_argument("--threads", type=int, default=2, help="Threads of the batch-64 rows.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds; each measurement keeps its best.")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "auto"],
        help="hf_seqkd's dtype for decoding; auto: the faster one measured for each search's rows (batch x beams).",
    )
    parser.add_argument(
        "--peer_dtype", default="float32", choices=["float32", "bfloat16"], help="OpenNMT-py's dtype for decoding."
    )
    parser.add_argument("--no_peers", action="store_true", help="Skip OpenNMT-py even when it is installed.")
    parser.add_argument("--skip_bare", action="store_true")
    parser.add_argument("--skip_training", action="store_true")
    args = parser.parse_args()
    peer_dtype = getattr(torch, args.peer_dtype)
    onmt = None if args.no_peers else load_opennmt()

    rates = {}
    for threads in sorted({ROWS[name].threads or args.threads for name in args.rows}):
        torch.set_num_threads(threads)
        rates[threads] = (matmul_rate(torch.float32), matmul_rate(torch.bfloat16))
    load = os.getloadavg()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"transformers {transformers.__version__}, OpenNMT-py {onmt.__version__ if onmt else 'not installed'}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; hf_seqkd in {args.dtype}, OpenNMT-py in "
        f"{args.peer_dtype}; "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; load average before {load[0]:.2f}"
    )
    for threads, (fp32, bf16) in rates.items():
        print(f"# 1024^3 matmul, {threads} thread(s): float32 {fp32:.0f} GFLOP/s, bfloat16 {bf16:.0f} GFLOP/s")
    print(
        f"# target tokens/s, best of {args.rounds} interleaved rounds; "
        "roofline: hf_seqkd GFLOP/s (% of the 1024^3 matmul rate in hf_seqkd's dtype)\n"
    )
    print(
        "| H x L, V | batch, threads | search | dtype hf_seqkd, peer | OpenNMT-py | hf_seqkd generate() | ratio "
        "| hf_seqkd bare loop | generate() alone | roofline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    footnotes = []
    for name in args.rows:
        row = ROWS[name]
        threads = row.threads or args.threads
        torch.set_num_threads(threads)
        models = {}
        floor_model = fixed_logits_model(row)
        peer = OpenNMTPeer(onmt, row.hidden, row.layers, row.vocab) if onmt else None
        if peer:
            peer.model.to(peer_dtype)
        label = f"{row.hidden}x{row.layers}, {row.vocab}"
        faults = []
        for num_beams in (1, 5):
            dtype = resolve_dtype(args.dtype, rows=row.batch * num_beams)
            if dtype not in models:
                models[dtype] = build_model(row, dtype)
            model = models[dtype]
            batches = source_batches(row, row.sentences if num_beams == 1 else row.beam_sentences)
            runs = {"hf": lambda: hf_generate(model, batches, num_beams)}
            if not args.skip_bare:
                runs["bare"] = lambda: hf_bare(model, batches, num_beams)
                runs["floor"] = lambda: hf_generate(floor_model, batches, num_beams)
            if peer:
                runs["peer"] = lambda: peer.translate_all(batches, num_beams, TARGET_LENGTH)
            warm_up = [batches[0][:2]]
            hf_generate(model, warm_up, num_beams)
            hf_bare(model, warm_up, num_beams)
            hf_generate(floor_model, warm_up, num_beams)
            if peer:
                peer.translate_all(warm_up, num_beams, TARGET_LENGTH)
            best = interleaved_best_rates(runs, args.rounds)
            search = "greedy" if num_beams == 1 else f"beam {num_beams}"
            if num_beams > 1 and row.beam_sentences != row.sentences:
                search += f" (N={row.beam_sentences})"
            flops = flops_per_token(row, num_beams)
            dtypes = f"{DTYPE_NAMES[dtype]}, {DTYPE_NAMES[peer_dtype]}" if peer else DTYPE_NAMES[dtype]
            peak = rates[threads][dtype == torch.bfloat16]
            print_row(label, row.batch, threads, search, dtypes, best, roofline(best["hf"], flops, peak))
            faults.append(f"{search} {minor_page_faults(lambda: hf_generate(model, batches[:1], num_beams)):,}")
        footnotes.append(
            f"# {label}: minor page faults of one hf_seqkd generate() call (batch {row.batch}): " + ", ".join(faults)
        )
        if row.train and not args.skip_training:
            input_ids, labels = training_batch(row)
            steps = {"hf": hf_train_step_fn(build_model(row), input_ids, labels)}
            if peer:
                # A fresh model, as for hf_seqkd: the decoding one carries its translators' state.
                steps["peer"] = OpenNMTPeer(onmt, row.hidden, row.layers, row.vocab).train_step_fn(input_ids, labels)
            best = {}
            for _ in range(args.rounds):
                for key, step in steps.items():
                    best[key] = max(best.get(key, 0.0), time_training(step, labels.numel()))
            flops = flops_per_token(row, 1, training=True)
            dtypes = "fp32, fp32" if peer else "fp32"
            print_row(label, row.batch, threads, "train", dtypes, best, roofline(best["hf"], flops, rates[threads][0]))
    print("\n" + "\n".join(footnotes))
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
