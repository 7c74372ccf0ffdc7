"""recipes/table1/run.py and hf_seqkd.table1: the plans are complete and valid, the driver runs every stage of the
quick plan on tiny data, skips finished stages, stops at a failure, and writes results/table1.{json,md,png}."""

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest
import yaml
from test_configs import script_arguments

from hf_seqkd.arguments import parse_args
from hf_seqkd.table1 import (
    TABLE1_KEYS,
    TABLE1_MODELS,
    paper_relations,
    plot_bleu_vs_speed,
    plot_learning_curves,
    render_markdown,
    render_relations,
    table1_row,
    training_record,
)

REPO = Path(__file__).resolve().parent.parent
PLANS = sorted((REPO / "recipes" / "table1").glob("*.yaml"))
# Plans of rows beside Table 1 rather than the table itself: they run after quick.yaml in its output_root.
BESIDE_TABLE1 = {"transformer_student.yaml"}


def load_driver():
    spec = importlib.util.spec_from_file_location("table1_run", REPO / "recipes" / "table1" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(bleu, params=1000, speed=100.0):
    return {"bleu_greedy": bleu, "bleu_beam": bleu + 1, "ppl": 12.5, "p_beam_output": 0.05, "params_nonzero": params,
            "words_per_sec_greedy": speed, "words_per_sec_beam": speed / 4, "bleu_signature": "nrefs:1"}  # fmt: skip


def test_row_has_exactly_the_table_keys_and_names_what_is_missing():
    row = table1_row("seq_kd", result(10.0))
    assert tuple(row) == TABLE1_KEYS and row["model"] == "seq_kd"
    with pytest.raises(ValueError, match=r"lack \['words_per_sec_beam'\].*recipes/evaluate.py"):
        table1_row("seq_kd", {k: v for k, v in result(1.0).items() if k != "words_per_sec_beam"})


def test_paper_relations_on_measured_rows():
    def row(model, greedy, beam):
        return table1_row(model, {**result(greedy), "bleu_beam": beam})

    rows = [row("baseline", 24.04, 26.47), row("seq_kd", 24.61, 25.85), row("combined", 24.11, 26.10)]
    relations = paper_relations(rows, speedup=4.3, speed_batch=64)
    assert [(r["measured"], r["holds"]) for r in relations] == [
        ("24.04", True),  # baseline >= 10
        ("+0.57", False),  # Seq-KD >= baseline + 2.0
        ("+1.24 against +2.43", True),  # beam adds less to Seq-KD
        ("-0.50", False),  # combined >= Seq-KD - 0.3
        ("4.3x", False),  # student greedy >= 10x teacher beam
    ]
    assert "batch 64" in relations[-1]["relation"]
    # The pruned row is absent: its relation is left out, not failed. Better than Seq-KD is within the slack.
    assert not any("pruned" in r["relation"] for r in relations)
    pruned = paper_relations([row("seq_kd", 24.61, 25.85), row("pruned_80", 25.9, 26.0)])
    assert [(r["measured"], r["holds"]) for r in pruned] == [("+1.29", True)]
    assert [
        (r["measured"], r["holds"]) for r in paper_relations([row("seq_kd", 24.61, 25.8), row("pruned_80", 23.5, 24)])
    ] == [("-1.11", False)]
    table = render_relations(relations)
    assert "| Seq-KD >= baseline + 2.0 BLEU greedy (paper: +4.2) | +0.57 | **no** |" in table
    assert "| baseline >= 10 BLEU greedy | 24.04 | yes |" in table


def test_markdown_and_plot(tmp_path):
    rows = [table1_row("teacher", result(14.0, params=5000, speed=50.0)), table1_row("pruned_80", result(9, 400))]
    table = render_markdown(rows, machine="a CPU", signature="nrefs:1")
    assert "| `pruned_80` |" in table and "12.5x" in table and "+1.00" in table and "17.7 / 19.5" in table
    assert table.rstrip().endswith("Machine: a CPU. BLEU: sacrebleu nrefs:1.")
    plot_bleu_vs_speed(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("plan_path", PLANS, ids=lambda p: p.name)
def test_plan_has_every_row_and_every_stage_command_parses(plan_path):
    driver = load_driver()
    plan = driver.load_plan(plan_path)
    if plan_path.name not in BESIDE_TABLE1:
        assert list(plan["rows"]) == list(TABLE1_MODELS)
    stages = plan["stages"]
    for stage in stages.values():
        cmd, env = driver.command(stage, Path("/tmp/table1"), 1, list(stages))
        script = cmd.index(str(REPO / stage.script))
        # Every override is a flag of the script, every "{stage}" placeholder a stage of the plan (whose outputs,
        # named as inputs of later stages, do not exist here).
        parse_args(script_arguments(REPO / stage.script), cmd[script + 1 :], check_inputs=False)
        assert not any(re.search(r"\{\w+\}", part) for part in cmd), cmd  # every placeholder filled
        assert env["OMP_NUM_THREADS"] == "1"
        assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # the stages import the installed hf_seqkd


@pytest.mark.parametrize("plan_path", PLANS, ids=lambda p: p.name)
def test_students_and_their_data_agree_on_k(plan_path):
    """A student that names the K of data a stage of the plan makes names the K that stage uses (else it stops)."""
    driver = load_driver()
    root = Path("/tmp/table1")
    stages = driver.load_plan(plan_path, output_root=str(root))["stages"]

    def parsed(stage):
        cmd, _ = driver.command(stage, root, 1, list(stages))
        script = cmd.index(str(REPO / stage.script))
        return parse_args(script_arguments(REPO / stage.script), cmd[script + 1 :], check_inputs=False)

    made = {}  # dataset folder -> (kind, K) of the distill_data stages
    for stage in stages.values():
        if stage.script == "recipes/distill_data.py":
            _, config, _ = parsed(stage)
            made[str(root / stage.name / "dataset")] = (config.mode, config.num_beams)
    checked = 0
    for stage in stages.values():
        if stage.script != "recipes/train_student.py":
            continue
        student = parsed(stage)[0]
        for kind in ("seq_kd", "seq_inter"):
            folder, given = getattr(student, f"{kind}_dataset"), getattr(student, f"{kind}_num_beams")
            if folder in made:
                assert made[folder][0] == kind, (stage.name, folder)
                assert given in (None, made[folder][1]), (stage.name, kind, given, made[folder])
                checked += 1
    assert checked or plan_path.name in BESIDE_TABLE1 or not made


def test_driver_says_when_hf_seqkd_is_not_this_checkouts(monkeypatch, tmp_path):
    import shutil

    driver = load_driver()
    monkeypatch.setattr(driver, "library_location", lambda: str(REPO / "hf_seqkd"))
    assert driver.library_note() is None and "hf_seqkd from" not in driver.provenance()["commit"]
    installed = tmp_path / "site-packages" / "hf_seqkd"  # an installed copy of this checkout: the same code
    shutil.copytree(REPO / "hf_seqkd", installed, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(driver, "library_location", lambda: str(installed))
    assert driver.library_note() is None
    (installed / "utils.py").write_text((installed / "utils.py").read_text() + "\n# changed\n")
    assert f"import hf_seqkd from {installed}, whose source differs from this checkout" in driver.library_note()
    assert driver.provenance()["commit"].endswith(f"(hf_seqkd from {installed})")


def test_unknown_stage_in_a_dependency_is_an_error(tmp_path):
    plan = yaml.safe_load(PLANS[0].read_text())
    plan["stages"]["baseline"]["after"] = ["teachr"]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    with pytest.raises(ValueError, match=r"'baseline' runs after \['teachr'\]"):
        load_driver().load_plan(tmp_path / "plan.yaml")


TINY_DATA = {"max_train_samples": 32, "max_eval_samples": 6}
TINY_TRAINING = {
    **TINY_DATA, "max_steps": 2, "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False,
    "early_stopping_patience": 0, "lr_scheduler_type": "linear", "lr_scheduler_kwargs": {},
    "per_device_train_batch_size": 8, "logging_steps": 1,
}  # fmt: skip
TINY_MODEL = {"tokenizer_vocab_size": 150, "embedding_size": 16, "hidden_size": 16, "layers": 1}
TINY = {
    "recipes/train_teacher.py": {**TINY_TRAINING, **TINY_MODEL},
    "recipes/train_student.py": {**TINY_TRAINING, **TINY_MODEL, "teacher_top_k": 8, "finetune_max_steps": 2},
    "recipes/prune_student.py": TINY_TRAINING,
    "recipes/distill_data.py": {**TINY_DATA, "shard_size": 16, "batch_size": 8, "max_new_tokens": 8},
}


def tiny_plan(tmp_path, **changes):
    """The quick plan with every stage cut to a few steps on a few sentences."""
    plan = yaml.safe_load((REPO / "recipes" / "table1" / "quick.yaml").read_text())
    for stage in plan["stages"].values():
        stage["args"] = {**stage.get("args", {}), **TINY[stage["script"]]}
    plan["evaluation"]["max_eval_samples"] = 6
    plan["speed"].update(max_eval_samples=6, batch1_sentences=2, batch_sizes=[1, 3])
    plan.update(output_root=str(tmp_path / "out"), results_dir=str(tmp_path / "results"), **changes)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))  # stage order matters
    return path


@pytest.mark.slow  # about two minutes: every stage of the plan, for real, on tiny data
def test_tiny_table1_runs_every_stage_then_skips_them(tmp_path, capsys):
    driver = load_driver()
    rows = driver.main(["--config", str(tiny_plan(tmp_path))])
    results = tmp_path / "results"
    written = json.loads((results / "table1.json").read_text())
    assert written["rows"] == rows and [row["model"] for row in rows] == list(TABLE1_MODELS)
    assert written["commit"] and "transformers" in written["software"] and written["machine"]
    assert all(tuple(row)[: len(TABLE1_KEYS)] == TABLE1_KEYS for row in rows)
    assert all(row["train_minutes"] is not None for row in rows)
    by_model = {row["model"]: row for row in rows}
    # The pruned rows count only the weights left (biases are not pruned: a large share of a hidden-16 model).
    nonzero = [by_model[name]["params_nonzero"] for name in ("seq_kd", "pruned_50", "pruned_80", "pruned_90")]
    assert nonzero == sorted(nonzero, reverse=True) and nonzero[3] < 0.15 * nonzero[0]
    assert (results / "table1.png").read_bytes()[:4] == b"\x89PNG"
    assert "| `combined` |" in (results / "table1.md").read_text()
    speed = json.loads((results / "decode_speed.json").read_text())
    assert set(speed["speedup_student_over_teacher"]) == {"1", "3"}
    # The combined student started from the Seq-KD student: no stage 1 of its own.
    assert not (tmp_path / "out" / "combined" / "stage1_seq_kd").exists()

    capsys.readouterr()
    teacher_weights = (tmp_path / "out" / "teacher" / "model.safetensors").stat().st_mtime
    driver.main(["--config", str(tiny_plan(tmp_path))])
    output = capsys.readouterr().out
    assert output.count("done already, skipped") == len(driver.load_plan(tiny_plan(tmp_path))["stages"])
    assert (tmp_path / "out" / "teacher" / "model.safetensors").stat().st_mtime == teacher_weights


def test_a_failing_stage_stops_the_run_and_keeps_finished_stages(tmp_path):
    plan = yaml.safe_load(tiny_plan(tmp_path).read_text())
    plan["stages"] = {
        "teacher_start": plan["stages"]["teacher_start"],
        "teacher": plan["stages"]["teacher"],
        "baseline": {**plan["stages"]["baseline"], "args": {**plan["stages"]["baseline"]["args"], "mode": "nonsense"}},
    }
    plan["rows"] = {"teacher": "teacher", "baseline": "baseline"}
    del plan["speed"]
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    with pytest.raises(SystemExit, match="stage baseline failed"):
        load_driver().main(["--config", str(tmp_path / "plan.yaml")])
    assert (tmp_path / "out" / "done" / "teacher").exists()
    assert not (tmp_path / "out" / "done" / "baseline").exists()
    assert "invalid choice: 'nonsense'" in (tmp_path / "out" / "logs" / "baseline.log").read_text()


def test_training_record_and_learning_curves(tmp_path):
    stage = tmp_path / "seq_kd"
    stage.mkdir()
    history = [{"epoch": 0.5, "loss": 3.0}, {"epoch": 1.0, "eval_bleu": 4.0}, {"epoch": 2.0, "eval_bleu": 7.5},
               {"epoch": 3.0, "eval_bleu": 7.0}, {"epoch": 3.0, "train_runtime": 60.0}]  # fmt: skip
    (stage / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    (tmp_path / "seq_kd.json").write_text(json.dumps({"minutes": 42.0}))
    record = training_record(stage, tmp_path / "seq_kd.json")
    assert record == {
        "summary": {"epochs_trained": 3.0, "best_epoch": 2.0, "train_minutes": 42.0},
        "curve": [[1.0, 4.0], [2.0, 7.5], [3.0, 7.0]],
    }
    assert training_record(tmp_path / "absent")["summary"] == dict.fromkeys(record["summary"])
    plot_learning_curves({"seq_kd": record["curve"], "baseline": [[1.0, 2.0], [2.0, 3.0]]}, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    row = {**table1_row("seq_kd", result(7.5)), **record["summary"]}
    assert "| 3 (2) | 42 |" in render_markdown([row])
    stopped_by_time = {**row, "epochs_trained": 4.15914, "best_epoch": 4.15914}
    assert "| 4.16 (4.16) | 42 |" in render_markdown([stopped_by_time])


def test_decode_speed_summary_says_slower_when_the_student_is_slower():
    spec = importlib.util.spec_from_file_location("bench", REPO / "benchmarks" / "bench_decode_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.speed_comparison(12.04) == "the student's search is 12.0x as fast as the teacher's"
    assert bench.speed_comparison(0.149) == "the student's search is slower: 0.15x the teacher's speed (6.7x slower)"


def test_status_tells_done_running_stopped_and_pending_stages(tmp_path, capsys):
    import os
    import time

    driver = load_driver()
    plan = driver.load_plan(REPO / "recipes" / "table1" / "quick.yaml", output_root=str(tmp_path))
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "teacher").write_text("2026-12-03 14:00:00 61.0 min\n")
    progress = tmp_path / "progress"
    progress.mkdir()
    (progress / "teacher.json").write_text(json.dumps({"minutes": 61.0}))
    alive = {"minutes": 4.0, "pid": os.getpid(), "heartbeat": time.time()}
    (progress / "seq_kd_data.json").write_text(json.dumps(alive))
    checkpoint = tmp_path / "baseline" / "checkpoint-800"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"epoch": 2.0, "global_step": 800, "max_steps": 10000}))
    (progress / "baseline.json").write_text(json.dumps({"minutes": 20.0}))
    states = driver.status(plan)["stages"]
    assert (states["teacher"], states["seq_kd_data"], states["baseline"], states["seq_kd"]) == (
        "done",
        "running",
        "stopped",
        "pending",
    )
    out = capsys.readouterr().out
    estimate = plan["stages"]["seq_kd_data"].estimate_minutes  # a stage without checkpoints: the plan's estimate
    assert (
        "done in 61 min" in out and f"running for 4 min; about {estimate - 4:.0f} min left of ~{estimate:.0f}" in out
    )
    assert "epoch 2.0, step 800/10000 (checkpoint-800)" in out and "estimated wall time left" in out
    # 800 steps took 20 minutes: the 9,200 left take 230 at that pace, whatever the plan estimated.
    expected = "step 800/10000 (checkpoint-800); about 230 min left at its pace, if it runs to step 10000"
    assert f"stopped after 20 min, resumes from its checkpoints; epoch 2.0, {expected}" in out


def test_report_of_the_rows_evaluated_so_far_names_the_rest_and_the_code_that_ran(tmp_path, capsys):
    driver = load_driver()
    plan = driver.load_plan(REPO / "recipes" / "table1" / "quick.yaml", output_root=str(tmp_path / "out"))
    plan["results_dir"] = str(tmp_path / "results")
    with pytest.raises(SystemExit, match="no row has been evaluated yet"):
        driver.report(plan, finished_only=True)
    for row, bleu in (("teacher", 20.0), ("seq_kd", 18.0)):
        (tmp_path / "out" / f"eval_{row}").mkdir(parents=True)
        evaluation = {**result(bleu), "num_sentences": 1790, "num_beams": 5}
        (tmp_path / "out" / f"eval_{row}" / "eval_results.json").write_text(json.dumps(evaluation))
    (tmp_path / "out" / "done").mkdir()
    for stage in ("teacher", "seq_kd"):
        (tmp_path / "out" / "done" / stage).write_text("2026-12-03 14:00:00 61.0 min\n")
    driver.start_progress(tmp_path / "out", "seq_kd")  # records the commit of this checkout
    with pytest.raises(FileNotFoundError, match="No evaluation results for .*baseline"):
        driver.report(plan)  # the full report wants every row

    rows = driver.report(plan, finished_only=True)
    assert [row["model"] for row in rows] == ["teacher", "seq_kd"]
    written = json.loads((tmp_path / "results" / "table1.json").read_text())
    assert written["pending_rows"] == [row for row in plan["rows"] if row not in ("teacher", "seq_kd")]
    assert written["stage_commits"]["seq_kd"] == [driver.provenance()["commit"]]
    assert written["relations"] == []  # each relation needs the baseline or another row not evaluated yet
    assert written["stage_commits"]["teacher"] == []  # no progress file: not recorded, and the report says so
    footer = (tmp_path / "results" / "table1.md").read_text().splitlines()[-1]
    assert f"Stages run by commit {driver.provenance()['commit']}." in footer
    assert "Not recorded which commit ran eval_seq_kd, eval_teacher, teacher." in footer
    assert "Not yet run: seq_inter_teacher, baseline," in footer
    assert "| `seq_kd` |" in capsys.readouterr().out


def test_dict_arguments_reach_the_recipes_as_json():
    driver = load_driver()
    stage = driver.Stage(name="s", script="recipes/train_student.py", args={"lr_scheduler_kwargs": {"mode": "max"}})
    cmd, _ = driver.command(stage, Path("/tmp/t"), 1, ["s"])
    assert cmd[cmd.index("--lr_scheduler_kwargs") + 1] == '{"mode": "max"}'
