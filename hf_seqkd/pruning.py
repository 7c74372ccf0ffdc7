"""
Weight pruning as Kim & Rush (2016, sec. 5) apply it to their students, after See, Luong & Manning (2016): zero the x%
smallest-magnitude weights, retrain with the pruned weights held at zero, and store the result sparsely.

    masks = magnitude_prune(student, 0.8)  # class-blind: one threshold over all weights
    trainer = run_training(student, tokenizer, train, validation, training_args,
                           callbacks=[PruningMaskCallback(masks)])
    save_pruned(trainer.model, "outputs/pruned_80/compact", tokenizer)  # bitmask + nonzero values
    model = load_pruned("outputs/pruned_80/compact")
    pruning_report(model, teacher_params="outputs/bible_es_en/teacher", folder="outputs/pruned_80/compact")

A mask is a bool tensor shaped like its parameter, True where the weight is *kept*. Pruned weights are exact zeros, so
the zeros of a pruned model are its masks: inference needs nothing but the weights, and training resumed from a
checkpoint gets the masks back from the `pruning_masks.safetensors` that [`PruningMaskCallback`] writes next to it.

`torch.nn.utils.prune` is not used: it re-parametrizes each weight as `weight_orig * weight_mask`, which renames the
state-dict keys (so `save_pretrained` / `from_pretrained` no longer match) and does not reach `nn.LSTM`'s flat weights.
"""

import functools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .sparse_weights import (  # noqa: F401  load_pruned: the loader of what save_pruned writes, public here too
    SPARSE_WEIGHTS_NAME,
    load_pruned,
    pack_bits,
    save_sparse_weights,
    unpack_bits,
)
from .utils import count_parameters

logger = logging.getLogger(__name__)

SCHEMES = ("class-blind", "class-uniform")
# The compact weights of a pruned model, written by `save_pruned` in place of model.safetensors.
# The masks, written by `PruningMaskCallback` into every checkpoint folder.
MASKS_NAME = "pruning_masks.safetensors"
# Dense weight files of `save_pretrained`; a compact folder holds none of them.
_DENSE_WEIGHT_FILE = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")
_BITMASK, _VALUES = ":nonzero_bitmask", ":nonzero_values"

Include = str | Callable[[str, nn.Parameter], bool] | None


def prunable_parameters(model: nn.Module, include: Include = None, prune_biases: bool = False) -> dict:
    """
    The parameters that pruning may zero, by name; a tied (shared) tensor appears once, under its first name.

    Args:
        model (`nn.Module`): the model.
        include (`str` or `Callable`, *optional*): restricts the selection to the names matching this regular
            expression (`re.search`), or for which `include(name, param)` is true.
        prune_biases (`bool`, *optional*, defaults to `False`): also select 1-dimensional parameters (biases).
            By default only weight matrices are pruned: embeddings, LSTM, attention and softmax weights.

    Returns:
        `dict[str, nn.Parameter]`, in `named_parameters` order.
    """
    selected = {}
    for name, param in model.named_parameters():
        if not param.is_floating_point() or (param.ndim < 2 and not prune_biases):
            continue
        if include is not None and not (include(name, param) if callable(include) else re.search(include, name)):
            continue
        selected[name] = param
    if not selected:
        raise ValueError(f"No parameter to prune (include={include!r}, prune_biases={prune_biases}).")
    return selected


def _pruned_count(ratio: float, numel: int) -> int:
    # The nearest integer, halves rounded up; computed in floating point, 0.29 * 100 is 28.999...: still 29.
    return math.floor(ratio * numel + 0.5)


def _smallest(magnitudes: torch.Tensor, count: int) -> torch.Tensor:
    """A bool vector marking exactly `count` entries of the 1-D `magnitudes`: the smallest, earliest first on ties."""
    if count == 0:
        return torch.zeros_like(magnitudes, dtype=torch.bool)
    threshold = magnitudes.kthvalue(count).values  # the count-th smallest magnitude
    chosen = magnitudes < threshold
    # Entries equal to the threshold (e.g. many exact zeros) fill the remaining places in parameter order, so that
    # exactly `count` are pruned whatever the ties.
    ties = (magnitudes == threshold).nonzero().flatten()
    chosen[ties[: count - int(chosen.sum())]] = True
    return chosen


def magnitude_prune(
    model: nn.Module,
    ratio: float,
    scheme: str = "class-blind",
    include: Include = None,
    prune_biases: bool = False,
) -> dict:
    """
    Zeros the smallest-magnitude weights of `model` in place and returns the masks.

    Schemes (See et al., 2016):
        - `class-blind`: one threshold over all prunable parameters together, so that exactly
          `floor(ratio * n + 0.5)` of their `n` entries are pruned, wherever they are. Kim & Rush's choice.
        - `class-uniform`: each parameter tensor (a "class": an embedding, one LSTM weight matrix, the softmax, ...)
          loses `floor(ratio * n_i + 0.5)` of its own `n_i` entries.

    Ties at the threshold are broken by position (parameter order, then row-major), so the counts are exact even when
    many weights share a magnitude. Entries that are zero already (a pruned model's zeros, the padding embedding) are
    the smallest: pruning a pruned model again at the same ratio returns its masks, and at a higher ratio extends them.

    Args:
        model (`nn.Module`): the model, pruned in place.
        ratio (`float`): the fraction of prunable entries to zero, in [0, 1).
        scheme (`str`, *optional*, defaults to `"class-blind"`): `class-blind` or `class-uniform`.
        include (`str` or `Callable`, *optional*): see [`prunable_parameters`].
        prune_biases (`bool`, *optional*, defaults to `False`): prune biases too (See et al. prune every parameter).
            Off by default: biases are under 1% of the parameters, so they barely change the size, but each one
            offsets a whole unit (an LSTM forget-gate bias, say), so zeroing them costs more than zeroing weights.

    Returns:
        `dict[str, torch.BoolTensor]`: one mask per prunable parameter, shaped like it, True where the weight is kept.
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}.")
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown pruning scheme {scheme!r}; choose one of {SCHEMES}.")
    params = prunable_parameters(model, include, prune_biases)
    # Magnitudes in float32 (float64 if a parameter is): exact for float16/bfloat16 and orderable on every device.
    dtype = torch.float64 if any(p.dtype == torch.float64 for p in params.values()) else torch.float32
    with torch.no_grad():
        if scheme == "class-blind":
            device = next(iter(params.values())).device
            magnitudes = torch.cat([p.detach().abs().flatten().to(device, dtype) for p in params.values()])
            pruned_flat = _smallest(magnitudes, _pruned_count(ratio, magnitudes.numel()))
            chunks = pruned_flat.split([p.numel() for p in params.values()])
            pruned = {name: chunk.view(p.shape).to(p.device) for (name, p), chunk in zip(params.items(), chunks)}
        else:
            pruned = {
                name: _smallest(p.detach().abs().flatten().to(dtype), _pruned_count(ratio, p.numel())).view(p.shape)
                for name, p in params.items()
            }
        masks = {name: ~chosen for name, chosen in pruned.items()}
        apply_masks(model, masks)
    total = sum(p.numel() for p in params.values())
    kept = sum(int(mask.sum()) for mask in masks.values())
    logger.info(f"{scheme} pruning at {ratio:.0%}: kept {kept:,} of {total:,} weights in {len(masks)} tensors.")
    return masks


def masks_from_zeros(model: nn.Module, include: Include = None, prune_biases: bool = False) -> dict:
    """
    The masks of an already pruned model, read from its zeros: for each prunable parameter with zeros, `param != 0`.

    Args:
        model (`nn.Module`): a pruned model (e.g. loaded with [`load_pruned`]).
        include, prune_biases: see [`prunable_parameters`].

    Returns:
        `dict[str, torch.BoolTensor]`, True where the weight is kept.
    """
    params = prunable_parameters(model, include, prune_biases)
    masks = {name: p.detach() != 0 for name, p in params.items()}
    return {name: mask for name, mask in masks.items() if not bool(mask.all())}


def _named_parameters(model: nn.Module, names: Iterable[str]) -> dict:
    # remove_duplicate=False: a mask may name a tied parameter by any of its names.
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = [name for name in names if name not in params]
    if missing:
        raise KeyError(f"The masks name parameters that the model does not have: {missing[:5]}.")
    return params


def _optimizer_state(optimizer) -> dict:
    # Accelerate's AcceleratedOptimizer wraps the torch optimizer, whose `state` maps each parameter to its buffers.
    optimizer = getattr(optimizer, "optimizer", optimizer)
    return getattr(optimizer, "state", None) or {}


@torch.no_grad()
def _zero_pruned(param: torch.Tensor, pruned: torch.Tensor, optimizer_state: dict) -> None:
    param.masked_fill_(pruned, 0)
    # Adam's moments (SGD's momentum buffer, ...) of a pruned weight would keep moving it after its gradient is zero;
    # buffers shaped otherwise (Adafactor's factored moments, the step count) are left alone.
    for value in optimizer_state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value.masked_fill_(pruned, 0)


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict, optimizer: torch.optim.Optimizer | None = None) -> None:
    """
    Zeros the pruned weights of `model` in place, and their entries in the optimizer's state when one is given.

    Args:
        model (`nn.Module`): the model.
        masks (`dict[str, torch.BoolTensor]`): True where the weight is kept.
        optimizer (`torch.optim.Optimizer`, *optional*): its per-parameter buffers shaped like the parameter
            (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...) are zeroed at the pruned positions too.
    """
    params = _named_parameters(model, masks)
    state = _optimizer_state(optimizer)
    for name, mask in masks.items():
        _zero_pruned(params[name], ~mask.to(params[name].device, torch.bool), state)


def _same_masks(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[n].cpu(), second[n].cpu()) for n in first)


def _mask_gradient(grad: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    return grad.masked_fill(pruned, 0)


class PruningMaskCallback(TrainerCallback):
    """
    Holds pruned weights at exactly zero while a `Trainer` retrains the model.

    Zeroing the gradients of pruned weights is not enough: Adam's momentum and decoupled weight decay move a weight
    whose gradient is zero. So the callback
        - masks the gradients as they are computed (a tensor hook on each pruned parameter), so that gradient
          clipping and the logged `grad_norm` see the pruned network only;
        - after every optimizer step (`on_optimizer_step`, called right after `optimizer.step()`), zeros the pruned
          weights again and their entries in the optimizer's state;
        - writes the masks into each checkpoint folder (`pruning_masks.safetensors`, bit-packed) and, when training
          resumes from a checkpoint, takes the masks saved there (those the earlier steps held), re-applying them
          to the weights and the optimizer state the Trainer has just restored.

    Works with `hf_seqkd.training.run_training(..., callbacks=[PruningMaskCallback(masks)])` in one or several (DDP)
    processes. FSDP and DeepSpeed ZeRO, which flatten or shard the parameters, are not supported.

    Args:
        masks (`dict[str, torch.BoolTensor]`, *optional*): from [`magnitude_prune`], True where the weight is kept.
            When omitted, the masks are the zeros of the model as training starts (see [`masks_from_zeros`]), i.e.
            a pruned model loaded from disk keeps its sparsity.
    """

    def __init__(self, masks: dict | None = None):
        self.masks = masks
        self._pruned = {}  # name -> (parameter, bool tensor on its device, True where pruned)
        self._hooks = []

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        saved = self._saved_masks(args, state)
        if saved is not None:
            if self.masks is not None and not _same_masks(saved, self.masks):
                logger.warning("The masks saved in the checkpoint differ from the given ones: keeping the saved ones.")
            self.masks = saved
        if self.masks is None:
            self.masks = masks_from_zeros(model)
        params = _named_parameters(model, self.masks)
        self._pruned = {}
        for name, mask in self.masks.items():
            param = params[name]
            if mask.shape != param.shape:
                raise ValueError(f"The mask of {name} has shape {tuple(mask.shape)}, the parameter {param.shape}.")
            self._pruned[name] = (param, ~mask.to(param.device, torch.bool))
        self._apply(optimizer)
        self._remove_hooks()
        for param, pruned in self._pruned.values():
            if param.requires_grad:
                self._hooks.append(param.register_hook(functools.partial(_mask_gradient, pruned=pruned)))

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self._apply(optimizer)

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                save_masks(self.masks, folder / MASKS_NAME)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove_hooks()

    def _apply(self, optimizer) -> None:
        state = _optimizer_state(optimizer)
        for param, pruned in self._pruned.values():
            _zero_pruned(param, pruned, state)

    def _remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @staticmethod
    def _saved_masks(args, state) -> dict | None:
        # A resumed run starts at the checkpoint's global step (a fresh one at 0).
        if state.global_step == 0:
            return None
        candidates = [Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"]
        if isinstance(args.resume_from_checkpoint, str):
            candidates.insert(0, Path(args.resume_from_checkpoint))
        for folder in candidates:
            if (folder / MASKS_NAME).is_file():
                logger.info(f"Resuming with the pruning masks saved in {folder}.")
                return load_masks(folder / MASKS_NAME)
        return None


def save_masks(masks: dict, path: str | os.PathLike) -> None:
    """Writes the masks to a safetensors file, bit-packed (one bit per weight)."""
    tensors = {name: pack_bits(mask) for name, mask in masks.items()}
    shapes = {name: list(mask.shape) for name, mask in masks.items()}
    save_file(tensors, str(path), metadata={"format": "pt", "shapes": json.dumps(shapes)})


def load_masks(path: str | os.PathLike) -> dict:
    """Reads the masks that [`save_masks`] wrote, as bool tensors on the CPU."""
    with safe_open(str(path), framework="pt") as handle:
        shapes = json.loads(handle.metadata()["shapes"])
        return {name: unpack_bits(handle.get_tensor(name), shape) for name, shape in shapes.items()}


def save_pruned(model, folder: str | os.PathLike, tokenizer=None, **save_kwargs) -> Path:
    """
    Saves a pruned transformers model in compact form: the files of `save_pretrained` (config, generation config,
    modeling code), the weights as `model.sparse.safetensors` (see [`save_sparse_weights`]) instead of
    `model.safetensors`, and the tokenizer when given. [`load_pruned`] loads the folder back.

    Args:
        model (`PreTrainedModel`): the (pruned) model; any transformers model works.
        folder (`str` or `os.PathLike`): the output folder; dense weight files already there are removed, so that
            loading cannot pick them up instead.
        tokenizer (*optional*): saved into the folder too.
        save_kwargs: passed to `save_pretrained`.

    Returns:
        `Path`: the sparse weights file.
    """
    folder = Path(folder)
    model.save_pretrained(folder, **save_kwargs)
    for name in os.listdir(folder):
        if _DENSE_WEIGHT_FILE.match(name):
            (folder / name).unlink()
    save_sparse_weights(model, folder / SPARSE_WEIGHTS_NAME)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder / SPARSE_WEIGHTS_NAME


def count_pretrained_parameters(pretrained_model_name_or_path: str | os.PathLike, trust_remote_code=False) -> int:
    """The number of parameters of a saved model, from its config alone (built on the meta device, no weights)."""
    config = AutoConfig.from_pretrained(pretrained_model_name_or_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(param.numel() for param in model.parameters())


def pruning_report(model: nn.Module, teacher_params=None, folder=None) -> dict:
    """
    How small a pruned model is: Kim & Rush's "13x fewer parameters than the teacher" and the bytes on disk.

    Args:
        model (`nn.Module`): the pruned model.
        teacher_params (`int`, `nn.Module` or `str`, *optional*): the teacher's parameter count, the teacher itself,
            or its folder / Hub id.
        folder (`str`, `os.PathLike` or a list of them, *optional*): saved folders of the model, dense
            (`save_pretrained`) and/or compact ([`save_pruned`]), whose weight files are measured.

    Returns:
        `dict`: `params` and `params_nonzero` (as [`~hf_seqkd.utils.count_parameters`] counts them: a tied
        tensor once), `sparsity` (the fraction of all parameters that are zero), `params_to_nonzero` (the student's
        own compression); with a teacher, `teacher_params` and `teacher_to_nonzero` (teacher parameters per nonzero
        student parameter: 13.0 means "13x fewer"); with folders, `dense_bytes` (model.safetensors and shards),
        `sparse_bytes` (model.sparse.safetensors) and, when both are there, `dense_to_sparse_bytes`.
    """
    counts = count_parameters(model)
    params, nonzero = counts["params"], counts["params_nonzero"]
    report = {
        "params": params,
        "params_nonzero": nonzero,
        "sparsity": 1 - nonzero / params,
        "params_to_nonzero": params / max(nonzero, 1),
    }
    if teacher_params is not None:
        if isinstance(teacher_params, nn.Module):
            teacher_params = sum(param.numel() for param in teacher_params.parameters())
        elif isinstance(teacher_params, (str, os.PathLike)):
            teacher_params = count_pretrained_parameters(teacher_params)
        report["teacher_params"] = int(teacher_params)
        report["teacher_to_nonzero"] = teacher_params / max(nonzero, 1)
    folders = [] if folder is None else [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
    for path in map(Path, folders):
        for file in sorted(path.iterdir()):
            if file.name == SPARSE_WEIGHTS_NAME:
                report["sparse_bytes"] = report.get("sparse_bytes", 0) + file.stat().st_size
            elif _DENSE_WEIGHT_FILE.match(file.name) and file.suffix == ".safetensors":
                report["dense_bytes"] = report.get("dense_bytes", 0) + file.stat().st_size
    if "dense_bytes" in report and "sparse_bytes" in report:
        report["dense_to_sparse_bytes"] = report["dense_bytes"] / report["sparse_bytes"]
    return report
