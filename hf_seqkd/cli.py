"""
`hf-seqkd-translate`: translate a file or standard input, one sentence per line, with any transformers seq2seq model.

    hf-seqkd-translate --model outputs/bible_es_en/teacher --num_beams 5 < source.es > translation.en
    hf-seqkd-translate --model user/bible-es-en-student --num_beams 1 --input source.es --output translation.en

Input and output are UTF-8 text, one sentence per line, line for line: an empty (or blank) input line gives an empty
output line, without being sent to the model. Sentences are sorted by length and batched
([`~hf_seqkd.translation.translate`]), so the whole input is read before the first translation is written.
"""

import argparse
import sys
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from .checks import check_model_path
from .translation import DTYPES, load_translation_model, resolve_dtype, translate


def build_parser() -> argparse.ArgumentParser:
    """The command-line arguments of `hf-seqkd-translate`."""
    parser = argparse.ArgumentParser(
        prog="hf-seqkd-translate",
        description="Translate text, one sentence per line, with a transformers seq2seq model (a folder or Hub id).",
    )
    parser.add_argument("--model", required=True, help="Model folder or Hub id (with its tokenizer).")
    parser.add_argument("--num_beams", type=int, default=5, help="Beam size; 1 is greedy search. Default: 5.")
    parser.add_argument("--batch_size", type=int, default=64, help="Sentences per generate call. Default: 64.")
    parser.add_argument("--input", help="Input file, one sentence per line. Default: standard input.")
    parser.add_argument("--output", help="Output file (a progress bar shows on stderr). Default: standard output.")
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Allow models whose code comes with them (not needed for hf_seqkd's LSTM models).",
    )
    parser.add_argument("--device", help="Device to run on, e.g. cpu, cuda, cuda:1. Default: cuda if available.")
    parser.add_argument(
        "--dtype",
        choices=[*DTYPES, "auto"],
        help="Cast the model, e.g. bfloat16 (faster on CPUs with AMX for batches, slower for one sentence; far "
        "slower on CPUs without bf16 instructions); auto: the faster of float32 and bfloat16 on this machine for "
        "searches of (--batch_size or fewer sentences) x --num_beams rows, measured.",
    )
    parser.add_argument("--max_new_tokens", type=int, help="Cap on output length. Default: the model's setting.")
    parser.add_argument("--max_source_length", type=int, help="Truncate longer sources to this many tokens.")
    return parser


def read_lines(path: str | None) -> list[str]:
    """
    The lines of `path` (standard input when `None` or `-`), UTF-8, without their line ends. Lines end at `\n` only
    (a `\r` before it is dropped): a lone `\r` inside a line stays in it, so that output lines match input lines.
    """
    if path is None or path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        # Bytes where there are any: the locale's encoding may not be UTF-8 (Windows, C locale); the corpora are.
        content = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        name = "standard input"
    else:
        content, name = Path(path).read_bytes(), path
    lines = content.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the end of the last line, not a line
    decoded = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{name}, line {number}: not UTF-8 ({error.reason}); convert it, e.g. with iconv."
            ) from None
        decoded.append(text[:-1] if text.endswith("\r") else text)
    return decoded


def translate_lines(lines: list[str], model, tokenizer, progress: bool = False, **translate_kwargs) -> list[str]:
    """
    Translates `lines` one for one; blank lines stay empty and are not sent to the model (which would otherwise
    invent a translation of nothing).

    Args:
        lines (`list[str]`): the sentences.
        model (`PreTrainedModel`), tokenizer (`PreTrainedTokenizerBase`): the model and its tokenizer.
        progress (`bool`, *optional*, defaults to `False`): show a progress bar on stderr.
        translate_kwargs: passed to [`~hf_seqkd.translation.translate`] (`num_beams`, `batch_size`, ...).

    Returns:
        `list[str]`: one translation per line, without newlines inside.
    """
    indices = [i for i, line in enumerate(lines) if line.strip()]
    outputs = [""] * len(lines)
    if indices:
        texts = translate([lines[i] for i in indices], model, tokenizer, progress=progress, **translate_kwargs)
        for index, text in zip(indices, texts):
            # A newline inside a translation would shift every later line against its source.
            outputs[index] = " ".join(text.splitlines())
    return outputs


def main(argv: list[str] | None = None) -> int:
    """
    Runs `hf-seqkd-translate`.

    Args:
        argv (`list[str]`, *optional*): the arguments; defaults to `sys.argv[1:]`.

    Returns:
        `int`: the exit status, 0.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("num_beams", "batch_size", "max_new_tokens", "max_source_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} {value}: must be >= 1.")
    if args.input not in (None, "-") and not Path(args.input).is_file():
        parser.error(f"--input {args.input}: no such file.")
    try:
        check_model_path(args.model, "--model")
        lines = read_lines(args.input)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    bars_were_enabled = transformers_logging.is_progress_bar_enabled()
    if args.output is None:
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar either
    try:
        model, tokenizer = load_translation_model(args.model, device=device, trust_remote_code=args.trust_remote_code)
    finally:
        if bars_were_enabled:
            transformers_logging.enable_progress_bar()
    if args.dtype is not None:
        # `auto` measures at this search's size: on CPUs with AMX bfloat16 pays for batches, not for one sentence.
        sentences = max(1, sum(1 for line in lines if line.strip()))
        rows = min(args.batch_size, sentences) * args.num_beams
        model.to(resolve_dtype(args.dtype, model.device, rows=rows))
    translations = translate_lines(
        lines,
        model,
        tokenizer,
        # A bar on stderr would interleave with translations written to the same terminal.
        progress=args.output is not None,
        num_beams=args.num_beams,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        max_source_length=args.max_source_length,
    )
    text = "".join(translation + "\n" for translation in translations)
    if args.output is None:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(encoding="utf-8")
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
