"""Where a model runs and in which precision: ``device`` and ``dtype`` settings resolved against this machine.

``auto`` picks CUDA, then Apple MPS, then the CPU; ``dtype: auto`` picks bfloat16 where the hardware
runs it natively (CUDA with bf16 support, CPUs with AMX or AVX512-BF16) and float32 otherwise.
"""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

import torch

from medtune.errors import MedtuneError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
TRAIN_DTYPES = ("auto", "float32", "bfloat16")
EVAL_DTYPES = ("auto", "float32", "bfloat16", "float16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs with native bf16 matrix units


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The devices this machine offers, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def resolve_device(spec: str | torch.device = "auto", option: str = "device") -> torch.device:
    """The ``torch.device`` a setting names; ``auto`` = CUDA, then MPS, then CPU.

    Args:
        spec: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (or a ``torch.device``).
        option: how the user set it (``device`` in a recipe, ``--device`` on the command line), for errors.
    Raises:
        MedtuneError: a device this machine does not have, or a name that is not a device, naming what is available.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    available = available_devices()
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", text)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise MedtuneError(
            f"{option}={spec!r} is not a device: use {DEVICE_CHOICES}. Available on this machine: "
            f"{', '.join(available)}."
        )
    kind, index = match[1], match[2]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise MedtuneError(
                f"{option}={spec!r} asks for a CUDA GPU, but this machine has none that torch can use (no GPU, "
                f"no driver, or a CPU-only torch build). Available: {', '.join(available)}. Use {option}=auto or "
                f"{option}=cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU."
            )
        count = torch.cuda.device_count()
        number = int(index) if index is not None else torch.cuda.current_device()
        if number >= count:
            raise MedtuneError(
                f"{option}={spec!r} asks for GPU {number}, but this machine has {count} CUDA GPU(s), numbered "
                f"0 to {count - 1}. Available: {', '.join(available)}."
            )
        return torch.device("cuda", number)
    if kind == "mps" and not _mps_available():
        raise MedtuneError(
            f"{option}={spec!r} asks for Apple's MPS backend, which this machine does not offer. "
            f"Available: {', '.join(available)}. Use {option}=auto or {option}=cpu."
        )
    return torch.device(kind)


@functools.cache
def _cpu_info() -> str:
    path = Path("/proc/cpuinfo")
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return ""


def cpu_model_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :mod:`platform`)."""
    match = re.search(r"^model name\s*:\s*(.+)$", _cpu_info(), re.MULTILINE)
    return (match[1].strip() if match else "") or platform.processor() or platform.machine() or "CPU"


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """Which native bf16 features (AMX-BF16, AVX512-BF16) the CPU reports, read at run time."""
    text = _cpu_info() if cpuinfo is None else cpuinfo
    match = re.search(r"^flags\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(match[1].split()) if match else set()
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def device_name(device: torch.device) -> str:
    """A human name for a device: the GPU's name, or the CPU's model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return cpu_model_name()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively (faster than float32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        return bool(cpu_bf16_flags())
    return False  # MPS: bf16 support varies by macOS version; float32 is the safe default


def resolve_dtype(
    spec: str, device: torch.device, option: str = "dtype", training: bool = False, log=print
) -> torch.dtype:
    """The ``torch.dtype`` a precision setting names on ``device``.

    ``auto`` = bfloat16 where the device runs it natively, else float32 (said in one line).

    Args:
        spec: ``auto``, ``float32``, ``bfloat16`` or (not for training) ``float16``.
        device: where the model runs.
        option: the key or option the value came from (``train.dtype``, ``--dtype``), for errors.
        training: refuse float16 (it would need loss scaling).
    Raises:
        MedtuneError: an unknown name, float16 for training, or bfloat16 on hardware without it.
    """
    allowed = TRAIN_DTYPES if training else EVAL_DTYPES
    text = spec.strip().lower()
    if text == "float16" and training:
        raise MedtuneError(
            f"{option}=float16 is not supported for training: training in float16 would need loss scaling "
            f"to keep small gradients from underflowing. Use {option}=bfloat16 (same speed where the hardware "
            f"has it, no scaling needed), float32, or auto."
        )
    if text not in allowed:
        raise MedtuneError(f"{option}={spec!r} is not a precision; choose one of: {', '.join(allowed)}.")
    if text == "auto":
        if native_bf16(device):
            return torch.bfloat16
        if device.type in ("cpu", "cuda"):
            log(f"{option}=auto: {device_name(device)} has no native bfloat16 ({_bf16_hint(device)}); using float32.")
        return torch.float32
    if text == "bfloat16" and device.type == "cpu" and not native_bf16(device):
        raise MedtuneError(
            f"{option}=bfloat16 asked for, but this CPU ({cpu_model_name()}) has no native bfloat16 units "
            f"({_bf16_hint(device)}): bf16 would run emulated, slower than float32. Use {option}=float32 or auto."
        )
    if text == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise MedtuneError(
            f"{option}=bfloat16 asked for, but {device_name(device)} has no native bfloat16 (it needs an Ampere "
            f"or newer GPU). Use {option}=float32, float16 for evaluation, or auto."
        )
    return getattr(torch, text)


def _bf16_hint(device: torch.device) -> str:
    if device.type == "cuda":
        return "bf16 needs an Ampere or newer GPU"
    return f"none of the CPU flags {', '.join(CPU_BF16_FLAGS)}"


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``bfloat16``."""
    return str(dtype).removeprefix("torch.")


def runtime_info(device: torch.device, dtype: torch.dtype) -> dict[str, str]:
    """What metrics files record about where a model ran: ``device``, ``device_name``, ``dtype``."""
    return {"device": str(device), "device_name": device_name(device), "dtype": dtype_name(dtype)}


def release_host_memory() -> bool:
    """Hand memory that freed tensors left in glibc's heap back to the OS (Linux); True when it could.

    After training, the allocator keeps the freed activations and optimizer state of a whole run
    mapped (about 1 GB for translate-en-es), and the next stage's model loads on top of them.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    try:
        return bool(ctypes.CDLL(name).malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        return False
