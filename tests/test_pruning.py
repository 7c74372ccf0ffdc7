"""Magnitude pruning (Kim & Rush 2016, sec. 5): exact counts, masks held through training and resumption, and the
compact on-disk form."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from helpers import SOURCES, TARGETS, random_batch, tiny_model
from transformers import AutoModelForSeq2SeqLM, Seq2SeqTrainingArguments

from hf_seqkd.pruning import (
    MASKS_NAME,
    SPARSE_WEIGHTS_NAME,
    PruningMaskCallback,
    apply_masks,
    load_masks,
    load_pruned,
    magnitude_prune,
    masks_from_zeros,
    pruning_report,
    save_pruned,
)
from hf_seqkd.training import run_training

REPO = Path(__file__).resolve().parent.parent


def weight_matrices(model):
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.ndim >= 2}


def test_class_blind_prunes_exactly_the_smallest_weights_under_one_threshold():
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight.mul_(10.0)  # a class of large weights
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    masks = magnitude_prune(model, 0.8)

    matrices = {name: w for name, w in before.items() if w.ndim >= 2}
    assert set(masks) == set(matrices)  # embeddings, LSTM, attention and softmax weights; no biases
    total = sum(w.numel() for w in matrices.values())
    assert sum(int((~mask).sum()) for mask in masks.values()) == math.floor(0.8 * total + 0.5)
    # One global threshold: every pruned magnitude is at most every kept one, across all tensors.
    pruned = torch.cat([matrices[name][~mask].abs() for name, mask in masks.items()])
    kept = torch.cat([matrices[name][mask].abs() for name, mask in masks.items()])
    assert pruned.max() <= kept.min()
    assert pruned.max() == torch.cat([w.abs().flatten() for w in matrices.values()]).kthvalue(len(pruned)).values
    # ... so the large softmax weights are barely pruned, the others more (class-uniform would give 80% everywhere).
    sparsity = {name: float((~mask).float().mean()) for name, mask in masks.items()}
    assert sparsity.pop("lm_head.weight") < 0.2 and min(sparsity.values()) > 0.8
    for name, param in model.named_parameters():
        if name in masks:
            assert torch.equal(param[~masks[name]], torch.zeros_like(param[~masks[name]]))
            assert torch.equal(param[masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(param, before[name])  # biases untouched


def test_class_uniform_prunes_each_tensor_by_the_ratio():
    model = tiny_model()
    before = weight_matrices(model)
    masks = magnitude_prune(model, 0.5, scheme="class-uniform")
    for name, mask in masks.items():
        assert int((~mask).sum()) == math.floor(0.5 * mask.numel() + 0.5)
        assert before[name][~mask].abs().max() <= before[name][mask].abs().min()


def test_ties_are_broken_by_position_to_the_exact_count():
    model = tiny_model()
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(0.5)
    masks = magnitude_prune(model, 0.3)
    total = sum(mask.numel() for mask in masks.values())
    flat = torch.cat([mask.flatten() for mask in masks.values()])
    pruned = math.floor(0.3 * total + 0.5)
    assert not flat[:pruned].any() and flat[pruned:].all()  # the first entries in parameter order


def test_options_and_errors():
    model = tiny_model()
    with_biases = magnitude_prune(tiny_model(), 0.5, prune_biases=True)
    assert set(with_biases) == {name for name, _ in model.named_parameters()}
    assert set(magnitude_prune(tiny_model(), 0.5, include=r"^lm_head\.")) == {"lm_head.weight"}
    assert set(magnitude_prune(tiny_model(), 0.5, include=lambda name, p: "lstm" in name)) == {
        name for name, p in model.named_parameters() if "lstm" in name and p.ndim == 2
    }
    assert all(mask.all() for mask in magnitude_prune(model, 0.0).values())
    for ratio in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            magnitude_prune(model, ratio)
    with pytest.raises(ValueError, match="scheme"):
        magnitude_prune(model, 0.5, scheme="class-distribution")
    with pytest.raises(ValueError, match="No parameter"):
        magnitude_prune(model, 0.5, include="no such name")


def test_pruning_a_pruned_model_again_gives_its_masks():
    model = tiny_model()
    masks = magnitude_prune(model, 0.6)
    again = magnitude_prune(model, 0.6)
    from_zeros = masks_from_zeros(model)
    for name, mask in masks.items():
        assert torch.equal(again[name], mask) and torch.equal(from_zeros[name], mask)


def adamw_steps(model, optimizer, steps, masks=None, mask_gradients=False):
    input_ids, attention_mask = random_batch()
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss
        loss.backward()
        if mask_gradients:
            for name, mask in masks.items():
                model.get_parameter(name).grad.masked_fill_(~mask, 0)
        optimizer.step()
        optimizer.zero_grad()
        if masks is not None and not mask_gradients:
            apply_masks(model, masks, optimizer)


def test_zero_gradients_are_not_enough_under_adam_momentum_and_weight_decay():
    for hold in (False, True):
        model = tiny_model().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        adamw_steps(model, optimizer, 2)  # Adam's moments are now nonzero everywhere
        masks = magnitude_prune(model, 0.8)
        if hold:
            apply_masks(model, masks, optimizer)
            adamw_steps(model, optimizer, 3, masks)
        else:
            adamw_steps(model, optimizer, 3, masks, mask_gradients=True)
        pruned = torch.cat([model.get_parameter(name)[~mask] for name, mask in masks.items()])
        assert bool((pruned == 0).all()) is hold
        if hold:
            state = optimizer.state[model.get_parameter("lm_head.weight")]
            assert not state["exp_avg"][~masks["lm_head.weight"]].any()


def test_callback_without_masks_holds_the_zeros_of_a_loaded_pruned_model(tmp_path):
    model = tiny_model()
    masks = magnitude_prune(model, 0.7)
    save_pruned(model, tmp_path)
    model = load_pruned(tmp_path).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    callback = PruningMaskCallback()
    args, state = (
        SimpleNamespace(output_dir=str(tmp_path), resume_from_checkpoint=None),
        SimpleNamespace(global_step=0),
    )
    callback.on_train_begin(args, state, None, model=model, optimizer=optimizer)
    assert callback.masks.keys() == masks.keys()
    input_ids, attention_mask = random_batch()
    for _ in range(3):
        model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
        for name, mask in masks.items():  # the gradient hooks: clipping sees the pruned network only
            assert not model.get_parameter(name).grad[~mask].any()
        optimizer.step()
        callback.on_optimizer_step(args, state, None, optimizer=optimizer)
        optimizer.zero_grad()
    for name, mask in masks.items():
        assert torch.equal(model.get_parameter(name) != 0, mask), name
    callback.on_train_end(args, state, None)
    assert not callback._hooks


@pytest.fixture
def tiny_dataset(tokenizer):
    features = tokenizer(SOURCES)
    features["labels"] = tokenizer(text_target=TARGETS)["input_ids"]
    return Dataset.from_dict(dict(features))


def train(model, tokenizer, dataset, output_dir, max_steps, callback):
    args = Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        weight_decay=0.1,
        optim="adamw_torch",
        save_strategy="steps",
        save_steps=2,
        eval_strategy="no",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    return run_training(model, tokenizer, dataset, None, args, callbacks=[callback])


def test_trainer_holds_pruned_weights_at_zero_and_resumes_with_the_masks(tmp_path, tokenizer, tiny_dataset):
    model = tiny_model(vocab_size=len(tokenizer)).train()
    masks = magnitude_prune(model, 0.8)
    pruned_before = weight_matrices(model)
    trainer = train(model, tokenizer, tiny_dataset, tmp_path, 4, PruningMaskCallback(masks))
    assert trainer.state.global_step == 4
    for name, mask in masks.items():
        weight = trainer.model.get_parameter(name).detach()
        assert not weight[~mask].any(), name
    changed = [
        name for name, mask in masks.items() if not torch.equal(trainer.model.get_parameter(name), pruned_before[name])
    ]
    assert changed  # the kept weights did train
    saved = load_masks(tmp_path / "checkpoint-4" / MASKS_NAME)
    assert all(torch.equal(saved[name], mask) for name, mask in masks.items())

    # Resumed with a dense model and masks that prune nothing, the run takes the checkpoint's masks back.
    keep_all = {name: torch.ones_like(mask) for name, mask in masks.items()}
    callback = PruningMaskCallback(keep_all)
    trainer = train(tiny_model(vocab_size=len(tokenizer)).train(), tokenizer, tiny_dataset, tmp_path, 6, callback)
    assert trainer.state.global_step == 6
    for name, mask in masks.items():
        assert torch.equal(callback.masks[name], mask)
        weight = trainer.model.get_parameter(name).detach()
        assert not weight[~mask].any(), name
        assert int(torch.count_nonzero(weight)) == int(mask.sum())  # nothing else became zero either
    final = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)  # trainer.save_model's dense copy
    assert all(not final.get_parameter(name)[~mask].any() for name, mask in masks.items())


@pytest.mark.parametrize("tie", [False, True])
def test_pruned_model_round_trips_dense_and_compact(tmp_path, tokenizer, tie):
    model = tiny_model(vocab_size=len(tokenizer), tie_word_embeddings=tie, hidden_size=32, embedding_size=32)
    magnitude_prune(model, 0.8)
    model.save_pretrained(tmp_path / "dense")
    tokenizer.save_pretrained(tmp_path / "dense")
    save_pruned(model, tmp_path / "compact", tokenizer)
    assert (tmp_path / "compact" / SPARSE_WEIGHTS_NAME).is_file()
    assert not (tmp_path / "compact" / "model.safetensors").exists()
    assert {"config.json", "generation_config.json", "tokenizer.json", "modeling_lstm_seq2seq.py"} <= set(
        os.listdir(tmp_path / "compact")
    )

    report = pruning_report(
        model, teacher_params=10 * model.num_parameters(), folder=[tmp_path / "dense", tmp_path / "compact"]
    )
    dense_bytes = (tmp_path / "dense" / "model.safetensors").stat().st_size
    sparse_bytes = (tmp_path / "compact" / SPARSE_WEIGHTS_NAME).stat().st_size
    assert report["dense_bytes"] == dense_bytes and report["sparse_bytes"] == sparse_bytes
    print(f"tie={tie}: dense {dense_bytes} bytes, compact {sparse_bytes} bytes ({dense_bytes / sparse_bytes:.2f}x)")
    assert sparse_bytes < 0.35 * dense_bytes  # 80% sparse float32: about 0.93 of 4 bytes an entry
    assert report["params_nonzero"] == int(sum(torch.count_nonzero(p) for p in model.parameters()))
    assert 0.75 < report["sparsity"] < 0.8  # biases are kept
    assert report["teacher_to_nonzero"] == pytest.approx(10 * report["params"] / report["params_nonzero"])

    input_ids, attention_mask = random_batch(vocab_size=len(tokenizer))
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=3, max_new_tokens=8)
    expected = model.eval().generate(**kwargs)
    for loaded in (AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "dense"), load_pruned(tmp_path / "compact")):
        assert not loaded.training
        for name, tensor in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
        assert (loaded.lm_head.weight is loaded.model.decoder.embed_tokens.weight) is tie
        assert loaded.generation_config.max_length == model.generation_config.max_length
        assert torch.equal(loaded.generate(**kwargs), expected)
    assert load_pruned(tmp_path / "compact", dtype=torch.bfloat16).lm_head.weight.dtype == torch.bfloat16


def test_prune_student_recipe_prunes_retrains_evaluates_and_saves_compact(tmp_path, tokenizer):
    student, teacher = tmp_path / "student", tmp_path / "teacher"
    tiny_model(vocab_size=len(tokenizer), max_target_length=16).save_pretrained(student)
    tokenizer.save_pretrained(student)
    tiny_model(vocab_size=len(tokenizer), hidden_size=64, embedding_size=64).save_pretrained(teacher)
    out = tmp_path / "pruned"
    command = [
        sys.executable, "recipes/prune_student.py",
        "--model_name_or_path", str(student), "--teacher_model_name_or_path", str(teacher),
        "--ratio", "0.8", "--dataset_name", "bible_es_en", "--max_train_samples", "16", "--max_eval_samples", "4",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--save_steps", "2", "--num_beams", "2",
        "--report_to", "none", "--output_dir", str(out),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "| pruned 80% class-blind |" in result.stdout

    report = json.loads((out / "pruning_report.json").read_text())
    assert report["ratio"] == 0.8 and report["scheme"] == "class-blind"
    assert report["sparse_bytes"] < report["dense_bytes"]
    assert report["teacher_params"] > report["params"] > report["params_nonzero"]
    assert report["teacher_to_nonzero"] == pytest.approx(report["teacher_params"] / report["params_nonzero"])
    assert (out / "checkpoint-2" / MASKS_NAME).is_file()
    assert json.loads((out / "eval_results.json").read_text())["num_sentences"] == 4

    dense, compact = AutoModelForSeq2SeqLM.from_pretrained(out), load_pruned(out / "compact")
    assert report["params_nonzero"] == sum(int(torch.count_nonzero(p)) for p in compact.parameters())
    for name, tensor in dense.state_dict().items():
        assert torch.equal(compact.state_dict()[name], tensor)


def test_compact_folder_loads_with_the_auto_class(tmp_path):
    model = tiny_model()
    magnitude_prune(model, 0.8)
    save_pruned(model, tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_compact_folder_loads_as_remote_code_without_hf_seqkd(tmp_path, tokenizer):
    from test_hub_format import run_fresh_python

    model = tiny_model(vocab_size=len(tokenizer))
    magnitude_prune(model, 0.8)
    save_pruned(model, tmp_path / "compact", tokenizer=tokenizer)
    assert not (tmp_path / "compact" / "model.safetensors").exists()
    out = run_fresh_python(
        f"""
        import sys, torch
        from transformers import AutoModelForSeq2SeqLM
        model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "compact")!r}, trust_remote_code=True)
        print(sum(int(torch.count_nonzero(p)) for p in model.parameters()), "hf_seqkd" in sys.modules)
        """,
        cwd=tmp_path,
    )
    nonzero, imported = out.split()[-2:]
    assert int(nonzero) == sum(int(torch.count_nonzero(p)) for p in model.parameters()) and imported == "False"
