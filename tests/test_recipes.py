"""The recipes as a user runs them: a few training steps on tiny data, in one process and in two CPU processes."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, set_seed

from hf_seqkd import LSTMSeq2SeqForConditionalGeneration

REPO = Path(__file__).resolve().parent.parent
TINY_TEACHER = """\
dataset_name: bible_es_en
max_train_samples: 64
max_eval_samples: 8
max_source_length: 48
max_target_length: 48
tokenizer_vocab_size: 300
embedding_size: 16
hidden_size: 16
layers: 1
dropout: 0.0
per_device_train_batch_size: 8
per_device_eval_batch_size: 8
learning_rate: 0.003
eval_strategy: steps
eval_steps: 2
save_strategy: steps
save_steps: 2
predict_with_generate: true
generation_max_length: 12
load_best_model_at_end: true
metric_for_best_model: bleu
seed: 1
report_to: none
"""


def run(command, cwd=REPO, extra_env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(extra_env or {})}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "teacher.yaml"
    path.write_text(TINY_TEACHER)
    return path


def test_train_teacher_trains_evaluates_and_resumes(tmp_path, tiny_config):
    out = tmp_path / "teacher"
    command = [sys.executable, "recipes/train_teacher.py", "--config", str(tiny_config), "--output_dir", str(out)]
    stdout = run(command + ["--max_steps", "4"])
    assert "| teacher |" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_sentences"] == 8 and results["num_beams"] == 5 and 0 <= results["bleu_greedy"] <= 100
    assert len((out / "eval_results.beam.txt").read_text().splitlines()) == 8
    assert (out / "checkpoint-4").is_dir() and (out / "tokenizer.json").is_file()
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert model.config.hidden_size == 16

    # Started again with more steps, the run resumes from checkpoint-4 instead of starting over.
    stdout = run(command + ["--max_steps", "6"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert f"Resuming training from {out / 'checkpoint-4'} (the last checkpoint in output_dir) at step 4," in stdout


def test_train_teacher_two_cpu_processes_match_one(tmp_path, tiny_config):
    """
    DDP over 2 CPU processes with batch 4 each gives the model of 1 process with batch 8. (Plain SGD: Adam divides
    by the gradient's own scale and so blows float rounding on near-zero gradients up to a full learning-rate step.)
    """
    common = [
        "--config",
        str(tiny_config),
        "--max_steps",
        "1",
        "--optim",
        "sgd",
        "--learning_rate",
        "0.5",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
    ]
    common += [
        "--load_best_model_at_end",
        "false",
        "--max_eval_samples",
        "2",
        "--train_sampling_strategy",
        "sequential",
    ]
    one = tmp_path / "one"
    run([sys.executable, "recipes/train_teacher.py", *common, "--output_dir", str(one)])
    two = tmp_path / "two"
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "recipes/train_teacher.py",
            *common,
            "--output_dir",
            str(two),
            "--per_device_train_batch_size",
            "4",
        ]
    )
    first = AutoModelForSeq2SeqLM.from_pretrained(one)
    second = AutoModelForSeq2SeqLM.from_pretrained(two).state_dict()
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(second[name], tensor, atol=1e-5, rtol=1e-4)
    set_seed(1)  # the recipe's seed: the weights before the training step
    initial = LSTMSeq2SeqForConditionalGeneration(first.config).state_dict()
    assert (first.state_dict()["lm_head.weight"] - initial["lm_head.weight"]).abs().max() > 1e-4


def test_end_process_group_destroys_the_default_group(tmp_path):
    from hf_seqkd.arguments import end_process_group

    end_process_group()  # a single process without a group: nothing to do
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    assert torch.distributed.is_initialized()
    end_process_group()
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("recipe", ["train_teacher", "train_student", "prune_student", "distill_data"])
def test_multi_process_recipes_end_their_process_group(recipe):
    """
    The recipes that `accelerate launch` runs on several processes destroy the process group when main() returns.
    A rank left to interpreter finalization with a live Gloo group sometimes aborted ("terminate called without an
    active exception") after the run had succeeded, which failed the launch (CI, 2026-12-04).
    """
    tree = ast.parse((REPO / "recipes" / f"{recipe}.py").read_text())
    main_block = next(node for node in tree.body if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test))
    calls = [ast.unparse(statement) for statement in main_block.body]
    assert calls == ["main()", "end_process_group()"], calls


def test_evaluate_recipe_on_a_saved_model(tmp_path, tokenizer):
    from helpers import tiny_model

    model_dir = tmp_path / "model"
    tiny_model(vocab_size=len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    out = tmp_path / "eval"
    stdout = run(
        [
            sys.executable,
            "recipes/evaluate.py",
            "--model_name_or_path",
            str(model_dir),
            "--dataset_name",
            "bible_es_en",
            "--max_eval_samples",
            "4",
            "--num_beams",
            "2",
            "--output_dir",
            str(out),
            "--name",
            "tiny",
        ]
    )
    assert "| tiny |" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_sentences"] == 4 and results["num_beams"] == 2


def test_dtype_quality_benchmark_compares_float32_with_bfloat16():
    stdout = run(
        [sys.executable, "benchmarks/bench_dtype_quality.py", "--model", "models/bible-es-en-teacher",
         "--dataset_name", "bible_es_en", "--source_lang", "es", "--target_lang", "en", "--max_eval_samples", "4"]
    )  # fmt: skip
    rows = [line for line in stdout.splitlines() if line.startswith(("| greedy", "| beam 5"))]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| greedy", "float32"],
        ["| greedy", "bfloat16"],
        ["| beam 5", "float32"],
        ["| beam 5", "bfloat16"],
    ]
    assert "4 test sentences, batch 64" in stdout


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_search_loop_benchmark_gives_generation_mixins_translations_on_real_sentences(dtype):
    stdout = run(
        [sys.executable, "benchmarks/bench_search_loops.py", "--model", "models/bible-es-en-teacher",
         "--dataset_name", "bible_es_en", "--source_lang", "es", "--target_lang", "en", "--num_sentences", "6",
         "--batch_sizes", "1", "4", "--rounds", "1", "--dtype", dtype]
    )  # fmt: skip
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith(("| 1 |", "| 4 |"))]
    assert [(row[0], row[1]) for row in rows] == [
        ("| 1", "greedy"),
        ("| 1", "beam 5"),
        ("| 4", "greedy"),
        ("| 4", "beam 5"),
    ]
    assert all(row[-1] == "0 of 6 |" for row in rows), stdout


def test_batch1_floor_benchmark_prints_both_searches_and_their_bounds():
    stdout = run(
        [sys.executable, "benchmarks/bench_batch1_floor.py", "--no_peers", "--sentences", "1", "--repeats", "3"]
    )
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith(("| greedy", "| beam 5"))]
    assert [row[0] for row in rows] == ["| greedy", "| beam 5"], stdout
    for row in rows:
        per_call, search, step, products = row[4:8]
        assert per_call.endswith(" ms") and all(cell.endswith(" us") for cell in (search, step, products))
        # Without a peer the bounds are tokens/s alone; a sentence of 30 tokens costs more than 1 ms here.
        assert all(1 < float(cell.rstrip(" |").replace(",", "")) < 30_000 for cell in (row[2], row[8], row[9]))


def test_inference_mode_benchmark_times_the_loops_with_and_without_it(monkeypatch):
    """Arm A runs the model's loops outside inference mode, arm B as they are; the class is restored after each."""
    from benchmarks import bench_inference_mode

    model_class = LSTMSeq2SeqForConditionalGeneration
    loops = {name: model_class.__dict__[name] for name in bench_inference_mode.LOOPS}
    modes = []
    step = model_class._next_decoding_step
    monkeypatch.setattr(
        model_class,
        "_next_decoding_step",
        lambda self, *a: modes.append(torch.is_inference_mode_enabled()) or step(self, *a),
    )
    row = bench_inference_mode.bench_speed.ROWS["128x2-b1"]
    model = bench_inference_mode.bench_speed.build_model(row)
    batches = bench_inference_mode.bench_speed.source_batches(row, 1)
    steps = bench_inference_mode.bench_speed.TARGET_LENGTH - 1
    seconds = bench_inference_mode.paired_rounds(model, batches, num_beams=1, rounds=1)
    assert len(seconds["A"]) == len(seconds["B"]) == 1
    assert modes == ([False] * steps + [True] * steps) * 2  # warm-up round, then the timed one
    assert {name: model_class.__dict__[name] for name in loops} == loops
    results = bench_inference_mode.main(["--sentences", "1", "--rounds", "2"])
    assert [result["num_beams"] for result in results] == [1, 5]
    assert all(result["with"] > 0 and result["without"] > 0 for result in results)


def gpu_check_report(tmp_path, sections):
    """benchmarks/gpu_check.py at its smoke sizes on the CPU: the report, which must record no failure."""
    out = tmp_path / "gpu_check.md"
    run(
        [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--smoke", "--sections", *sections]
        + ["--out", str(out)]
    )
    report = out.read_text()
    assert "FAILED" not in report, report
    return report


def test_gpu_check_decodes_with_both_loops_alike_and_measures_speed(tmp_path):
    report = gpu_check_report(tmp_path, ["1", "4"])
    decoding = [line.split(" | ") for line in report.splitlines() if line.startswith(("| fp32 | ", "| bf16 | "))]
    mixin_rows = [row for row in decoding if row[2] == "GenerationMixin"]
    assert len(mixin_rows) == 4 and all(row[-1].rstrip(" |") == "0" for row in mixin_rows), report
    assert "_Section 1: done" in report and "_Section 4: done" in report
    assert "student 2x50 greedy / teacher beam 5" in report


@pytest.mark.slow
def test_gpu_check_distils_and_trains_in_bfloat16(tmp_path):
    report = gpu_check_report(tmp_path, ["2", "3"])
    assert "_Section 2: done" in report and "_Section 3: done" in report
    assert '"bf16": true' in report and "Exit status 0" in report


def test_speed_benchmark_counts_the_page_faults_of_fresh_memory():
    from benchmarks import bench_speed

    kept = []
    assert bench_speed.minor_page_faults(lambda: kept.append(torch.ones(16 * 2**20))) > 1000  # 64 MB, touched
    assert bench_speed.minor_page_faults(lambda: kept[0].add_(1)) < 100  # the same pages again
