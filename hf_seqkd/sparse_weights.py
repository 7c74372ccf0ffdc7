"""
The compact on-disk form of pruned models (`model.sparse.safetensors`: a bitmask of the nonzero entries plus their
values) and its loading. Imports nothing from hf_seqkd: `save_pretrained` copies it next to the modeling code, so
that a pruned model loads with `trust_remote_code` where hf_seqkd is not installed.
"""

import json
import math
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import AutoConfig, AutoModelForSeq2SeqLM, GenerationConfig
from transformers.utils import cached_file

# The compact weights of a pruned model, written by `hf_seqkd.pruning.save_pruned` in place of model.safetensors.
SPARSE_WEIGHTS_NAME = "model.sparse.safetensors"
SPARSE_FORMAT = "hf_seqkd.bitmask.v1"
_BITMASK, _VALUES = ":nonzero_bitmask", ":nonzero_values"
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")
_DENSE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8 bytes, 8 entries a byte (row-major, least significant bit first)."""
    flat = bits.detach().flatten().to("cpu", torch.uint8)
    flat = nn.functional.pad(flat, (0, -flat.numel() % 8)).view(-1, 8)
    return (flat << torch.arange(8, dtype=torch.uint8)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape) -> torch.Tensor:
    """The inverse of `pack_bits`: a bool tensor of `shape`."""
    bits = (packed.view(-1, 1) >> torch.arange(8, dtype=torch.uint8, device=packed.device)) & 1
    return bits.flatten()[: math.prod(shape)].view(shape).bool()


def save_sparse_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """
    Writes the model's state dict to one safetensors file, each mostly-zero tensor as a bitmask of its nonzero
    entries plus those entries' values.

    Format (`hf_seqkd.bitmask.v1`): a tensor `name` is stored either densely under `name`, or, when that is smaller,
    as `name:nonzero_bitmask` (uint8, one bit per entry, row-major, least significant bit first) and
    `name:nonzero_values` (1-D, the nonzero entries in row-major order, in the tensor's dtype), its shape in the
    `sparse_shapes` JSON of the file's metadata. At 80% sparsity a float32 weight takes 1/8 + 0.2 x 4 = 0.93 bytes an
    entry instead of 4 (a 4.3x smaller file); at 90%, 0.53 (7.6x). Storage is lossless: loading gives the exact
    weights. A tied (shared) tensor is stored once, under its first name; loading ties it again.
    """
    tensors, shapes, seen = {}, {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.numel():
            key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            if key in seen:  # tied to a tensor stored already
                continue
            seen.add(key)
        tensor = tensor.detach().to("cpu").contiguous()
        if tensor.is_floating_point():
            nonzero = tensor != 0
            count = int(nonzero.sum())
            if math.ceil(tensor.numel() / 8) + count * tensor.element_size() < tensor.numel() * tensor.element_size():
                tensors[name + _BITMASK] = pack_bits(nonzero)
                tensors[name + _VALUES] = tensor[nonzero]
                shapes[name] = list(tensor.shape)
                continue
        tensors[name] = tensor
    metadata = {"format": "pt", "sparse_format": SPARSE_FORMAT, "sparse_shapes": json.dumps(shapes)}
    save_file(tensors, str(path), metadata=metadata)


def load_sparse_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """
    Reads a file written by [`save_sparse_weights`] back into a dense state dict.

    Args:
        path (`str` or `os.PathLike`): the `model.sparse.safetensors` file.
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`): where the tensors go.

    Returns:
        `dict[str, torch.Tensor]`: the exact dense tensors, zeros where nothing was stored.
    """
    with safe_open(str(path), framework="pt", device=str(device)) as handle:
        metadata = handle.metadata() or {}
        if metadata.get("sparse_format") != SPARSE_FORMAT:
            raise ValueError(f"{path} is not a sparse weights file of format {SPARSE_FORMAT}.")
        shapes = json.loads(metadata["sparse_shapes"])
        sparse_keys = {name + suffix for name in shapes for suffix in (_BITMASK, _VALUES)}
        state_dict = {key: handle.get_tensor(key) for key in handle.keys() if key not in sparse_keys}
        for name, shape in shapes.items():
            values = handle.get_tensor(name + _VALUES)
            dense = values.new_zeros(shape)
            dense[unpack_bits(handle.get_tensor(name + _BITMASK), shape)] = values
            state_dict[name] = dense
    return state_dict


def sparse_weights_file(pretrained_model_name_or_path, **kwargs) -> str | None:
    """
    The `model.sparse.safetensors` of a folder or Hub repository written by [`save_pruned`], or `None`: when there is
    none, and when dense weights are there too (`save_pruned` removes them, so they come from a later
    `save_pretrained` into the same folder and are the newer weights).

    Args:
        pretrained_model_name_or_path (`str` or `os.PathLike`, *optional*): the folder or Hub id.
        kwargs: those of `from_pretrained`; the Hub ones (`revision`, `token`, `cache_dir`, ...) are used.
    """
    if pretrained_model_name_or_path is None:
        return None
    hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}

    def find(name):
        return cached_file(
            str(pretrained_model_name_or_path),
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub_kwargs,
        )

    if any(find(name) for name in _DENSE_WEIGHTS):
        return None
    return find(SPARSE_WEIGHTS_NAME)


def load_pruned(pretrained_model_name_or_path, model_class=AutoModelForSeq2SeqLM, *model_args, **kwargs):
    """
    Loads a model from a folder or Hub id, dense (`save_pretrained`) or compact (written by
    `hf_seqkd.pruning.save_pruned`): the one loader of pruned weights. `LSTMSeq2SeqForConditionalGeneration.
    from_pretrained` (so `AutoModelForSeq2SeqLM` too) goes through it; for other architectures call it directly.

    Compact weights are densified and go in as `from_pretrained(None, config=..., state_dict=...)`, so that everything
    else (`dtype`, `device_map`, tied weights, eval mode) behaves as in a normal load, and the generation config is
    read from the folder.

    Args:
        pretrained_model_name_or_path (`str` or `os.PathLike`): the folder or Hub id.
        model_class (*optional*, defaults to `AutoModelForSeq2SeqLM`): an Auto class, a model class, or anything
            else with that class's `from_pretrained` (a model class's own override passes `super()`).
        model_args, kwargs: as for `from_pretrained` (`dtype`, `device_map`, `trust_remote_code`, `revision`,
            `config`, ...).
    """
    sparse_file = sparse_weights_file(pretrained_model_name_or_path, **kwargs)
    if sparse_file is None:
        return model_class.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
    path = str(pretrained_model_name_or_path)
    hub_kwargs = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
    trust_remote_code = kwargs.get("trust_remote_code")
    config = kwargs.pop("config", None)
    if config is None:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **hub_kwargs)
    if hasattr(model_class, "_model_mapping"):  # an Auto class: find the concrete class without building weights
        with torch.device("meta"):
            model_class = type(model_class.from_config(config, trust_remote_code=trust_remote_code))
    state_dict = load_sparse_state_dict(sparse_file)
    model = model_class.from_pretrained(None, *model_args, config=config, state_dict=state_dict, **kwargs)
    try:
        model.generation_config = GenerationConfig.from_pretrained(path, **hub_kwargs)
    except OSError:
        pass  # no generation_config.json: keep the one derived from the config
    model.config._name_or_path = model.name_or_path = path
    return model
