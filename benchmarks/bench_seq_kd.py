"""Throughput of Seq-KD / Seq-Inter data generation with `recipes/distill_data.py`, as a user runs it.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_seq_kd.py --teacher outputs/bible_es_en/teacher \
        --num_sentences 28227 --seq_inter_sentences 500

Runs the recipe on the first N training sentences of the bundled corpus: Seq-KD (beam K, the paper's 5 by default) in
1 process and in 2 processes (torchrun, one thread each), and Seq-Inter (K = 35 by default) in 1 process; optionally
in bfloat16. Each run starts from an empty output folder (no shard or cache reuse). Prints a markdown table of
sentences/s.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hf_seqkd.modes import SEQUENCE_DATA

REPO = Path(__file__).resolve().parent.parent


def run(teacher, mode, num_beams, processes, num_sentences, dtype, batch_size, threads):
    with tempfile.TemporaryDirectory() as folder:
        launcher = [sys.executable]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        if processes > 1:
            launcher += ["-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
            env["OMP_NUM_THREADS"] = "1"
        else:
            env["OMP_NUM_THREADS"] = str(threads)
        command = [
            *launcher,
            "recipes/distill_data.py",
            "--teacher_model_name_or_path",
            teacher,
            "--dataset_name",
            "bible_es_en",
            "--max_train_samples",
            str(num_sentences),
            "--max_eval_samples",
            "1",
            "--output_dir",
            folder,
            "--mode",
            mode,
            "--num_beams",
            str(num_beams),
            "--dtype",
            dtype,
            "--batch_size",
            str(batch_size),
            "--max_new_tokens",
            "80",
            "--shard_size",
            "1000",
            # A fresh datasets cache too, so that nothing is served from an earlier run.
        ]
        env["HF_DATASETS_CACHE"] = str(Path(folder) / "cache")
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - start
        stats = json.loads((Path(folder) / "dataset" / "distillation.json").read_text())["splits"]["train"]
    return stats, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="outputs/bible_es_en/teacher")
    parser.add_argument("--num_sentences", type=int, default=2000)
    parser.add_argument("--seq_inter_sentences", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="threads of a single process")
    parser.add_argument("--dtypes", nargs="+", default=["float32"])
    for kind, data in SEQUENCE_DATA.items():
        parser.add_argument(f"--{kind}_num_beams", type=int, default=data.default_num_beams, help=f"K of {kind}")
    args = parser.parse_args()

    print("| mode | K | processes | dtype | sentences | sentences/s | wall s | BLEU of new targets vs refs |")
    print("|---|---|---|---|---|---|---|---|")
    runs = [("seq_kd", args.seq_kd_num_beams, processes, args.num_sentences, 64) for processes in (1, 2)]
    runs.append(("seq_inter", args.seq_inter_num_beams, 1, args.seq_inter_sentences, 16))
    for dtype in args.dtypes:
        for mode, num_beams, processes, sentences, batch_size in runs:
            stats, wall = run(args.teacher, mode, num_beams, processes, sentences, dtype, batch_size, args.threads)
            print(
                f"| {mode} | {num_beams} | {processes} | {dtype} | {stats['num_rows']} | "
                f"{stats['sentences_per_sec']:.1f} | {wall:.0f} | {stats['bleu']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
