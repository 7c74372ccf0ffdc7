"""Word-level KD: the loss as a pure function, the cached top-k teacher, and KDSeq2SeqTrainer on tiny models."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from helpers import SOURCES, TARGETS, random_batch, tiny_marian, tiny_model
from safetensors.torch import load_file
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.modeling_lstm_seq2seq import shift_tokens_right
from hf_seqkd.tokenization import train_tokenizer
from hf_seqkd.word_kd import (
    TOP_K_IDS,
    TOP_K_LOG_PROBS,
    DataCollatorForWordKD,
    KDSeq2SeqTrainer,
    KDSeq2SeqTrainingArguments,
    add_teacher_top_k,
    word_kd_loss,
)

REPO = Path(__file__).resolve().parent.parent
V = 50  # vocabulary of the loss-only tests


def random_logits_and_labels(batch_size=4, length=6, seed=0):
    """Student and teacher logits (B, T, V) and right-padded labels with rows of different lengths."""
    generator = torch.Generator().manual_seed(seed)
    student = (3 * torch.randn(batch_size, length, V, generator=generator)).requires_grad_()
    teacher = 3 * torch.randn(batch_size, length, V, generator=generator)
    labels = torch.randint(0, V, (batch_size, length), generator=generator)
    for row in range(batch_size):
        labels[row, max(1, length - 2 * row) :] = -100
    return student, teacher, labels


def top_k(teacher_logits, k):
    values, ids = torch.log_softmax(teacher_logits, dim=-1).topk(k, dim=-1)
    return {"teacher_top_k_log_probs": values, "teacher_top_k_ids": ids}


# ---- The loss -------------------------------------------------------------------------------------------------------


def test_alpha_zero_is_the_model_loss():
    model = tiny_model()
    input_ids, attention_mask = random_batch(batch_size=4)
    labels = torch.randint(3, 100, (4, 6))
    labels[1, 4:] = labels[3, 2:] = -100
    outputs = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert torch.equal(word_kd_loss(outputs.logits, labels, alpha=0.0).loss, outputs.loss)
    accumulated = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=40)
    assert torch.equal(word_kd_loss(outputs.logits, labels, alpha=0.0, num_items_in_batch=40).loss, accumulated.loss)


def test_alpha_one_is_the_cross_entropy_to_the_teacher():
    student, teacher, labels = random_logits_and_labels()
    parts = word_kd_loss(student, labels, teacher_logits=teacher, alpha=1.0)
    mask = labels.ne(-100)
    expected = -(torch.softmax(teacher, -1) * torch.log_softmax(student, -1)).sum(-1)[mask].mean()
    torch.testing.assert_close(parts.loss, expected)
    torch.testing.assert_close(parts.kd_sum, expected * mask.sum())
    nll = torch.nn.functional.cross_entropy(student.flatten(0, 1), labels.flatten(), reduction="sum")
    torch.testing.assert_close(parts.nll_sum, nll)  # computed (and logged) even with alpha = 1
    half = word_kd_loss(student, labels, teacher_logits=teacher, alpha=0.5).loss
    torch.testing.assert_close(half, 0.5 * (nll / mask.sum() + expected))


def test_temperature_scales_by_t_squared():
    student, teacher, labels = random_logits_and_labels()
    mask = labels.ne(-100)
    parts = word_kd_loss(student, labels, teacher_logits=teacher, alpha=1.0, temperature=2.0)
    ce = -(torch.softmax(teacher / 2, -1) * torch.log_softmax(student / 2, -1)).sum(-1)[mask].mean()
    torch.testing.assert_close(parts.loss, 4 * ce)

    # Hinton et al. (2015): for large T and zero-mean logits, the gradient of T² · CE tends to (z_s - z_t) / V per
    # token, independent of T (the error shrinks as 1/T); without the T² it would vanish as 1/T².
    student = (student - student.mean(-1, keepdim=True)).detach().requires_grad_()
    teacher = teacher - teacher.mean(-1, keepdim=True)
    limit = (student - teacher).detach() / (V * mask.sum()) * mask[..., None]
    for temperature in (10.0, 100.0, 1000.0):
        loss = word_kd_loss(student, labels, teacher_logits=teacher, alpha=1.0, temperature=temperature).loss
        (gradient,) = torch.autograd.grad(loss, student)
        assert (gradient - limit).norm() / limit.norm() < 3 / temperature


def test_one_batch_equals_two_accumulated_halves():
    student, teacher, labels = random_logits_and_labels(batch_size=4)
    kwargs = dict(alpha=0.5, temperature=2.0)
    whole = word_kd_loss(student, labels, teacher_logits=teacher, **kwargs).loss
    (whole_gradient,) = torch.autograd.grad(whole, student)
    total = labels.ne(-100).sum()
    halves = sum(
        word_kd_loss(
            student[rows], labels[rows], teacher_logits=teacher[rows], num_items_in_batch=total, **kwargs
        ).loss
        for rows in (slice(0, 2), slice(2, 4))
    )
    (halves_gradient,) = torch.autograd.grad(halves, student)
    torch.testing.assert_close(halves, whole)
    torch.testing.assert_close(halves_gradient, whole_gradient)


def test_padding_positions_change_nothing():
    student, teacher, labels = random_logits_and_labels()
    cached = top_k(teacher, 5)
    padding = labels.eq(-100)
    for teacher_kwargs in ({"teacher_logits": teacher}, cached):
        loss = word_kd_loss(student, labels, alpha=0.7, temperature=1.5, **teacher_kwargs).loss
        (gradient,) = torch.autograd.grad(loss, student)
        assert gradient[padding].abs().max() == 0
        changed = {name: value.masked_fill(padding[..., None], 7) for name, value in teacher_kwargs.items()}
        other_student = student.detach().masked_fill(padding[..., None], 1e4)
        other = word_kd_loss(other_student, labels, alpha=0.7, temperature=1.5, **changed).loss
        torch.testing.assert_close(other, loss, rtol=0, atol=0)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_top_k_with_the_whole_vocabulary_equals_the_full_distribution(temperature):
    student, teacher, labels = random_logits_and_labels()
    full = word_kd_loss(student, labels, teacher_logits=teacher, temperature=temperature)
    cached = word_kd_loss(student, labels, temperature=temperature, **top_k(teacher, V))
    torch.testing.assert_close(cached.loss, full.loss)
    truncated = word_kd_loss(student, labels, temperature=temperature, **top_k(teacher, 3))
    assert not torch.allclose(truncated.loss, full.loss)


def test_loss_errors():
    student, teacher, labels = random_logits_and_labels()
    wider = torch.randn(*labels.shape, V + 3)
    with pytest.raises(ValueError, match=rf"teacher has {V + 3} tokens and the student {V}.*hf_seqkd.seq_kd"):
        word_kd_loss(student, labels, teacher_logits=wider)
    ids = torch.full((*labels.shape, 2), V + 1)
    with pytest.raises(ValueError, match=rf"teacher ids go up to {V + 1} and the student has {V} tokens.*seq_kd"):
        word_kd_loss(student, labels, teacher_top_k_log_probs=torch.zeros(ids.shape), teacher_top_k_ids=ids)
    with pytest.raises(ValueError, match="needs the teacher"):
        word_kd_loss(student, labels, alpha=0.5)
    with pytest.raises(ValueError, match="both"):
        word_kd_loss(student, labels, teacher_top_k_ids=top_k(teacher, 2)["teacher_top_k_ids"])
    with pytest.raises(ValueError, match="alpha"):
        word_kd_loss(student, labels, teacher_logits=teacher, alpha=1.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"alpha": -0.1}, "alpha"), ({"alpha": 1.01}, "alpha"), ({"temperature": 0.0}, "temperature"),
     ({"teacher_top_k": 0}, "teacher_top_k")],
)  # fmt: skip
def test_arguments_are_validated(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        KDSeq2SeqTrainingArguments(output_dir=str(tmp_path), **kwargs)


# ---- The cached top-k ----------------------------------------------------------------------------------------------


@pytest.fixture
def dataset(tokenizer):
    features = tokenizer(SOURCES)
    features["labels"] = tokenizer(text_target=TARGETS)["input_ids"]
    return Dataset.from_dict(dict(features))


def test_add_teacher_top_k_shapes_dtypes_and_values(tokenizer, dataset):
    teacher = tiny_model(seed=1, vocab_size=len(tokenizer))
    cached = add_teacher_top_k(dataset, teacher, k=4, batch_size=2)  # 3 length-sorted batches
    assert cached.features[TOP_K_LOG_PROBS].feature.feature.dtype == "float16"
    assert cached.features[TOP_K_IDS].feature.feature.dtype == "int32"
    for row in (0, 4):
        example = cached.with_format("torch")[row]
        assert example[TOP_K_LOG_PROBS].shape == example[TOP_K_IDS].shape == (len(example["labels"]), 4)
        with torch.no_grad():  # the same row alone, unpadded
            logits = teacher(input_ids=example["input_ids"][None], labels=example["labels"][None]).logits[0]
        expected = torch.log_softmax(logits, -1).topk(4, dim=-1)
        torch.testing.assert_close(example[TOP_K_IDS].long(), expected.indices)
        torch.testing.assert_close(example[TOP_K_LOG_PROBS].float(), expected.values, atol=2e-3, rtol=1e-3)


def test_fingerprint_follows_the_teacher_and_k(tokenizer, dataset):
    teacher = tiny_model(seed=1, vocab_size=len(tokenizer))
    first = add_teacher_top_k(dataset, teacher, k=3)._fingerprint
    assert add_teacher_top_k(dataset, teacher, k=3)._fingerprint == first
    assert add_teacher_top_k(dataset, teacher, k=4)._fingerprint != first
    with torch.no_grad():
        teacher.lm_head.bias[5] += 1e-3
    assert add_teacher_top_k(dataset, teacher, k=3)._fingerprint != first


def test_cached_top_k_of_the_whole_vocabulary_equals_online(tokenizer, dataset):
    student, teacher = tiny_model(seed=0, vocab_size=len(tokenizer)), tiny_model(seed=1, vocab_size=len(tokenizer))
    cached = add_teacher_top_k(dataset, teacher, k=len(tokenizer))
    collator = DataCollatorForWordKD(DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100))
    batch = collator([cached[i] for i in range(len(cached))])
    assert batch[TOP_K_LOG_PROBS].shape == (*batch["labels"].shape, len(tokenizer))
    inputs = {name: batch[name] for name in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        student_logits, teacher_logits = student(**inputs).logits, teacher(**inputs).logits
    online = word_kd_loss(student_logits, batch["labels"], teacher_logits=teacher_logits, temperature=2.0)
    offline = word_kd_loss(
        student_logits,
        batch["labels"],
        teacher_top_k_log_probs=batch[TOP_K_LOG_PROBS],
        teacher_top_k_ids=batch[TOP_K_IDS],
        temperature=2.0,
    )
    torch.testing.assert_close(offline.loss, online.loss, rtol=1e-3, atol=1e-3)  # float16 log-probs


# ---- The trainer ---------------------------------------------------------------------------------------------------


def kd_args(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=3,
        learning_rate=0.01,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        train_sampling_strategy="sequential",
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return KDSeq2SeqTrainingArguments(**kwargs)


def state(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_online_trainer_keeps_the_teacher_frozen_unsaved_and_out_of_the_optimizer(tmp_path, tokenizer, dataset):
    teacher_dir = tmp_path / "teacher"
    tiny_model(seed=1, vocab_size=len(tokenizer)).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    student = tiny_model(seed=0, vocab_size=len(tokenizer)).train()
    args = kd_args(
        tmp_path / "out",
        teacher_model_name_or_path=str(teacher_dir),
        save_strategy="steps",
        save_steps=3,
        eval_strategy="steps",
        eval_steps=3,
        predict_with_generate=True,
        generation_max_length=8,
    )
    trainer = KDSeq2SeqTrainer(
        model=student, args=args, train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer
    )
    teacher = trainer.teacher_model
    before = state(teacher)
    trainer.train()

    assert not teacher.training and not any(param.requires_grad for param in teacher.parameters())
    for name, tensor in state(teacher).items():
        assert torch.equal(tensor, before[name]), name
    optimized = {id(param) for group in trainer.optimizer.param_groups for param in group["params"]}
    assert optimized == {id(param) for param in student.parameters() if param.requires_grad}
    assert not optimized & {id(param) for param in teacher.parameters()}

    trainer.save_model()
    student_keys = set(student.state_dict())
    for folder in (tmp_path / "out", tmp_path / "out" / "checkpoint-3"):
        assert set(load_file(folder / "model.safetensors")) <= student_keys
        assert {path.name for path in folder.glob("*.safetensors")} == {"model.safetensors"}
    saved = load_file(tmp_path / "out" / "model.safetensors")
    assert torch.equal(saved["lm_head.weight"], student.lm_head.weight.detach())

    logs = trainer.state.log_history
    assert all({"loss", "nll_loss", "kd_loss"} <= set(log) for log in logs[:3])
    assert {"eval_loss", "eval_nll_loss", "eval_kd_loss"} <= set(logs[3])
    # One step per log, steps of equal weight: the parts combine into the logged loss.
    for log in logs[:3]:
        assert log["loss"] == pytest.approx(0.5 * log["nll_loss"] + 0.5 * log["kd_loss"], rel=1e-3)


# Built directly, not through the recipe: the trainer itself turns pinned memory off where there is no accelerator.
@pytest.mark.filterwarnings("error:'pin_memory' argument is set as true")
def test_offline_trainer_uses_the_cached_columns(tmp_path, tokenizer, dataset):
    teacher = tiny_model(seed=1, vocab_size=len(tokenizer))
    cached = add_teacher_top_k(dataset, teacher, k=8)
    student = tiny_model(seed=0, vocab_size=len(tokenizer)).train()
    before = state(student)
    # run_training passes a DataCollatorForSeq2Seq: the trainer wraps it for the 2D columns.
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    args = kd_args(tmp_path, eval_strategy="steps", eval_steps=3)
    trainer = KDSeq2SeqTrainer(
        model=student,
        teacher_model=None,
        args=args,
        data_collator=collator,
        train_dataset=cached,
        eval_dataset=cached,
        processing_class=tokenizer,
    )
    assert trainer.teacher_model is None
    trainer.train()
    assert not torch.equal(state(student)["lm_head.weight"], before["lm_head.weight"])
    assert {"eval_nll_loss", "eval_kd_loss"} <= set(trainer.state.log_history[3])

    with pytest.raises(ValueError, match="add_teacher_top_k"):
        KDSeq2SeqTrainer(model=student, args=kd_args(tmp_path), train_dataset=dataset, processing_class=tokenizer)


# Plain SGD for comparisons of weights: Adam divides by the gradient's own scale, which blows float rounding up.
SGD = dict(optim="sgd", learning_rate=0.5, lr_scheduler_type="constant")


def test_alpha_zero_trains_as_seq2seq_trainer(tmp_path, tokenizer, dataset):
    common = dict(max_steps=2, per_device_train_batch_size=1, gradient_accumulation_steps=3, logging_steps=1, **SGD)
    common.update(train_sampling_strategy="sequential", report_to="none", save_strategy="no", disable_tqdm=True)
    common.update(dataloader_pin_memory=False)  # the plain Seq2SeqTrainer would warn: no accelerator here
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
    plain = tiny_model(seed=0, vocab_size=len(tokenizer)).train()
    Seq2SeqTrainer(
        model=plain,
        args=Seq2SeqTrainingArguments(output_dir=str(tmp_path / "plain"), **common),
        train_dataset=dataset,
        data_collator=collator,
    ).train()
    distilled = tiny_model(seed=0, vocab_size=len(tokenizer)).train()
    trainer = KDSeq2SeqTrainer(
        model=distilled,
        teacher_model=tiny_model(seed=1, vocab_size=len(tokenizer)),
        args=KDSeq2SeqTrainingArguments(output_dir=str(tmp_path / "kd"), alpha=0.0, **common),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    trainer.train()
    for name, tensor in state(plain).items():
        assert torch.equal(state(distilled)[name], tensor), name
    assert "kd_loss" not in trainer.state.log_history[0]


def test_gradient_accumulation_is_exact(tmp_path, tokenizer, dataset):
    """Batch 4 in one step, or 4 batches of 1 accumulated: the same update, with the KD term too."""
    teacher = tiny_model(seed=1, vocab_size=len(tokenizer))
    models = []
    for batch_size, steps in ((4, 1), (1, 4)):
        student = tiny_model(seed=0, vocab_size=len(tokenizer)).train()
        args = kd_args(
            tmp_path / str(batch_size),
            max_steps=1,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=steps,
            alpha=0.6,
            temperature=2.0,
            **SGD,
        )
        KDSeq2SeqTrainer(
            model=student, teacher_model=teacher, args=args, train_dataset=dataset, processing_class=tokenizer
        ).train()
        models.append(state(student))
    initial = state(tiny_model(seed=0, vocab_size=len(tokenizer)))
    assert not torch.equal(models[0]["lm_head.weight"], initial["lm_head.weight"])
    for name, tensor in models[0].items():
        torch.testing.assert_close(models[1][name], tensor, rtol=1e-5, atol=1e-6)


def test_marian_teacher_builds_its_own_decoder_inputs(tmp_path, tokenizer, dataset):
    # Larger weights, as in tiny_model: a teacher with opinions.
    teacher = tiny_marian(tokenizer, seed=2, scale=8.0)
    student = tiny_model(seed=0, vocab_size=len(tokenizer))
    trainer = KDSeq2SeqTrainer(
        model=student,
        teacher_model=teacher,
        args=kd_args(tmp_path, alpha=1.0, max_steps=1, per_device_eval_batch_size=6),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([dataset[i] for i in range(3)])
    student.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(student, batch)
        student_logits = student(**batch).logits
        teacher_logits = teacher(**batch).logits  # decoder inputs from labels after Marian's own start token
        # The student's decoder inputs (after <s>) would give the teacher other logits: the test can tell.
        student_inputs = shift_tokens_right(
            batch["labels"], tokenizer.pad_token_id, student.config.decoder_start_token_id
        )
        wrong = teacher(**batch, decoder_input_ids=student_inputs).logits
    assert (wrong - teacher_logits).abs().max() > 0.1
    expected = word_kd_loss(student_logits, batch["labels"], teacher_logits=teacher_logits, alpha=1.0).loss
    torch.testing.assert_close(loss, expected)
    # Evaluation before training (the teacher is prepared on first use, after the student), then training.
    metrics = trainer.evaluate(dataset)
    assert metrics["eval_loss"] == pytest.approx(metrics["eval_kd_loss"], rel=1e-5)  # alpha = 1, one batch of 6
    trainer.train()


def test_different_vocabularies_are_refused_at_start(tmp_path, tokenizer, dataset):
    student = tiny_model(seed=0, vocab_size=len(tokenizer))
    wider = tiny_model(seed=1, vocab_size=len(tokenizer) + 8)
    with pytest.raises(ValueError, match=rf"{len(tokenizer) + 8} tokens and the student {len(tokenizer)}.*seq_kd"):
        KDSeq2SeqTrainer(
            model=student,
            teacher_model=wider,
            args=kd_args(tmp_path),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    other_tokenizer = train_tokenizer(itertools.chain(TARGETS, SOURCES[:2]), vocab_size=90, min_frequency=1)
    same_size = tiny_model(seed=1, vocab_size=len(tokenizer))
    with pytest.raises(ValueError, match="teacher's tokenizer .* other ids than the student's.*seq_kd"):
        KDSeq2SeqTrainer(
            model=student,
            teacher_model=same_size,
            teacher_processing_class=other_tokenizer,
            args=kd_args(tmp_path),
            train_dataset=dataset,
            processing_class=tokenizer,
        )


# ---- Several processes and the benchmark (slow) -------------------------------------------------------------------

DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from datasets import Dataset
from helpers import SOURCES, TARGETS, tiny_model
from hf_seqkd.arguments import end_process_group
from hf_seqkd.data import DataArguments, load_parallel_dataset, source_and_target_texts
from hf_seqkd.modeling_lstm_seq2seq import shift_tokens_right
from hf_seqkd.tokenization import train_tokenizer
from hf_seqkd.word_kd import KDSeq2SeqTrainer, KDSeq2SeqTrainingArguments
import itertools
tokenizer = train_tokenizer(itertools.chain(SOURCES, TARGETS), vocab_size=120, min_frequency=1)
features = tokenizer(SOURCES[:4])
features["labels"] = tokenizer(text_target=TARGETS[:4])["input_ids"]
args = KDSeq2SeqTrainingArguments(
    output_dir=sys.argv[1], max_steps=1, per_device_train_batch_size=int(sys.argv[2]), optim="sgd",
    learning_rate=0.5, train_sampling_strategy="sequential", report_to="none", save_strategy="no",
    alpha=0.6, temperature=2.0, disable_tqdm=True, logging_steps=1, per_device_eval_batch_size=2)
dataset = Dataset.from_dict(dict(features))
trainer = KDSeq2SeqTrainer(model=tiny_model(0, vocab_size=len(tokenizer)).train(),
    teacher_model=tiny_model(1, vocab_size=len(tokenizer)), args=args,
    train_dataset=dataset, eval_dataset=dataset, processing_class=tokenizer)
trainer.train()
trainer.evaluate()
trainer.save_model()
trainer.save_state()
end_process_group()
"""


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    """DDP over 2 CPU processes, batch 2 each, makes the update of 1 process with batch 4 (KD term included)."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    commands = {
        "one": [sys.executable, str(script), str(tmp_path / "one"), "4"],
        "two": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
        + [str(tmp_path / "two"), "2"],
    }
    for command in commands.values():
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-4, atol=1e-5)
    # The logged parts are token-weighted means over all processes: the same in both runs.
    logs = {run: json.loads((tmp_path / run / "trainer_state.json").read_text())["log_history"] for run in commands}
    for key, index in (("nll_loss", 0), ("kd_loss", 0), ("loss", 0), ("eval_nll_loss", -1), ("eval_kd_loss", -1)):
        assert logs["two"][index][key] == pytest.approx(logs["one"][index][key], rel=1e-5), key


@pytest.mark.slow
def test_benchmark_runs_on_a_tiny_teacher(tmp_path):
    raw = load_parallel_dataset(DataArguments(dataset_name="bible_es_en", max_train_samples=300))
    sources, targets = source_and_target_texts(raw["train"], DataArguments(dataset_name="bible_es_en"))
    tokenizer = train_tokenizer(itertools.chain(sources, targets), vocab_size=400, min_frequency=1)
    teacher_dir = tmp_path / "teacher"
    tiny_model(seed=1, vocab_size=len(tokenizer)).save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    command = [
        sys.executable,
        "benchmarks/bench_word_kd.py",
        "--teacher",
        str(teacher_dir),
        "--steps",
        "3",
        "--k",
        "8",
    ]
    command += ["--max_train_samples", "32", "--max_eval_samples", "4", "--batch_size", "4", "--hidden_size", "8"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "| online |" in result.stdout and "| offline (top-8) |" in result.stdout
