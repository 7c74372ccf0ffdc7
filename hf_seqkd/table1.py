"""Kim & Rush (2016), Table 1 on your data: its rows from evaluation results, as JSON, markdown and a speed plot.

Each row comes from one `eval_results.json` written by [`~hf_seqkd.evaluation.evaluate_model`] (or
recipes/evaluate.py). recipes/table1/run.py trains the models and calls these functions at the end.
"""

import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from .modes import MODES

# The paper's rows, in its order: the teacher, its Seq-Inter fine-tuning, a student per training mode, the pruned
# students.
PRUNED_ROWS = {ratio: f"pruned_{ratio}" for ratio in (50, 80, 90)}
TABLE1_MODELS = ("teacher", "seq_inter_teacher", *MODES, *PRUNED_ROWS.values())
TABLE1_KEYS = (
    "model",
    "bleu_greedy",
    "bleu_beam",
    "ppl",
    "p_beam_output",
    "params_nonzero",
    "words_per_sec_greedy",
    "words_per_sec_beam",
)
DESCRIPTIONS = {
    "teacher": "teacher",
    "seq_inter_teacher": "teacher + Seq-Inter fine-tuning",
    **{name: mode.table_row for name, mode in MODES.items()},
    **{row: f"Seq-KD student, {ratio}% pruned" for ratio, row in PRUNED_ROWS.items()},
    # recipes/table1/transformer_student.yaml: two Seq-KD students trained for the same wall time
    "lstm_seq_kd_timed": "2x128 LSTM student, Seq-KD, timed",
    "marian_seq_kd": "transformer (Marian) student, Seq-KD, same time",
}
# What the paper reports for these rows (WMT14 En-De, 4x1000 teacher, 2x500 students; BLEU greedy / beam 5),
# for a side-by-side look; rows it does not give are absent.
PAPER_BLEU = {
    "teacher": (17.7, 19.5),
    "baseline": (14.7, 17.6),
    "word_kd": (15.4, 17.7),
    "seq_kd": (18.9, 19.0),
    "combined": (18.8, 19.2),
}

# The paper's relations between its rows, as this project checks them on a run (the thresholds are those of the
# Table 1 issue: the paper's own gaps, e.g. Seq-KD +4.2 BLEU over the baseline, made looser for a small CPU run).
SEQ_KD_GAIN, BASELINE_FLOOR, COMBINED_SLACK, PRUNED_SLACK, STUDENT_SPEEDUP = 2.0, 10.0, 0.3, 1.0, 10.0


def describe_software() -> str:
    """The versions of the libraries a result depends on, e.g. `torch 2.13.0+cpu, transformers 5.24.0, ...`."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "datasets", "accelerate", "tokenizers", "sacrebleu")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return f"Python {platform.python_version()}, " + ", ".join(found)


def training_record(output_dir: str | Path, progress_file: str | Path | None = None) -> dict:
    """
    How a trained model got there, from the `trainer_state.json` its recipe saved and the Table 1 driver's progress
    file: `summary` (`epochs_trained`, `best_epoch` by validation BLEU, `train_minutes` over all sessions; `None`
    where unknown) and `curve`, the validation BLEU after each evaluation as `[epoch, bleu]` pairs.
    """
    state_file = Path(output_dir) / "trainer_state.json"
    history = json.loads(state_file.read_text())["log_history"] if state_file.is_file() else []
    curve = [[entry["epoch"], entry["eval_bleu"]] for entry in history if "eval_bleu" in entry]
    epochs = max((entry.get("epoch", 0.0) for entry in history), default=None)
    best = max(curve, key=lambda point: point[1])[0] if curve else None
    minutes = None
    if progress_file is not None and Path(progress_file).is_file():
        minutes = json.loads(Path(progress_file).read_text()).get("minutes")
    return {"summary": {"epochs_trained": epochs, "best_epoch": best, "train_minutes": minutes}, "curve": curve}


def table1_row(model: str, results: Mapping) -> dict:
    """
    One row of the table from an evaluation result.

    Args:
        model (`str`): the row's name (one of `TABLE1_MODELS` for the paper's rows; any name works).
        results (`Mapping`): what [`~hf_seqkd.evaluation.evaluate_model`] returned (or its `eval_results.json`).

    Returns:
        `dict` with exactly the keys of `TABLE1_KEYS`.
    """
    missing = [key for key in TABLE1_KEYS[1:] if key not in results]
    if missing:
        raise ValueError(
            f"The evaluation results of {model!r} lack {missing}; evaluate the model with recipes/evaluate.py "
            "(hf_seqkd.evaluation.evaluate_model) to get every column."
        )
    return {"model": model, **{key: results[key] for key in TABLE1_KEYS[1:]}}


def collect_rows(result_files: Mapping[str, str | Path]) -> list[dict]:
    """Rows from `{model: path of its eval_results.json}`, in the order given; names the missing files."""
    missing = {model: str(path) for model, path in result_files.items() if not Path(path).is_file()}
    if missing:
        raise FileNotFoundError(f"No evaluation results for {sorted(missing)}: {missing}")
    return [table1_row(model, json.loads(Path(path).read_text())) for model, path in result_files.items()]


def render_markdown(rows: Sequence[Mapping], machine: str = "", signature: str = "") -> str:
    """
    The table in markdown: BLEU greedy / beam (and what beam adds), perplexity of the references, p(t = ŷ) of the
    beam output, nonzero parameters and how many times fewer than the teacher's, words/s, and the paper's BLEU.
    """
    teacher = next((row for row in rows if row["model"] == "teacher"), None)
    training = any("epochs_trained" in row for row in rows)  # rows of the Table 1 driver say how they trained
    lines = [
        "| model | | BLEU greedy | BLEU beam | Δ beam | ppl | p(t=ŷ) beam | params (nonzero) | teacher/params "
        "| words/s greedy | words/s beam | paper BLEU greedy / beam |"
        + (" epochs (best) | minutes |" if training else ""),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if training else ""),
    ]
    for row in rows:
        ratio = (
            f"{teacher['params_nonzero'] / row['params_nonzero']:.1f}x" if teacher and row["params_nonzero"] else ""
        )
        paper = PAPER_BLEU.get(row["model"])
        cells = [
            f"`{row['model']}`",
            DESCRIPTIONS.get(row["model"], ""),
            f"{row['bleu_greedy']:.2f}",
            f"{row['bleu_beam']:.2f}",
            f"{row['bleu_beam'] - row['bleu_greedy']:+.2f}",
            f"{row['ppl']:.1f}" if math.isfinite(row["ppl"]) else "inf",
            f"{100 * row['p_beam_output']:.2f}%",
            f"{row['params_nonzero'] / 1e6:.2f}M",
            ratio,
            f"{row['words_per_sec_greedy']:,.0f}",
            f"{row['words_per_sec_beam']:,.0f}",
            f"{paper[0]} / {paper[1]}" if paper else "",
        ]
        if training:
            epochs, best, minutes = (row.get(key) for key in ("epochs_trained", "best_epoch", "train_minutes"))
            # A time limit stops training within an epoch: three significant digits (4.16, not 4.15914).
            cells.append(f"{epochs:.3g} ({best:.3g})" if epochs is not None and best is not None else "")
            cells.append(f"{minutes:.0f}" if minutes is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        note for note in (machine and f"Machine: {machine}.", signature and f"BLEU: sacrebleu {signature}.") if note
    ]
    return "\n".join(lines) + ("\n\n" + " ".join(notes) if notes else "") + "\n"


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("The plot needs matplotlib: pip install matplotlib (or hf_seqkd[table1]).") from error
    return plt


def plot_learning_curves(curves: Mapping[str, Sequence], path: str | Path, title: str = "") -> None:
    """A PNG of validation BLEU (greedy) after each epoch, one line per model: `{model: [[epoch, bleu], ...]}`."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    for model, curve in curves.items():
        epochs, bleus = zip(*curve)
        best = max(range(len(bleus)), key=bleus.__getitem__)
        (line,) = axes.plot(epochs, bleus, marker=".", linewidth=1.2, label=model)
        axes.scatter([epochs[best]], [bleus[best]], color=line.get_color(), marker="*", s=80, zorder=3)
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation BLEU (greedy)")
    axes.set_title(title or "Learning curves: validation BLEU per epoch (star: the kept, best epoch)")
    axes.grid(True, linewidth=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_bleu_vs_speed(rows: Sequence[Mapping], path: str | Path, title: str = "") -> None:
    """
    A PNG of BLEU against decoding words/s (log scale): one point per model and decoding mode, greedy and beam
    joined by a line, so the trade-offs of Table 1 show at a glance. Needs matplotlib (`pip install matplotlib`).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5.5), dpi=120)
    colors = plt.get_cmap("tab10")
    for index, row in enumerate(rows):
        color = colors(index % 10)
        speeds = [row["words_per_sec_greedy"], row["words_per_sec_beam"]]
        bleus = [row["bleu_greedy"], row["bleu_beam"]]
        axes.plot(speeds, bleus, color=color, linewidth=0.8, alpha=0.6)
        axes.scatter(speeds[:1], bleus[:1], color=color, marker="o", label=row["model"])
        axes.scatter(speeds[1:], bleus[1:], color=color, marker="s")
        axes.annotate(row["model"], (speeds[0], bleus[0]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    axes.set_xscale("log")
    axes.set_xlabel("decoding speed (words/s, log scale)")
    axes.set_ylabel("BLEU")
    axes.set_title(title or "BLEU against decoding speed: circles greedy, squares beam 5")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=7, ncol=2, loc="best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def paper_relations(rows: Sequence[Mapping], speedup: float | None = None, speed_batch: int = 64) -> list[dict]:
    """
    The paper's relations checked on the measured rows (BLEU greedy unless said): Seq-KD beats the baseline by
    `SEQ_KD_GAIN`; the baseline reaches `BASELINE_FLOOR`; beam search adds less to Seq-KD than to the baseline;
    combined is at least Seq-KD - `COMBINED_SLACK`; the 80%-pruned student at most `PRUNED_SLACK` below Seq-KD; the
    Seq-KD student's greedy search is `STUDENT_SPEEDUP`x the teacher's beam search in words/s.

    Args:
        rows (`Sequence[Mapping]`): rows of [`table1_row`]; a relation whose rows are absent is left out.
        speedup (`float`, *optional*): student greedy / teacher beam words/s, from the decode-speed benchmark (the
            evaluations' own words/s come from separate passes and are not used).
        speed_batch (`int`): the batch size `speedup` was measured at.

    Returns:
        `list[dict]`: `relation`, `measured` (text) and `holds` (bool) for each relation that could be checked.
    """
    greedy = {row["model"]: row["bleu_greedy"] for row in rows}
    beam_gain = {row["model"]: row["bleu_beam"] - row["bleu_greedy"] for row in rows}
    relations = []

    def add(relation: str, measured: str, holds: bool) -> None:
        relations.append({"relation": relation, "measured": measured, "holds": bool(holds)})

    if "baseline" in greedy:
        add(f"baseline >= {BASELINE_FLOOR:.0f} BLEU greedy", f"{greedy['baseline']:.2f}",
            greedy["baseline"] >= BASELINE_FLOOR)  # fmt: skip
    if {"seq_kd", "baseline"} <= greedy.keys():
        gain = greedy["seq_kd"] - greedy["baseline"]
        add(f"Seq-KD >= baseline + {SEQ_KD_GAIN:.1f} BLEU greedy (paper: +4.2)", f"{gain:+.2f}", gain >= SEQ_KD_GAIN)
        add("beam search adds less to Seq-KD than to the baseline",
            f"{beam_gain['seq_kd']:+.2f} against {beam_gain['baseline']:+.2f}",
            beam_gain["seq_kd"] < beam_gain["baseline"])  # fmt: skip
    if {"combined", "seq_kd"} <= greedy.keys():
        gap = greedy["combined"] - greedy["seq_kd"]
        add(f"combined >= Seq-KD - {COMBINED_SLACK} BLEU greedy", f"{gap:+.2f}", gap >= -COMBINED_SLACK)
    if {"pruned_80", "seq_kd"} <= greedy.keys():
        gap = greedy["pruned_80"] - greedy["seq_kd"]
        add(f"80%-pruned Seq-KD at most {PRUNED_SLACK:.1f} BLEU greedy below Seq-KD", f"{gap:+.2f}",
            gap >= -PRUNED_SLACK)  # fmt: skip
    if speedup is not None:
        add(f"Seq-KD greedy >= {STUDENT_SPEEDUP:.0f}x the teacher's beam search in words/s, batch {speed_batch}",
            f"{speedup:.1f}x", speedup >= STUDENT_SPEEDUP)  # fmt: skip
    return relations


def render_relations(relations: Sequence[Mapping]) -> str:
    """The checked relations as a markdown table (relation, measured, holds)."""
    lines = ["| relation | measured | holds |", "|---|---:|---|"]
    lines += [f"| {r['relation']} | {r['measured']} | {'yes' if r['holds'] else '**no**'} |" for r in relations]
    return "\n".join(lines) + "\n"
