"""Make Seq-KD or Seq-Inter training data: the teacher translates the training set (Kim & Rush 2016).

    python recipes/distill_data.py --config recipes/bible_es_en/seq_kd_data/config.yaml
    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 recipes/distill_data.py --config ...     # 2 CPU processes
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/distill_data.py --config ...

Each process translates its share of the data in shards saved under `<output_dir>/shards/`; a killed run started
again with the same command skips the finished shards. The main process then writes the whole dataset (distilled
training split, other splits copied) with its card to `<output_dir>/dataset`, loadable with
`datasets.load_from_disk` or as `--dataset_name <output_dir>/dataset` in the training recipes.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import hf_seqkd  # noqa: F401  first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP

# isort: split
import torch
from accelerate import PartialState
from datasets import DatasetDict
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seqkd.arguments import end_process_group, parse_args, setup_logging
from hf_seqkd.data import DataArguments, load_parallel_dataset
from hf_seqkd.evaluation import corpus_scores
from hf_seqkd.hub import push_dataset, render_distilled_dataset_card
from hf_seqkd.seq_kd import (
    SequenceDistillationConfig,
    check_distillation_inputs,
    distill_in_shards,
    read_distillation_record,
    write_distillation_record,
)
from hf_seqkd.translation import resolve_dtype

logger = logging.getLogger(__name__)


@dataclass
class DistillDataArguments:
    """
    Args:
        teacher_model_name_or_path (`str`): the teacher (folder or Hub id); any transformers seq2seq model.
        output_dir (`str`): where shards, the dataset and its card go.
        splits (`list[str]`): the splits to distill; the others are copied unchanged.
        shard_size (`int`): sentences per saved shard (what a killed run can lose).
        dtype (`str`): the teacher's dtype for generation; `auto` measures whether this machine multiplies bfloat16
            matrices faster than float32 and takes the faster ([`~hf_seqkd.translation.fastest_dtype`]).
        push_to_hub (`bool`), hub_dataset_id (`str`), hub_private_repo (`bool`): upload the dataset and its card.
        trust_remote_code (`bool`): allow teachers that need their own code.
    """

    teacher_model_name_or_path: str = field(metadata={"help": "The teacher: a folder or Hub id."})
    output_dir: str = field(metadata={"help": "Where shards, the dataset and its card go."})
    splits: list[str] = field(default_factory=lambda: ["train"], metadata={"help": "Splits to distill."})
    shard_size: int = field(default=2000, metadata={"help": "Sentences per saved shard."})
    dtype: str = field(
        default="float32",
        metadata={
            "help": "Teacher dtype; auto: the faster of float32 and bfloat16 here, measured.",
            "choices": ["float32", "bfloat16", "float16", "auto"],
        },
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the dataset and its card."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "The Hub dataset repository, user/name."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Make the Hub repository private."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow teachers that need their own code."})


ARGUMENTS = (DistillDataArguments, SequenceDistillationConfig, DataArguments)


def main(args: list[str] | None = None) -> DatasetDict | None:
    run_args, distill_config, data_args = parse_args(ARGUMENTS, args)
    # On a machine without GPU, processes started by torchrun only form a group of CPU processes when asked to.
    state = PartialState(cpu=not torch.cuda.is_available())
    setup_logging(state.is_main_process)
    if run_args.push_to_hub and not run_args.hub_dataset_id:
        raise ValueError("--push_to_hub needs --hub_dataset_id user/name.")

    raw = load_parallel_dataset(data_args)
    missing = [split for split in run_args.splits if split not in raw]
    if missing:
        raise ValueError(f"No split {missing} in the data, which has {list(raw)}.")
    teacher = AutoModelForSeq2SeqLM.from_pretrained(
        run_args.teacher_model_name_or_path, trust_remote_code=run_args.trust_remote_code
    ).to(device=state.device, dtype=resolve_dtype(run_args.dtype, state.device))
    tokenizer = AutoTokenizer.from_pretrained(
        run_args.teacher_model_name_or_path, trust_remote_code=run_args.trust_remote_code
    )

    for split in run_args.splits:  # every split before the first shard of any: a bad row fails now, not hours later
        check_distillation_inputs(raw[split], teacher, tokenizer, data_args.source_lang, data_args.target_lang)

    output_dir = Path(run_args.output_dir)
    # What an earlier run measured: a run that finds every shard done computes nothing and keeps those numbers.
    earlier = (read_distillation_record(output_dir / "dataset") or {}).get("splits", {})
    result, split_stats = DatasetDict(), {}
    for split, dataset in raw.items():
        if split not in run_args.splits:
            result[split] = dataset
            continue
        distilled, stats = distill_in_shards(
            dataset,
            teacher,
            tokenizer,
            distill_config,
            data_args.source_lang,
            data_args.target_lang,
            output_dir / "shards" / split,
            run_args.shard_size,
            state,
        )
        if stats["sentences"] == 0:
            # Every shard was done already: this run measured no speed.
            logger.info(f"{split}: every shard was distilled by an earlier run.")
            measured = earlier.get(split, {})
            stats = {"sentences_per_sec": measured.get("sentences_per_sec"), "seconds": measured.get("seconds")}
        else:
            logger.info(f"{split}: distilled {stats['sentences']} sentences, {stats['sentences_per_sec']:.1f}/s")
        if state.is_main_process:
            new_targets = [pair[data_args.target_lang] for pair in distilled["translation"]]
            scores = corpus_scores(new_targets, distilled["reference"])
            split_stats[split] = {
                "num_rows": len(distilled),
                "bleu": scores["bleu"],
                "sentences_per_sec": stats["sentences_per_sec"],
                "seconds": stats["seconds"],
                "bleu_signature": scores["bleu_signature"],
            }
            result[split] = distilled
    if not state.is_main_process:
        return None

    dataset_dir = output_dir / "dataset"
    result.save_to_disk(dataset_dir)
    repo_id = run_args.hub_dataset_id or str(dataset_dir)
    card = render_distilled_dataset_card(
        repo_id=repo_id,
        teacher=run_args.teacher_model_name_or_path,
        config=distill_config,
        source_lang=data_args.source_lang,
        target_lang=data_args.target_lang,
        source_dataset=data_args.dataset_name or data_args.train_file,
        splits=split_stats,
        bleu_signature=next(iter(split_stats.values()))["bleu_signature"],
    )
    card.save(dataset_dir / "README.md")
    # The dtype `--dtype auto` chose is part of the record.
    write_distillation_record(
        dataset_dir, distill_config, run_args.teacher_model_name_or_path, teacher.dtype, split_stats
    )
    for split, row in split_stats.items():
        per_sec = row["sentences_per_sec"]
        speed = "speed not measured" if per_sec is None else f"{per_sec:.1f} sentences/s"
        print(
            f"{split}: {row['num_rows']} pairs, BLEU of new targets vs references {row['bleu']:.2f}, {speed}",
            flush=True,
        )
    if run_args.push_to_hub:
        push_dataset(result, card, run_args.hub_dataset_id, private=run_args.hub_private_repo)
    return result


if __name__ == "__main__":
    main()
    end_process_group()
