"""One run on a machine with a GPU: does hf_seqkd decode, distil, train and run fast on CUDA? A markdown report.

Nobody had run the toolkit on CUDA before this script. Four sections; each catches its own errors (the traceback goes
into the report and the next part runs), down to one dtype or one model of a section:

1. Decoding with the bundled teacher (models/bible-es-en-teacher) on the first 500 test sentences, float32 and
   bfloat16: greedy and beam 5 through generate() in the model's own search loops, and again through transformers'
   GenerationMixin loops (forced by `output_scores=True, return_dict_in_generate=True`): sentences that differ between
   the two (expected: none), corpus BLEU of each (sacrebleu), and the device's float32 greedy translations against
   the CPU's (a few may differ by rounding).
2. Seq-KD data on the device: `hf_seqkd.seq_kd.distill_in_shards` (what recipes/distill_data.py runs), the teacher
   with K = 5 on the first 1,000 training sentences, float32 and bfloat16: sentences/s, BLEU of the new targets
   against the references, and the first 32 rows made again on the CPU.
3. Training through the recipe: `accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml
   recipes/train_student.py` with the quickstart's config (Seq-KD data made on the fly by the teacher), cut to 3,000
   training pairs and at most 300 steps or 60 s of training, `bf16: true`: steps/s, first and last training loss,
   validation and test BLEU, and the saved student loaded with AutoModelForSeq2SeqLM and generating on the device.
   A run that fails is reported and run again in float32 (`distill_dtype: float32`, `bf16: false`).
4. Speed, on bench_speed's protocol (random weights, 30 source ids, exactly 30 target tokens, no EOS): target
   tokens/s of the paper's teacher (4x1000) and students (2x500, 2x300) at V = 50,000, greedy and beam 5, batch 64
   and 1, float32 and bfloat16, best of 3 synchronized rounds after a warm-up; and the paper's relation, student
   greedy >= 10x the teacher's beam search.

    python3 benchmarks/gpu_check.py --out $OUT/gpu_check.md       # on the GPU machine: about 4-5 minutes
    OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --smoke --out /tmp/gpu_check_smoke.md

`--smoke` shrinks every size (about a minute on one CPU thread), to try the script before GPU time is spent;
`--sections 1 4` runs some sections only (by default 1 2 4 3: the training, the longest, last; it gets what is left of
`--budget`, 300 s, and at least 60 s). Progress lines carry the seconds since the start, and the report is
rewritten to `--out` after every section, so a run that is cut off keeps what finished. It uses the hf_seqkd that
Python imports (installed, as README says); hf_seqkd needs `datasets` (with dill and multiprocess), which a GPU image
may lack: README (On a GPU) has the command that installs them from wheels on a machine without network.
"""

import argparse
import contextlib
import copy
import functools
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.gettempdir(), f"gpu_check_{os.getpid()}")  # made by main(), removed at its end
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_DATASETS_CACHE", str(WORK / "datasets_cache"))  # nothing served from an earlier run's cache
for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
    os.environ.setdefault(name, "1")  # offline; no progress bars to flood the log

import torch  # noqa: E402

TEACHER = REPO / "models" / "bible-es-en-teacher"
START = time.time()
SIZES = {  # name: (full, --smoke)
    "test": (500, 24),  # test sentences decoded (section 1)
    "distill": (1000, 48),  # training sentences distilled (section 2)
    "compare": (32, 8),  # of them, made again on the CPU
    "train_pairs": (3000, 128),  # training pairs of the student (section 3), Seq-KD data made by the recipe
    "eval_pairs": (200, 8),  # validation and test sentences of the recipe
    "steps": (300, 8),  # at most this many optimizer steps ...
    "train_seconds": (60, 60),  # ... or seconds of training
    "eval_steps": (150, 4),  # validation BLEU (and a checkpoint) every this many steps
    "logging_steps": (25, 2),
    "train_timeout": (200, 300),  # at most this many seconds before the recipe is killed
    "vocab": (50000, 2000),  # speed (section 4): vocabulary, and the paper's sizes divided by `scale`
    "scale": (1, 10),
    "batch": (64, 16),
    "sentences": ({64: 256, 1: 16}, {16: 16, 1: 2}),  # per batch size
    "rounds": (3, 1),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.time() - START:4.0f}s] {message}", flush=True)


class Report:
    """Markdown lines, rewritten to `path` after every addition, so that a run cut off keeps what it measured."""

    def __init__(self, path):
        self.lines, self.path, self.failures = [], Path(path) if path else None, 0

    def add(self, *lines):
        self.lines.extend(lines)
        if self.path:
            self.path.write_text("\n".join(self.lines) + "\n")

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
        self.add(*("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows))

    @contextlib.contextmanager
    def attempt(self, what: str):
        """Catches an error of one part: its traceback goes into the report, and the caller goes on."""
        try:
            yield
        except Exception:
            self.failures += 1
            progress(f"FAILED: {what}\n{traceback.format_exc()}")
            self.add("", f"**FAILED: {what}**", "```", traceback.format_exc().rstrip(), "```", "")


def timed(device, function, *args, **kwargs):
    """(seconds, result) of `function`, synchronized with the device before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def bleu(hypotheses, references) -> float:
    from sacrebleu.metrics import BLEU

    return BLEU().corpus_score(list(hypotheses), [list(references)]).score


def differing(a, b) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


@functools.cache
def bundled_corpus(train_pairs: int, eval_pairs: int):
    """The bundled Spanish-English Bible through the recipes' loader (`datasets`' JSON reader)."""
    from hf_seqkd.data import DataArguments, load_parallel_dataset

    arguments = DataArguments("bible_es_en", max_train_samples=train_pairs, max_eval_samples=eval_pairs)
    return load_parallel_dataset(arguments)


def load_teacher():
    from transformers import AutoTokenizer

    from hf_seqkd import LSTMSeq2SeqForConditionalGeneration

    return LSTMSeq2SeqForConditionalGeneration.from_pretrained(TEACHER).eval(), AutoTokenizer.from_pretrained(TEACHER)


def count_own_loops(model) -> dict:
    """Counts the generate() calls that ran in the model's own search loops (`_direct_search_limits` not None)."""
    counts, original = {"own": 0, "GenerationMixin": 0}, model._direct_search_limits

    def counting(*args, **kwargs):
        limits = original(*args, **kwargs)
        counts["own" if limits is not None else "GenerationMixin"] += 1
        return limits

    model._direct_search_limits = counting
    return counts


def decode(model, tokenizer, sources, num_beams, mixin_loops=False, batch_size=64):
    """translate()'s batching (sorted by length, sources truncated); `mixin_loops` asks for scores, which sends
    generate() to GenerationMixin's loops."""
    from hf_seqkd.utils import length_sorted_batches, source_length_limit

    encoded = tokenizer(list(sources), truncation=True, max_length=source_length_limit(model, tokenizer))["input_ids"]
    kwargs = {"num_beams": num_beams, "do_sample": False}
    if mixin_loops:
        kwargs.update(output_scores=True, return_dict_in_generate=True)
    texts = [""] * len(encoded)
    with torch.inference_mode():
        for indices in length_sorted_batches([len(ids) for ids in encoded], batch_size):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in indices]}, return_tensors="pt").to(model.device)
            output = model.generate(**batch, **kwargs)
            sequences = output.sequences if mixin_loops else output
            for i, text in zip(indices, tokenizer.batch_decode(sequences, skip_special_tokens=True)):
                texts[i] = text.strip()
    return texts


def section_decoding(args, size, report, device):
    cpu_model, tokenizer = load_teacher()
    test = bundled_corpus(size["distill"], size["test"])["test"]["translation"]
    sources, references = [pair["es"] for pair in test], [pair["en"] for pair in test]
    report.add(f"Teacher {TEACHER.name}, first {len(sources)} test sentences, batch 64, max_length 128.", "")
    rows, outputs, examples = [], {}, []
    for dtype_name, dtype in DTYPES.items():
        with report.attempt(f"decoding in {dtype_name}"):
            model = copy.deepcopy(cpu_model).to(device=device, dtype=dtype)
            counts = count_own_loops(model)
            decode(model, tokenizer, sources[:8], 5)  # warm-up
            for num_beams in (1, 5):
                for loop in ("own", "GenerationMixin"):
                    counts.update(own=0, GenerationMixin=0)
                    seconds, texts = timed(device, decode, model, tokenizer, sources, num_beams, loop != "own")
                    outputs[dtype_name, num_beams, loop] = texts
                    own = outputs[dtype_name, num_beams, "own"]
                    diff = "-" if loop == "own" else len(differing(own, texts))
                    search = "greedy" if num_beams == 1 else f"beam {num_beams}"
                    ran = f"{counts['own']} own, {counts['GenerationMixin']} GenerationMixin"
                    score = f"{bleu(texts, references):.2f}"
                    rows.append([dtype_name, search, loop, score, f"{seconds:.2f}", ran, diff])
                    progress(f"  {dtype_name} {search}, {loop} loops: {seconds:.1f} s, {diff} differ")
                    for i in differing(own, texts)[:2]:
                        examples.append(f"- {dtype_name} {search}, sentence {i}: `{own[i]}` / `{texts[i]}`")
    header = ["dtype", "search", "loops asked for", "BLEU", "seconds", "generate() calls ran in", "differ from own"]
    report.table(header, rows)
    report.add(*(["", "Sentences that differ (own loops / GenerationMixin's):", *examples] if examples else []))
    with report.attempt("float32 greedy on the CPU"):
        seconds, cpu_texts = timed(torch.device("cpu"), decode, cpu_model, tokenizer, sources, 1)
        ours = outputs["fp32", 1, "own"]
        diff = differing(ours, cpu_texts)
        report.add("", f"CPU float32 greedy ({torch.get_num_threads()} threads, {seconds:.1f} s): BLEU "
                   f"{bleu(cpu_texts, references):.2f} ({device}: {bleu(ours, references):.2f}); **{len(diff)} of "
                   f"{len(sources)} sentences differ** between {device} and CPU.")  # fmt: skip
        report.add(*(f"- sentence {i}: {device} `{ours[i]}`, CPU `{cpu_texts[i]}`" for i in diff[:3]))


def section_seq_kd(args, size, report, device):
    from hf_seqkd.seq_kd import SequenceDistillationConfig, distill_dataset, distill_in_shards
    from hf_seqkd.translation import resolve_dtype

    cpu_model, tokenizer = load_teacher()
    train = bundled_corpus(size["distill"], size["test"])["train"]
    config = SequenceDistillationConfig("seq_kd", 5, batch_size=64)
    report.add(f"`distill_in_shards`, Seq-KD, K = 5, batch 64, the first {len(train)} training sentences in one "
               f"shard; `--dtype auto` chooses {resolve_dtype('auto', device)} on {device}.", "")  # fmt: skip
    rows, targets = [], {}
    for dtype_name, dtype in DTYPES.items():
        with report.attempt(f"Seq-KD data in {dtype_name}"):
            teacher = copy.deepcopy(cpu_model).to(device=device, dtype=dtype)
            folder = WORK / f"seq_kd_{dtype_name}"
            wall, (data, stats) = timed(
                device, distill_in_shards, train, teacher, tokenizer, config, "es", "en", folder, len(train)
            )
            targets[dtype_name] = [pair["en"] for pair in data["translation"]]
            per_sec, score = stats["sentences_per_sec"], bleu(targets[dtype_name], data["reference"])
            rows.append([dtype_name, len(data), f"{per_sec:.1f}", f"{wall:.1f}", f"{score:.2f}"])
            progress(f"  Seq-KD in {dtype_name}: {per_sec:.1f} sentences/s")
    report.table(["dtype", "rows", "sentences/s", "wall s", "BLEU of the new targets against the references"], rows)
    with report.attempt("the first rows again on the CPU"):
        if len(targets) == 2:
            report.add("", f"float32 and bfloat16 targets differ in {len(differing(*targets.values()))} of "
                       f"{len(train)} rows. Row 0: `{targets['fp32'][0]}`")  # fmt: skip
        n, cpu = size["compare"], torch.device("cpu")
        seconds, on_cpu = timed(cpu, distill_dataset, train.select(range(n)), cpu_model, tokenizer, config, "es", "en")
        diff = differing(targets["fp32"][:n], [pair["en"] for pair in on_cpu["translation"]])
        report.add(f"The first {n} rows made again on the CPU in float32 ({seconds:.1f} s): {len(diff)} differ from "
                   f"{device}'s float32 rows {diff[:10]}.")  # fmt: skip


def run_streaming(command, env, timeout, log_path):
    """Runs `command` in the repository, echoing its output as it comes; kills it (its process group) after
    `timeout` s. Returns the exit status (or why there is none) and the lines it printed."""
    lines = []
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, start_new_session=True)  # fmt: skip

        def pump():
            for line in process.stdout:
                log.write(line)
                lines.append(line.rstrip()[:300])
                print("    | " + lines[-1], flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the process group started for it above
            code = f"killed after {timeout} s"
            process.wait()
        reader.join(10)
    return code, lines


def section_training(args, size, report, device):
    import yaml

    out = WORK / "student"
    changes = dict(output_dir=str(out), max_train_samples=size["train_pairs"], max_eval_samples=size["eval_pairs"],
                   max_steps=size["steps"], max_train_seconds=size["train_seconds"], eval_strategy="steps",
                   eval_steps=size["eval_steps"], save_strategy="steps", save_steps=size["eval_steps"],
                   logging_steps=size["logging_steps"], bf16=True, disable_tqdm=True)  # fmt: skip
    if device.type == "cpu":
        changes["use_cpu"] = True  # transformers refuses bf16 without a GPU unless told to train on the CPU
    config = yaml.safe_load((REPO / "recipes/bible_es_en/quickstart/config.yaml").read_text())
    config.pop("intermediate_save_steps", None)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    command = [*launch, "recipes/accelerate_configs/single_gpu.yaml", "recipes/train_student.py"]
    report.add(f"`accelerate launch --config_file recipes/accelerate_configs/single_gpu.yaml recipes/train_student.py "
               f"--config` recipes/bible_es_en/quickstart/config.yaml without `intermediate_save_steps`, with "
               f"`{json.dumps(changes)}`.", "")  # fmt: skip
    # Should bfloat16 fail (the teacher's Seq-KD data in `distill_dtype: auto`, or bf16 training): again in float32.
    for retry in ({}, {"distill_dtype": "float32", "bf16": False, "output_dir": str(out) + "_fp32"}):
        (WORK / "student.yaml").write_text(yaml.safe_dump({**config, **changes, **retry}))
        run = [*command, "--config", str(WORK / "student.yaml")]
        timeout = max(60, min(size["train_timeout"], START + args.budget - time.time()))  # what is left of --budget
        wall, (code, lines) = timed(device, run_streaming, run, os.environ, round(timeout), WORK / "train.log")
        report.add(f"Exit status {code} after {wall:.0f} s{f' with {retry}' if retry else ''} (start-up, Seq-KD "
                   "data and the test evaluation included).")  # fmt: skip
        if code == 0:
            break
        report.add("", "The last lines it printed:", "```", *lines[-40:], "```", "")
        if not isinstance(code, int) or retry:  # killed at its time limit, or failed in float32 too
            raise RuntimeError(f"recipes/train_student.py: {code}")
        report.failures += 1
    out = Path(retry.get("output_dir", out))
    with report.attempt("the recipe's results"):
        train = json.loads((out / "train_results.json").read_text())
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        losses = [(entry["step"], round(entry["loss"], 3)) for entry in history if "loss" in entry]
        bleus = [(entry["step"], round(entry["eval_bleu"], 2)) for entry in history if "eval_bleu" in entry]
        steps, seconds = losses[-1][0], train["train_runtime"]
        test = json.loads((out / "eval_results.json").read_text())
        test = {key: round(value, 2) for key, value in test.items() if key.startswith(("bleu_g", "bleu_b", "words"))}
        report.add(f"- {steps} steps in {seconds:.1f} s of `train_runtime` (evaluations included): "
                   f"{steps / seconds:.2f} steps/s, {train['train_samples_per_second']:.0f} pairs/s",
                   f"- training loss (step, loss): first logged {losses[0]}, last {losses[-1]}",
                   f"- validation BLEU (step, BLEU): {bleus}",
                   f"- test split ({size['eval_pairs']} sentences), eval_results.json: {test}")  # fmt: skip
    with report.attempt("loading the saved student with AutoModelForSeq2SeqLM"):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        import hf_seqkd  # noqa: F401  registers the model with the Auto classes
        from hf_seqkd.translation import translate

        student = AutoModelForSeq2SeqLM.from_pretrained(out).to(device).eval()
        sources = [pair["es"] for pair in bundled_corpus(size["distill"], size["test"])["test"]["translation"][:2]]
        texts = translate(sources, student, AutoTokenizer.from_pretrained(out), num_beams=5)
        report.add(f"- the saved student, loaded with AutoModelForSeq2SeqLM ({type(student).__name__}, "
                   f"{student.dtype}, {student.device}), beam 5: {[text[:150] for text in texts]}")  # fmt: skip


def section_speed(args, size, report, device):
    try:  # run as `python benchmarks/gpu_check.py`
        from bench_speed import TARGET_LENGTH, Row, build_model, hf_generate, interleaved_best_rates, source_batches
    except ImportError:  # imported as benchmarks.gpu_check
        from benchmarks.bench_speed import (
            TARGET_LENGTH,
            Row,
            build_model,
            hf_generate,
            interleaved_best_rates,
            source_batches,
        )

    scale, vocab, deadline = size["scale"], size["vocab"], START + args.budget
    shapes = {"teacher": (4, 1000 // scale), "student": (2, 500 // scale), "small student": (2, 300 // scale)}
    report.add(f"Random weights, V = {vocab:,}, E = H, 30 source ids, exactly {TARGET_LENGTH} target tokens (no EOS); "
               f"target tokens/s, best of {size['rounds']} synchronized rounds after a warm-up.", "")  # fmt: skip
    rates, rows = {}, []
    for role, (layers, hidden) in shapes.items():
        with report.attempt(f"speed of the {role}, {layers}x{hidden}"):
            base = build_model(Row(hidden, layers, vocab=vocab)).to(device)
            params = sum(p.numel() for p in base.parameters()) / 1e6
            for dtype_name, dtype in DTYPES.items():
                model = base if dtype == torch.float32 else copy.deepcopy(base).to(dtype)
                for batch in (size["batch"], 1):
                    row = Row(hidden, layers, vocab=vocab, batch=batch)
                    batches = [ids.to(device) for ids in source_batches(row, size["sentences"][batch])]
                    cells = []
                    for num_beams in (1, 5):
                        if time.time() > deadline:
                            cells.append("skipped: out of time")
                            continue
                        hf_generate(model, batches[:1], num_beams)  # warm-up
                        run = functools.partial(timed, device, hf_generate, model, batches, num_beams)
                        rate = interleaved_best_rates({"hf": lambda: run()[1]}, size["rounds"])["hf"]
                        rates[role, dtype_name, batch, num_beams] = rate
                        cells.append(f"{rate:,.0f}")
                    rows.append([f"{role}, {layers}x{hidden}", f"{params:.1f}M", batch, dtype_name, *cells])
                    progress(f"  {role} {layers}x{hidden}, {dtype_name}, batch {batch}: {cells} tokens/s")
            del base, model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    report.table(["model", "parameters", "batch", "dtype", "greedy tokens/s", "beam 5 tokens/s"], rows)
    report.add("", "Student greedy search against the teacher's beam search (the paper: >= 10x):", "")
    ratios = []
    for batch in (size["batch"], 1):
        for dtype_name in DTYPES:
            teacher = rates.get(("teacher", dtype_name, batch, 5))
            cells = [rates.get((role, dtype_name, batch, 1)) for role in ("student", "small student")]
            ratios.append([batch, dtype_name, *(f"{r / teacher:.1f}x" if r and teacher else "-" for r in cells)])
    names = [f"{role} {layers}x{hidden} greedy / teacher beam 5" for role, (layers, hidden) in shapes.items()][1:]
    report.table(["batch", "dtype", *names], ratios)


SECTIONS = {
    1: ("Decoding on the device: own search loops against GenerationMixin's, device against CPU", section_decoding),
    2: ("Seq-KD data on the device (hf_seqkd.seq_kd.distill_in_shards)", section_seq_kd),
    3: ("Training a student through recipes/train_student.py", section_training),
    4: ("Decoding speed at the paper's sizes", section_speed),
}


def header(args, device) -> list[str]:
    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    git = ["git", "describe", "--always", "--dirty"]
    try:
        commit = subprocess.run(git, cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown (no git)"
    gpu = "none"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}"
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    cpu = next((line.split(":", 1)[1] for line in cpuinfo if line.startswith("model name")), platform.machine())
    packages = "transformers accelerate datasets tokenizers huggingface_hub safetensors sacrebleu pyarrow fsspec"
    packages += " numpy pandas dill multiprocess xxhash"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return [
        f"# hf_seqkd on {device}: the GPU check{' (smoke sizes)' if args.smoke else ''}",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M %Z')}; hf_seqkd {commit} ({REPO}); sections {args.sections}",
        f"- machine: {platform.node()}, {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        f"- GPU: {gpu}; device used: {device}",
        f"- Python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn}, "
        f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32})",
        "- " + ", ".join(f"{name} {version(name)}" for name in packages.split()),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu, ...")
    parser.add_argument("--sections", nargs="+", type=int, default=[1, 2, 4, 3], choices=list(SECTIONS),
                        help="The sections to run, in this order (the training, the longest, last).")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: a check of this script, e.g. on a CPU.")
    parser.add_argument("--out", help="Also write the report to this file (rewritten after every section).")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's).")
    budget = (
        "Seconds the run aims at: past them section 4 skips what is left; the training gets what is left (>= 60 s)."
    )
    parser.add_argument("--budget", type=float, default=300, help=budget)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, size = torch.device(args.device), {name: sizes[args.smoke] for name, sizes in SIZES.items()}
    report = Report(args.out)
    WORK.mkdir(parents=True)
    with report.attempt("the header"):
        report.add(*header(args, device))
    progress(f"work folder {WORK} (removed at the end), device {device}")
    for number in args.sections:
        title, function = SECTIONS[number]
        progress(f"section {number}: {title}")
        report.add("", f"## {number}. {title}", "")
        start, failures = time.time(), report.failures
        with report.attempt(f"section {number}"):
            function(args, size, report, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        status = "FAILED in part" if report.failures > failures else "done"
        report.add("", f"_Section {number}: {status}, {time.time() - start:.0f} s._")
        progress(f"section {number}: {status}, {time.time() - start:.0f} s")
    report.add("", f"_Total: {time.time() - START:.0f} s._")
    print("\n" + "\n".join(report.lines), flush=True)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
