"""FSDP2 for medtune's own loop: parameters, gradients and optimizer state sharded across processes.

``accelerate launch`` with an FSDP config (``distributed_type: FSDP``, ``fsdp_version: 2``) sets
``ACCELERATE_USE_FSDP``/``FSDP_VERSION``; the loop then shards the model with
``torch.distributed.fsdp.fully_shard`` (each decoder layer, then the whole model) instead of keeping a
full copy per process. Gradients are reduce-scattered as a SUM (divide factor 1): each rank's loss is
already divided by the global batch's units, so the sum is the single-process gradient, exactly as
the data-parallel all-reduce of :func:`medtune.train.distributed.sum_gradients`. Checkpoints hold
full tensors in the single-process layout, and after training the model is unsharded for good, so
saving, evaluation and generation see a plain model.
"""

from __future__ import annotations

import os

import torch
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from medtune.errors import MedtuneError


def fsdp_requested() -> bool:
    """The launch asked for FSDP (``accelerate launch`` with ``distributed_type: FSDP``).

    Raises:
        MedtuneError: the config asks for FSDP version 1, which medtune's loop does not use, or for
            loading the weights in the first process only.
    """
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() not in ("1", "true"):
        return False
    version = os.environ.get("FSDP_VERSION", "1")
    if version != "2":
        raise MedtuneError(
            f"The accelerate config asks for FSDP version {version} (FSDP_VERSION={version}); medtune's training "
            "loop shards with FSDP2 only. Set `fsdp_version: 2` under fsdp_config in the config file "
            "(see configs/accelerate/fsdp2.yaml), or launch with a data-parallel config."
        )
    if os.environ.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "").lower() in ("1", "true"):
        raise MedtuneError(
            "The accelerate config sets fsdp_cpu_ram_efficient_loading: true (FSDP_CPU_RAM_EFFICIENT_LOADING), "
            "which loads the weights in the first process only; medtune loads the whole model in every process "
            "and shards it itself. Set `fsdp_cpu_ram_efficient_loading: false` under fsdp_config."
        )
    return True


def _transformers_model(model):
    """The transformers model inside a PEFT wrapper (``model`` itself when there is none)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def shard_model(model) -> None:
    """Shard ``model`` in place with FSDP2: each decoder layer, then the root; gradients summed over ranks.

    Works with PEFT: frozen base weights and trainable adapters share each layer's shard group.

    Raises:
        MedtuneError: some weights are not materialised (accelerate's ``fsdp_cpu_ram_efficient_loading``
            loads them on the main process only), or the model has no known layer class.
    """
    empty = [name for name, param in model.named_parameters() if param.is_meta]
    if empty:
        raise MedtuneError(
            f"{len(empty)} weights (e.g. {empty[0]}) were not loaded in this process. medtune loads the whole "
            "model in every process before sharding it: set `fsdp_cpu_ram_efficient_loading: false` under "
            "fsdp_config in the accelerate config."
        )
    inner = _transformers_model(model)
    classes = set(getattr(inner, "_no_split_modules", None) or [])  # the repeated blocks, one group each
    layers = [module for module in model.modules() if type(module).__name__ in classes]
    if not layers:
        raise MedtuneError(
            f"Cannot shard {type(model).__name__} with FSDP2: it names no decoder layer class "
            "(_no_split_modules). Train it with a data-parallel accelerate config instead."
        )
    for layer in layers:
        fully_shard(layer)
    # the root is the transformers model, not the PEFT wrapper: the scorers call it directly
    fully_shard(inner)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # a sum, not FSDP's default mean over ranks
            # a plain SUM collective: a custom factor otherwise uses PREMUL_SUM, which gloo lacks
            module.set_force_sum_reduction_for_comms(True)


def is_sharded(model) -> bool:
    """``model`` is sharded with FSDP2."""
    return isinstance(model, FSDPModule) or any(isinstance(m, FSDPModule) for m in model.modules())


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded ``DTensor`` (collective: every rank calls it), else ``tensor``."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """A whole tensor ``value`` laid out as ``param`` (this rank's shard when ``param`` is a ``DTensor``)."""
    if isinstance(param, DTensor):
        return distribute_tensor(value.to(param.device, param.dtype), param.device_mesh, param.placements)
    return value


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` with whole tensors: the single-process layout (collective)."""
    state = optimizer.state_dict()  # its per-parameter dicts are the optimizer's own: copied, not changed
    for index in sorted(state["state"]):  # the same order on every rank
        per_param = state["state"][index]
        state["state"][index] = {
            key: full(per_param[key]).detach().cpu() if isinstance(per_param[key], torch.Tensor) else per_param[key]
            for key in sorted(per_param)
        }
    return state


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``load_state_dict`` of whole tensors: lay each sharded parameter's state out as the parameter."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            if not isinstance(param, DTensor):
                continue
            per_param = optimizer.state.get(param, {})
            for key in sorted(per_param):
                value = per_param[key]
                if isinstance(value, torch.Tensor) and not isinstance(value, DTensor) and value.shape == param.shape:
                    per_param[key] = like(value, param)


def unshard_for_good(model) -> None:
    """Gather every weight and remove FSDP from ``model`` (collective): a plain model on every rank again.

    After training, saving, evaluation and generation run per process on different items; a sharded
    model would need every rank in every forward. torch has no public inverse of ``fully_shard``, so
    this undoes what it installs: the forward hooks, the state-dict hooks and the ``FSDP<Class>`` class.
    """
    whole: dict[int, torch.nn.Parameter] = {}  # by the sharded parameter's id: tied weights stay tied
    owners = []
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in whole:
                data = full(param.detach()).clone()
                whole[id(param)] = torch.nn.Parameter(data, requires_grad=param.requires_grad)
            owners.append((module, name, whole[id(param)]))
    for module in model.modules():
        if not isinstance(module, FSDPModule):
            continue
        state = module._get_fsdp_state()
        for handle in (state._pre_forward_hook_handle, state._post_forward_hook_handle):
            if handle is not None:
                handle.remove()
        for group in state._fsdp_param_groups:
            for handles in (
                group._module_to_pre_save_state_dict_hook_handle,
                group._module_to_pre_load_state_dict_hook_handle,
            ):
                for handle in handles.values():
                    handle.remove()
        module.__class__ = type(module).__mro__[FSDPModule._orig_cls_mro_index]
    for module, name, param in owners:
        module._parameters[name] = param
