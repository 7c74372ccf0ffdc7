"""Decoding and training speed of the LSTM seq2seq on the protocol of ../shared/BENCHMARKS.md.

Protocol: Luong general attention, input feeding, unidirectional LSTMs, E = H, V = 8000, dropout 0, random weights
(seed 0); N source sentences of 30 random ids, batch 64, exactly 30 output tokens each (min = max new tokens);
greedy (transformers' greedy path, not a one-beam beam search) and beam 5; only the search is timed. Training:
batches of 64 pairs 30 -> 30, forward + loss + backward + Adam step, mean of 10 steps after 2 warm-up steps.
Decoding is measured twice: through `generate()` and through a bare loop of decoder steps (no GenerationMixin), to
show what transformers' generation machinery costs per step.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_speed.py --threads 2

Prints a markdown table of target tokens/s.
"""

import argparse
import os
import platform
import time

import torch

from hf_seqkd import LSTMSeq2SeqConfig, LSTMSeq2SeqForConditionalGeneration
from hf_seqkd.modeling_lstm_seq2seq import decoder_state

SIZES = {"256x2": (256, 2), "500x2": (500, 2), "1000x4": (1000, 4)}
VOCAB, SOURCE_LENGTH, TARGET_LENGTH, BATCH = 8000, 30, 30, 64


def build_model(hidden, layers, device, dtype=torch.float32):
    torch.manual_seed(0)
    config = LSTMSeq2SeqConfig(
        vocab_size=VOCAB,
        embedding_size=hidden,
        hidden_size=hidden,
        encoder_layers=layers,
        decoder_layers=layers,
        dropout=0.0,
    )
    return LSTMSeq2SeqForConditionalGeneration(config).to(device=device, dtype=dtype).eval()


def source_batches(num_sentences, device):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(4, VOCAB, (num_sentences, SOURCE_LENGTH), generator=generator)
    return [ids[i : i + BATCH].to(device) for i in range(0, num_sentences, BATCH)]


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def time_generate(model, batches, num_beams, device):
    # No EOS id: every hypothesis runs exactly TARGET_LENGTH steps without a min-length logits processor.
    kwargs = dict(num_beams=num_beams, max_length=TARGET_LENGTH + 1, eos_token_id=None, do_sample=False)
    model.generate(input_ids=batches[0][:4], **kwargs)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    tokens = 0
    for input_ids in batches:
        out = model.generate(input_ids=input_ids, **kwargs)
        tokens += input_ids.shape[0] * (out.shape[1] - 1)
    synchronize(device)
    return tokens / (time.perf_counter() - start)


@torch.inference_mode()
def bare_search(model, input_ids, num_beams):
    """The decoder step loop without GenerationMixin: fixed length, no EOS handling, same arithmetic per token."""
    batch_size = input_ids.shape[0]
    encoder_outputs = model.get_encoder()(input_ids)
    if num_beams > 1:
        encoder_outputs = type(encoder_outputs)(
            **{key: value.repeat_interleave(num_beams, dim=0) for key, value in encoder_outputs.items()}
        )
    tokens = torch.full((batch_size * num_beams, 1), model.config.decoder_start_token_id, device=input_ids.device)
    state = None
    scores = torch.zeros(batch_size, num_beams, device=input_ids.device)
    scores[:, 1:] = -1e9
    beam_offset = (torch.arange(batch_size, device=input_ids.device) * num_beams)[:, None]
    for _ in range(TARGET_LENGTH):
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=tokens, cache=state)
        state = decoder_state(out)
        log_probs = out.logits[:, -1].float().log_softmax(-1)  # (B * K, V)
        if num_beams == 1:
            tokens = log_probs.argmax(-1, keepdim=True)
            continue
        candidates = (scores[:, :, None] + log_probs.view(batch_size, num_beams, -1)).view(batch_size, -1)
        scores, flat = candidates.topk(num_beams, dim=-1)  # (B, K)
        state.reorder_cache((flat // VOCAB + beam_offset).view(-1))
        tokens = (flat % VOCAB).view(-1, 1)


def time_bare(model, batches, num_beams, device):
    bare_search(model, batches[0][:4], num_beams)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for input_ids in batches:
        bare_search(model, input_ids, num_beams)
    synchronize(device)
    return sum(b.shape[0] for b in batches) * TARGET_LENGTH / (time.perf_counter() - start)


def time_training(model, device, steps=10, warmup=2):
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(2)
    input_ids = torch.randint(4, VOCAB, (BATCH, SOURCE_LENGTH), generator=generator).to(device)
    labels = torch.randint(4, VOCAB, (BATCH, TARGET_LENGTH), generator=generator).to(device)
    times = []
    for step in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    model.eval()
    return BATCH * TARGET_LENGTH / (sum(times) / len(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--num_sentences", type=int, default=256)
    parser.add_argument("--num_sentences_large", type=int, default=64, help="N for beam search at 1000x4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--skip_bare", action="store_true")
    parser.add_argument("--skip_training", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)

    machine = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'CPU'}"
    print(
        f"# {machine}, torch {torch.__version__}, {args.threads} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, {args.dtype}, target tokens/s\n"
    )
    print("| H, L | greedy generate() | beam 5 generate() | greedy bare loop | beam 5 bare loop | train |")
    print("|---|---|---|---|---|---|")
    for name in args.sizes:
        hidden, layers = SIZES[name]
        model = build_model(hidden, layers, device, dtype)
        batches = source_batches(args.num_sentences, device)
        beam_batches = batches
        beam_note = ""
        if name == "1000x4" and device.type == "cpu":
            beam_batches = source_batches(args.num_sentences_large, device)
            beam_note = f" (N={args.num_sentences_large})"
        row = [
            f"{time_generate(model, batches, 1, device):,.0f}",
            f"{time_generate(model, beam_batches, 5, device):,.0f}{beam_note}",
        ]
        if args.skip_bare:
            row += ["-", "-"]
        else:
            row += [
                f"{time_bare(model, batches, 1, device):,.0f}",
                f"{time_bare(model, beam_batches, 5, device):,.0f}",
            ]
        skip_training = args.skip_training or name == "1000x4" or dtype != torch.float32
        row.append("-" if skip_training else f"{time_training(model, device):,.0f}")
        print(f"| {hidden}, {layers} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
