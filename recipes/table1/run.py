"""Reproduce Kim & Rush (2016), Table 1 in one command: teacher, distillation data, every student, pruning,
evaluation, decode-speed benchmark, then results/table1.{json,md,png}.

    python recipes/table1/run.py --config recipes/table1/quick.yaml          # bundled corpus, 2-core CPU
    python recipes/table1/run.py --config recipes/table1/paper_scale.yaml    # 4x1000 teacher, 2x500 students, 1 GPU

Each stage is one of the recipes (train_teacher.py, distill_data.py, train_student.py, prune_student.py,
evaluate.py, benchmarks/bench_decode_speed.py) run as a subprocess with its YAML config and the overrides of the
Table 1 config; its output goes to `<output_root>/<stage>` and its log to `<output_root>/logs/<stage>.log`. A stage
that ends well leaves `<output_root>/done/<stage>`: a re-run skips it, and a killed stage resumes from its own
checkpoints or shards when started again. Up to `workers` stages run side by side with `threads / workers` CPU
threads each (two PyTorch processes spinning on the same cores are many times slower); `exclusive` stages (the
teacher, multi-process data generation, every evaluation and the speed benchmark) run alone with all threads, so
the speeds in the table are measured on an otherwise idle machine.

`--stages a,b` runs only those stages (their prerequisites must be done); `--dry_run` prints the commands.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `hf_seqkd` from this checkout even when it is not installed

from hf_seqkd.table1 import collect_rows, describe_machine, plot_bleu_vs_speed, render_markdown  # noqa: E402


@dataclass
class Stage:
    """One recipe run: `script` with `--config config`, `--output_dir <output_root>/<name>` and `args`."""

    name: str
    script: str
    config: str | None = None
    args: dict = field(default_factory=dict)
    after: list[str] = field(default_factory=list)
    processes: int = 1
    exclusive: bool = False

    def __post_init__(self):
        if self.processes > 1:
            self.exclusive = True  # its processes share the cores between them


def load_plan(config_path: str | Path, output_root: str | None = None) -> dict:
    """The Table 1 config with its stages as `Stage`s, plus the evaluation and speed stages it implies."""
    plan = yaml.safe_load(Path(config_path).read_text())
    unknown = set(plan) - {"output_root", "results_dir", "workers", "threads", "stages", "rows", "evaluation", "speed"}
    if unknown:
        raise ValueError(f"Unknown keys {sorted(unknown)} in {config_path}.")
    if output_root is not None:
        plan["output_root"] = output_root
    stages = {}
    for name, spec in plan["stages"].items():
        try:
            stages[name] = Stage(name=name, **spec)
        except TypeError as error:
            raise ValueError(f"Stage {name!r} in {config_path}: {error}") from None
    training = list(stages)
    rows = plan["rows"]
    for row, stage in rows.items():
        if stage not in stages:
            raise ValueError(f"Row {row!r} names stage {stage!r}, which {config_path} does not define.")
        stages[f"eval_{row}"] = Stage(
            name=f"eval_{row}",
            script="recipes/evaluate.py",
            args={"model_name_or_path": f"{{{stage}}}", "name": row, **plan["evaluation"]},
            after=training,  # evaluated when nothing trains beside it, so words/s are an idle machine's
            exclusive=True,
        )
    speed = plan.get("speed")
    if speed:
        unknown = [speed.get(role) for role in ("student", "teacher") if speed.get(role) not in rows]
        if unknown:
            raise ValueError(f"speed: student and teacher must be rows of the table; {unknown} are not.")
        name = speed_stage_name(plan)  # a plan sharing another's output_root names its own
        stages[name] = Stage(
            name=name,
            script="benchmarks/bench_decode_speed.py",
            args={"student": f"{{{rows[speed['student']]}}}", "teacher": f"{{{rows[speed['teacher']]}}}",
                  **{k: v for k, v in speed.items() if k not in ("student", "teacher", "name")}},
            after=[f"eval_{row}" for row in rows],
            exclusive=True,
        )  # fmt: skip
    for stage in stages.values():
        missing = [name for name in stage.after if name not in stages]
        if missing:
            raise ValueError(f"Stage {stage.name!r} runs after {missing}, which {config_path} does not define.")
    plan["stages"] = stages
    return plan


def speed_stage_name(plan: dict) -> str:
    """The speed benchmark's stage (and folder): `speed.name`, by default `decode_speed`."""
    return (plan.get("speed") or {}).get("name", "decode_speed")


def command(stage: Stage, root: Path, threads: int, stage_names: list[str]) -> tuple[list[str], dict]:
    """The stage's command line and environment; `{stage}` in its args is that stage's output folder."""
    paths = {name: str(root / name) for name in stage_names}
    launcher = [sys.executable]
    if stage.processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(stage.processes)]
    cmd = [*launcher, str(REPO / stage.script)]
    if stage.config:
        cmd += ["--config", str(REPO / stage.config)]
    cmd += ["--output_dir", str(root / stage.name)]
    for key, value in stage.args.items():
        values = value if isinstance(value, list) else [value]
        cmd += [f"--{key}", *(_format(v, paths, root) for v in values)]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(max(1, threads // stage.processes)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return cmd, env


def _format(value, paths: dict, root: Path) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).format(root=root, **paths) if isinstance(value, str) else str(value)


def run_stages(plan: dict, only: list[str] | None = None, dry_run: bool = False) -> None:
    """Runs the pending stages, up to `workers` at once, each after its prerequisites; stops at the first failure."""
    root = Path(plan["output_root"]).resolve()
    stages: dict[str, Stage] = plan["stages"]
    done_dir, log_dir = root / "done", root / "logs"
    done_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    workers, threads = int(plan.get("workers", 1)), int(plan.get("threads", os.cpu_count() or 1))

    def stage_threads(name):  # exclusive stages get every thread, the others share them
        return threads if stages[name].exclusive else max(1, threads // workers)

    if only:
        unknown = [name for name in only if name not in stages]
        if unknown:
            raise ValueError(f"No stage {unknown}; the stages are {list(stages)}.")
    wanted = [name for name in stages if (not only or name in only)]
    pending = [name for name in wanted if not (done_dir / name).exists()]
    for name in wanted:
        if name not in pending:
            print(f"[table1] {name}: done already, skipped", flush=True)
    if dry_run:
        for name in pending:
            cmd, env = command(stages[name], root, stage_threads(name), list(stages))
            print(f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {' '.join(cmd)}")
        return

    running: dict[str, tuple[subprocess.Popen, float]] = {}
    failed = None
    try:
        while pending or running:
            for name, (process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[name]
                minutes = (time.time() - start) / 60
                if process.returncode == 0:
                    (done_dir / name).write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {minutes:.1f} min\n")
                    print(f"[table1] {name}: finished in {minutes:.1f} min", flush=True)
                else:
                    failed = failed or name
                    print(f"[table1] {name}: FAILED (exit {process.returncode}); see {log_dir / name}.log", flush=True)
            if failed:
                if not running:
                    break
                time.sleep(1)
                continue
            ready = [name for name in pending if all((done_dir / dep).exists() for dep in stages[name].after)]
            if not ready and not running and pending:
                missing = {name: [d for d in stages[name].after if not (done_dir / d).exists()] for name in pending}
                raise SystemExit(f"[table1] cannot start {pending}: prerequisites not done: {missing}")
            for name in ready:
                exclusive_running = any(stages[other].exclusive for other in running)
                if exclusive_running or (stages[name].exclusive and running) or len(running) >= workers:
                    break
                cmd, env = command(stages[name], root, stage_threads(name), list(stages))
                log = open(log_dir / f"{name}.log", "a")
                log.write(f"\n$ OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {' '.join(cmd)}\n")
                log.flush()
                print(f"[table1] {name}: started ({env['OMP_NUM_THREADS']} threads), log {log.name}", flush=True)
                running[name] = (
                    subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT),
                    time.time(),
                )
                pending.remove(name)
                if stages[name].exclusive:
                    break
            time.sleep(2)
    except KeyboardInterrupt:
        for process, _ in running.values():
            process.terminate()
        raise
    if failed:
        tail = (log_dir / f"{failed}.log").read_text().splitlines()[-15:]
        raise SystemExit(f"[table1] stage {failed} failed; finished stages are kept. Last lines:\n" + "\n".join(tail))


def report(plan: dict) -> list[dict]:
    """Writes results/table1.json, table1.md and table1.png (and decode_speed.*) from the finished stages."""
    root, results = Path(plan["output_root"]).resolve(), Path(plan.get("results_dir", "results"))
    results.mkdir(parents=True, exist_ok=True)
    rows = collect_rows({row: root / f"eval_{row}" / "eval_results.json" for row in plan["rows"]})
    first = json.loads((root / f"eval_{next(iter(plan['rows']))}" / "eval_results.json").read_text())
    speed_dir = root / speed_stage_name(plan)
    if (speed_dir / "decode_speed.json").is_file():
        machine = json.loads((speed_dir / "decode_speed.json").read_text())["machine"]
        for suffix in ("json", "md"):
            shutil.copyfile(speed_dir / f"decode_speed.{suffix}", results / f"decode_speed.{suffix}")
    else:  # a plan without the speed benchmark: the machine the evaluations ran on is this one
        import torch

        machine = describe_machine("cuda" if torch.cuda.is_available() else "cpu")
    (results / "table1.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = render_markdown(rows, machine=machine, signature=first["bleu_signature"])
    batch = plan["evaluation"].get("batch_size", 64)
    setup = f"{first['num_sentences']} test sentences, beam {first['num_beams']}, batch {batch}"
    (results / "table1.md").write_text(f"{table}\nEvaluated on {setup}.\n")
    plot_bleu_vs_speed(rows, results / "table1.png", title=f"BLEU against decoding speed ({machine.split(',')[0]})")
    print((results / "table1.md").read_text(), flush=True)
    return rows


def main(args: list[str] | None = None) -> list[dict] | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="The Table 1 plan: recipes/table1/quick.yaml, ...")
    parser.add_argument("--output_root", help="Where the stages write (default: the plan's output_root).")
    parser.add_argument("--results_dir", help="Where table1.json/.md/.png go (default: the plan's results_dir).")
    parser.add_argument("--stages", help="Comma-separated stages to run (default: all).")
    parser.add_argument("--dry_run", action="store_true", help="Print the commands of the pending stages.")
    parsed = parser.parse_args(args)
    plan = load_plan(parsed.config, parsed.output_root)
    if parsed.results_dir:
        plan["results_dir"] = parsed.results_dir
    only = parsed.stages.split(",") if parsed.stages else None
    run_stages(plan, only, parsed.dry_run)
    if parsed.dry_run or only:
        return None
    return report(plan)


if __name__ == "__main__":
    main()
