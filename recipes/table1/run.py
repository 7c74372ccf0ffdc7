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

`--stages a,b` runs only those stages (their prerequisites must be done); `--dry_run` prints the commands;
`--status` says which stages are done (and how long they took), which are running (with their progress), and an
estimate of the time left, without starting anything; `--report` writes the results of the rows evaluated so far.
Run a long plan from a checkout that does not change under it (e.g. `git clone . ~/hf_seqkd_runs/code`, a clone
rather than a `git worktree`, which breaks when the main checkout is replaced) with `--output_root` outside the work
tree, so that it can be resumed from another session. The stages
import the `hf_seqkd` installed in the Python that runs this script (`pip install --no-deps .` of that checkout into
a virtual environment pins it); each stage records the commit that ran it, and the results name those commits and
where `hf_seqkd` came from.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import hf_seqkd
from hf_seqkd.table1 import (
    collect_rows,
    describe_software,
    paper_relations,
    plot_bleu_vs_speed,
    plot_learning_curves,
    render_markdown,
    render_relations,
    training_record,
)
from hf_seqkd.utils import describe_machine

PLAN_HELP = """
Settings: `--config plan.yaml` is the plan (output_root, results_dir, workers, threads, the stages with their recipe
configs and overrides, the Table 1 rows); --output_root, --results_dir, --threads and --workers given on the command
line override the plan's values. Each stage's own settings are its recipe's YAML config (see that recipe's --help)
plus the stage's `args` in the plan.
"""

REPO = Path(__file__).resolve().parents[2]  # the checkout whose recipes and configs the stages run
HEARTBEAT_SECONDS = 30  # a running stage's progress file is rewritten this often; older ones belong to dead runs


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
    estimate_minutes: float | None = None  # wall time on the plan's machine, from measured throughput; for --status

    def __post_init__(self):
        if self.processes > 1:
            self.exclusive = True  # its processes share the cores between them


def load_plan(config_path: str | Path, output_root: str | None = None) -> dict:
    """The Table 1 config with its stages as `Stage`s, plus the evaluation and speed stages it implies."""
    plan = yaml.safe_load(Path(config_path).read_text())
    known = {"output_root", "results_dir", "workers", "threads", "stages", "rows", "evaluation", "speed", "estimates"}
    unknown = set(plan) - known
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
            estimate_minutes=plan.get("estimates", {}).get("evaluation"),
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
            estimate_minutes=plan.get("estimates", {}).get("decode_speed"),
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
    return cmd, env


def _format(value, paths: dict, root: Path) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):  # e.g. lr_scheduler_kwargs: the recipes parse JSON
        return json.dumps(value)
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
    if note := library_note():
        print(note, flush=True)
    if dry_run:
        for name in pending:
            cmd, env = command(stages[name], root, stage_threads(name), list(stages))
            print(f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {' '.join(cmd)}")
        return

    running: dict[str, tuple[subprocess.Popen, float]] = {}
    failed = None
    last_heartbeat = 0.0
    try:
        while pending or running:
            if time.time() - last_heartbeat >= HEARTBEAT_SECONDS:
                for name, (process, start) in running.items():
                    write_progress(root, name, process.pid, start)
                last_heartbeat = time.time()
            for name, (process, start) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[name]
                minutes = write_progress(root, name, None, start)
                if process.returncode == 0:
                    (done_dir / name).write_text(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {minutes:.1f} min\n")
                    print(f"[table1] {name}: finished in {minutes:.1f} min (all sessions)", flush=True)
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
                start_progress(root, name)
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


def _progress_file(root: Path, name: str) -> Path:
    return root / "progress" / f"{name}.json"


def start_progress(root: Path, name: str) -> None:
    """Carries the minutes of earlier (killed) runs of stage `name` over to this one."""
    path = _progress_file(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(path.read_text()) if path.is_file() else {}
    minutes = earlier.get("minutes", 0.0)
    # Every session's code, in order: a stage resumed by a later commit names both.
    commits = earlier.get("commits", [])
    commit = provenance()["commit"]
    commits += [commit] if commit not in commits else []
    path.write_text(json.dumps({"minutes_before": minutes, "minutes": minutes, "commits": commits}))


def write_progress(root: Path, name: str, pid: int | None, start: float) -> float:
    """Records the stage's wall minutes over all sessions (and, while it runs, its pid and a heartbeat)."""
    path = _progress_file(root, name)
    record = json.loads(path.read_text()) if path.is_file() else {"minutes_before": 0.0}
    record.update(minutes=record["minutes_before"] + (time.time() - start) / 60, pid=pid, heartbeat=time.time())
    path.write_text(json.dumps(record))
    return record["minutes"]


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def training_progress(stage_dir: Path) -> dict | None:
    """Epoch and step of the newest checkpoint of a training stage (the combined mode's stage 1 included)."""
    states = sorted(stage_dir.glob("**/checkpoint-*/trainer_state.json"), key=lambda path: path.stat().st_mtime)
    if not states:
        return None
    state = json.loads(states[-1].read_text())
    return {"epoch": state.get("epoch") or 0.0, "step": state["global_step"], "max_steps": state["max_steps"],
            "folder": str(states[-1].parent.relative_to(stage_dir))}  # fmt: skip


def status(plan: dict) -> dict:
    """
    Prints and returns each stage's state: done (minutes over all sessions), running (pid, minutes so far, newest
    checkpoint), stopped (started in an earlier session, resumes from its checkpoints) or pending; and an estimate
    of the wall time left: a training stage that has made checkpoints, at its own pace so far up to its last step;
    any other, from its `estimate_minutes` (measured throughput) minus the time it has had.
    """
    root = Path(plan["output_root"]).resolve()
    stages: dict[str, Stage] = plan["stages"]
    workers = int(plan.get("workers", 1))
    report_lines, states, left = [], {}, {"exclusive": 0.0, "shared": 0.0}
    for name, stage in stages.items():
        progress_path = _progress_file(root, name)
        progress = json.loads(progress_path.read_text()) if progress_path.is_file() else {}
        minutes = progress.get("minutes", 0.0)
        if (root / "done" / name).exists():
            state, line = "done", f"done in {minutes:.0f} min" if minutes else "done"
        else:
            fresh = time.time() - progress.get("heartbeat", 0) < 3 * HEARTBEAT_SECONDS
            train = training_progress(root / name)
            started = progress or train or (root / name).is_dir()
            state = "running" if fresh and _alive(progress.get("pid")) else ("stopped" if started else "pending")
            line = {"running": f"running for {minutes:.0f} min", "stopped": f"stopped after {minutes:.0f} min, "
                    "resumes from its checkpoints", "pending": "pending"}[state]  # fmt: skip
            if train:
                line += f"; epoch {train['epoch']:.1f}, step {train['step']}/{train['max_steps']} ({train['folder']})"
            if train and train["step"] and minutes:
                # Its own pace so far says more than the plan's estimate (a Word-KD student ran 5x slower than
                # planned beside two other stages): minutes a step, up to the last step it may take.
                remaining = minutes / train["step"] * (train["max_steps"] - train["step"])
                line += f"; about {remaining:.0f} min left at its pace, if it runs to step {train['max_steps']}"
            else:
                remaining = max(0.0, (stage.estimate_minutes or 0.0) - minutes)
                if stage.estimate_minutes:
                    line += f"; about {remaining:.0f} min left of ~{stage.estimate_minutes:.0f}"
            left["exclusive" if stage.exclusive else "shared"] += remaining
        states[name] = state
        report_lines.append(f"  {name:<22} {line}")
    wall = left["exclusive"] + left["shared"] / max(1, workers)
    print(f"[table1] {root}", flush=True)
    print("\n".join(report_lines), flush=True)
    print(f"[table1] estimated wall time left: {wall / 60:.1f} h ({left['shared']:.0f} min of stages run "
          f"{workers} side by side, {left['exclusive']:.0f} min alone); early stopping usually ends training "
          "stages sooner", flush=True)  # fmt: skip
    return {"stages": states, "hours_left": wall / 60}


def library_location() -> str:
    """Where the stages' `hf_seqkd` comes from: the package folder of the Python that runs the plan."""
    return str(Path(hf_seqkd.__file__).resolve().parent)


def _python_sources(package: Path) -> dict[str, bytes]:
    return {str(path.relative_to(package)): path.read_bytes() for path in sorted(package.rglob("*.py"))}


def library_note() -> str | None:
    """
    A warning when the stages' `hf_seqkd` is neither this checkout's folder nor an installed copy of the same source
    files (`pip install --no-deps <checkout>`, the way to pin a long run): the recorded commit would then not be the
    code that ran.
    """
    location = Path(library_location())
    if location == REPO / "hf_seqkd" or _python_sources(location) == _python_sources(REPO / "hf_seqkd"):
        return None
    return (
        f"[table1] warning: the stages import hf_seqkd from {location}, whose source differs from this checkout's "
        f"({REPO}); to run this checkout's code, install it into the Python that runs the plan (pip install --no-deps "
        f"{REPO})."
    )


def provenance() -> dict:
    """The commit of the code that ran the plan, where `hf_seqkd` came from, the library versions and the machine."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    if library_note():
        commit += f" (hf_seqkd from {library_location()})"
    return {"commit": commit, "software": describe_software()}


def stage_commits(root: Path, names: list[str]) -> dict[str, list[str]]:
    """The commits of the code that ran each stage, from its progress file (`[]` when a driver did not record them)."""
    commits = {}
    for name in names:
        path = _progress_file(root, name)
        commits[name] = json.loads(path.read_text()).get("commits", []) if path.is_file() else []
    return commits


def report(plan: dict, finished_only: bool = False) -> list[dict]:
    """
    Writes results/table1.json, table1.md and table1.png (and decode_speed.*) from the finished stages. With
    `finished_only`, rows whose evaluation has not run yet are left out and named as pending; otherwise they are an
    error.
    """
    root, results = Path(plan["output_root"]).resolve(), Path(plan.get("results_dir", "results"))
    results.mkdir(parents=True, exist_ok=True)
    evaluations = {row: root / f"eval_{row}" / "eval_results.json" for row in plan["rows"]}
    pending = [row for row, path in evaluations.items() if not path.is_file()] if finished_only else []
    if len(pending) == len(evaluations):
        raise SystemExit(f"[table1] no row has been evaluated yet in {root}; nothing to report.")
    plan_rows = {row: stage for row, stage in plan["rows"].items() if row not in pending}
    rows = collect_rows({row: evaluations[row] for row in plan_rows})
    first = json.loads(evaluations[next(iter(plan_rows))].read_text())
    ran = [name for row, stage in plan_rows.items() for name in (stage, f"eval_{row}")]
    ran += [speed_stage_name(plan)] if (root / speed_stage_name(plan) / "decode_speed.json").is_file() else []
    origin = {**provenance(), "stage_commits": stage_commits(root, ran), "pending_rows": pending}
    speed_dir, speedup, speed_batch = root / speed_stage_name(plan), None, 64
    if (speed_dir / "decode_speed.json").is_file():
        speed = json.loads((speed_dir / "decode_speed.json").read_text())
        machine = speed["machine"]
        speed_batch = max(int(batch) for batch in speed["speedup_student_over_teacher"])  # the paper's claim: batches
        speedup = speed["speedup_student_over_teacher"][str(speed_batch)]
        (results / "decode_speed.json").write_text(json.dumps({**speed, **origin}, indent=2) + "\n")
        speed_md = _decode_speed_markdown(speed)  # rendered by this commit's benchmark script from the measurements
        (results / "decode_speed.md").write_text(f"{speed_md.rstrip()}\n\n{_origin_line(origin)}\n")
    else:  # a plan without the speed benchmark: the machine the evaluations ran on is this one
        machine = describe_machine()
    curves = {}
    for row, stage in plan_rows.items():
        record = training_record(root / stage, root / "progress" / f"{stage}.json")
        if record["summary"]["train_minutes"] is None:  # finished by a driver that kept no progress file
            done = (root / "done" / stage).read_text().split()
            record["summary"]["train_minutes"] = float(done[-2]) if done[-1:] == ["min"] else None
        rows[list(plan_rows).index(row)].update(record.pop("summary"))
        if record["curve"]:
            curves[row] = record["curve"]
    relations = paper_relations(rows, speedup=speedup, speed_batch=speed_batch)
    (results / "table1.json").write_text(
        json.dumps({**origin, "machine": machine, "rows": rows, "relations": relations}, indent=2) + "\n"
    )
    table = render_markdown(rows, machine=machine, signature=first["bleu_signature"])
    batch = plan["evaluation"].get("batch_size", 64)
    setup = f"{first['num_sentences']} test sentences, beam {first['num_beams']}, batch {batch}"
    checked = f"\nThe paper's relations on these rows:\n\n{render_relations(relations)}" if relations else ""
    (results / "table1.md").write_text(f"{table}{checked}\nEvaluated on {setup}. {_origin_line(origin)}\n")
    plot_bleu_vs_speed(rows, results / "table1.png", title=f"BLEU against decoding speed ({machine.split(',')[0]})")
    if curves:
        plot_learning_curves(curves, results / "table1_curves.png")
    print((results / "table1.md").read_text(), flush=True)
    return rows


def _decode_speed_markdown(speed: dict) -> str:
    spec = importlib.util.spec_from_file_location("bench_decode_speed", REPO / "benchmarks" / "bench_decode_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.render_markdown(speed)


def _origin_line(origin: dict) -> str:
    line = f"Report written by commit {origin['commit']}."
    ran = sorted({commit for commits in origin.get("stage_commits", {}).values() for commit in commits})
    unrecorded = sorted(name for name, commits in origin.get("stage_commits", {}).items() if not commits)
    if ran:
        line += f" Stages run by commit {', '.join(ran)}."
    if unrecorded:
        line += f" Not recorded which commit ran {', '.join(unrecorded)}."
    if origin.get("pending_rows"):
        line += f" Not yet run: {', '.join(origin['pending_rows'])}."
    return f"{line} Software: {origin['software']}."


def main(args: list[str] | None = None) -> list[dict] | None:
    parser = argparse.ArgumentParser(
        usage="%(prog)s --config plan.yaml [--output_root DIR] [--stages a,b] [--status | --dry_run | --report] ...",
        description=__doc__ + PLAN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="The Table 1 plan: recipes/table1/quick.yaml, ...")
    parser.add_argument("--output_root", help="Where the stages write (default: the plan's output_root).")
    parser.add_argument("--results_dir", help="Where table1.json/.md/.png go (default: the plan's results_dir).")
    parser.add_argument("--stages", help="Comma-separated stages to run (default: all).")
    parser.add_argument(
        "--threads", type=int, help="CPU threads in all (default: the plan's); 1 while other jobs share the machine."
    )
    parser.add_argument("--workers", type=int, help="Stages side by side (default: the plan's).")
    parser.add_argument("--dry_run", action="store_true", help="Print the commands of the pending stages.")
    parser.add_argument("--status", action="store_true", help="Say what is done, running and left; start nothing.")
    parser.add_argument(
        "--report", action="store_true",
        help="Write results/table1.* from the rows evaluated so far (the others named as not yet run); start nothing.",
    )  # fmt: skip
    parsed = parser.parse_args(args)
    plan = load_plan(parsed.config, parsed.output_root)
    if parsed.status:
        status(plan)
        return None
    for key in ("results_dir", "threads", "workers"):
        if getattr(parsed, key) is not None:
            plan[key] = getattr(parsed, key)
    if parsed.report:
        return report(plan, finished_only=True)
    only = parsed.stages.split(",") if parsed.stages else None
    run_stages(plan, only, parsed.dry_run)
    if parsed.dry_run or only:
        return None
    return report(plan)


if __name__ == "__main__":
    main()
