"""Devices and precision: resolving ``device``/``dtype`` settings, their errors, and models placed accordingly.

No GPU is available here: the CPU path runs for real; CUDA/MPS presence is faked with monkeypatch only to
check which device ``auto`` picks and what the error messages say.
"""

from __future__ import annotations

import platform

import pytest
import torch

from medtune.errors import MedtuneError
from medtune.models import device as dev
from medtune.models.device import (
    cpu_bf16_flags,
    device_name,
    dtype_name,
    resolve_device,
    resolve_dtype,
    runtime_info,
)
from medtune.models.loading import load_model

AMX_CPUINFO = "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse avx512f amx_tile amx_bf16 avx512_bf16\n"
OLD_CPUINFO = "processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse avx2\n"


def _fake_gpus(monkeypatch, count: int, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Fake GPU")
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


def _cpu_flags(monkeypatch, cpuinfo: str) -> None:
    monkeypatch.setattr(dev, "_cpu_info", lambda: cpuinfo)


# --- devices ---------------------------------------------------------------------------------


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    _fake_gpus(monkeypatch, 0)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_explicit_devices_resolve(monkeypatch):
    _fake_gpus(monkeypatch, 2)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("CUDA:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_without_a_gpu_names_what_is_available(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(MedtuneError) as info:
        resolve_device("cuda", "--device")
    message = str(info.value)
    assert "--device='cuda'" in message and "Available: cpu." in message and "--device=cpu" in message
    assert "\n" not in message


def test_missing_gpu_number_names_the_gpus_there_are(monkeypatch):
    _fake_gpus(monkeypatch, 1)
    with pytest.raises(MedtuneError, match=r"asks for GPU 3, but this machine has 1 CUDA GPU\(s\), numbered 0 to 0"):
        resolve_device("cuda:3", "device")
    with pytest.raises(MedtuneError, match="Available: cpu, cuda:0"):
        resolve_device("cuda:3", "device")


@pytest.mark.parametrize("typo", ["gpu", "cuda0", "cpu:1", "mps:0", "tpu", ""])
def test_a_typo_is_not_a_device(monkeypatch, typo):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(MedtuneError, match=r"is not a device: use auto, cpu, cuda, cuda:N or mps\. Available.*: cpu"):
        resolve_device(typo)


def test_mps_where_there_is_none(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(MedtuneError, match="MPS backend, which this machine does not offer"):
        resolve_device("mps")


def test_device_name_of_the_cpu_and_a_gpu(monkeypatch):
    _cpu_flags(monkeypatch, AMX_CPUINFO)
    assert device_name(torch.device("cpu")) == "Test CPU"
    _cpu_flags(monkeypatch, "")
    assert device_name(torch.device("cpu")) == (platform.processor() or platform.machine() or "CPU")
    _fake_gpus(monkeypatch, 1)
    assert device_name(torch.device("cuda", 0)) == "Fake GPU"


def test_real_cpu_name_matches_proc_cpuinfo():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    assert device_name(torch.device("cpu")) == names[0]


# --- precision -------------------------------------------------------------------------------


def test_cpu_bf16_flags_are_read_from_cpuinfo():
    assert cpu_bf16_flags(AMX_CPUINFO) == ["amx_bf16", "avx512_bf16"]
    assert cpu_bf16_flags(OLD_CPUINFO) == []


def test_auto_is_bfloat16_on_a_cpu_with_amx(monkeypatch):
    _cpu_flags(monkeypatch, AMX_CPUINFO)
    assert resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16


def test_auto_is_float32_with_a_note_on_an_old_cpu(monkeypatch):
    _cpu_flags(monkeypatch, OLD_CPUINFO)
    notes: list[str] = []
    assert resolve_dtype("auto", torch.device("cpu"), "train.dtype", log=notes.append) == torch.float32
    assert notes == [
        "train.dtype=auto: Old CPU has no native bfloat16 (none of the CPU flags amx_bf16, avx512_bf16); using float32."
    ]


def test_bfloat16_on_an_old_cpu_is_refused(monkeypatch):
    _cpu_flags(monkeypatch, OLD_CPUINFO)
    with pytest.raises(
        MedtuneError, match=r"--dtype=bfloat16 asked for, but this CPU \(Old CPU\) has no native bfloat16"
    ):
        resolve_dtype("bfloat16", torch.device("cpu"), "--dtype")


def test_cuda_precision_follows_bf16_support(monkeypatch):
    _fake_gpus(monkeypatch, 1, bf16=True)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == torch.bfloat16
    _fake_gpus(monkeypatch, 1, bf16=False)
    assert resolve_dtype("auto", torch.device("cuda", 0), log=lambda _: None) == torch.float32
    assert resolve_dtype("float16", torch.device("cuda", 0)) == torch.float16
    with pytest.raises(MedtuneError, match="Fake GPU has no native bfloat16"):
        resolve_dtype("bfloat16", torch.device("cuda", 0))


def test_float16_training_is_refused_with_the_reason():
    with pytest.raises(MedtuneError, match="training in float16 would need loss scaling"):
        resolve_dtype("float16", torch.device("cpu"), "train.dtype", training=True)
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16  # evaluation may use it


def test_unknown_precision_lists_the_choices():
    with pytest.raises(
        MedtuneError, match=r"--dtype='int8' is not a precision; choose one of: auto, float32, bfloat16, float16"
    ):
        resolve_dtype("int8", torch.device("cpu"), "--dtype")


def test_runtime_info_names_device_and_precision(monkeypatch):
    _cpu_flags(monkeypatch, AMX_CPUINFO)
    assert runtime_info(torch.device("cpu"), torch.bfloat16) == {
        "device": "cpu",
        "device_name": "Test CPU",
        "dtype": "bfloat16",
    }
    assert dtype_name(torch.float32) == "float32"


# --- models placed accordingly -------------------------------------------------------------------


def test_load_model_places_the_model_and_records_it(tiny_gemma_dir, monkeypatch):
    _cpu_flags(monkeypatch, AMX_CPUINFO)
    loaded = load_model(str(tiny_gemma_dir), dtype="auto", device="cpu")
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.bfloat16
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert {p.device for p in loaded.model.parameters()} == {torch.device("cpu")}
    assert loaded.runtime_info() == {"device": "cpu", "device_name": "Test CPU", "dtype": "bfloat16"}
    full = load_model(str(tiny_gemma_dir), dtype="float32", device="auto")
    assert full.dtype == torch.float32 and {p.dtype for p in full.model.parameters()} == {torch.float32}


def test_load_model_on_a_missing_gpu_fails_before_loading(tiny_gemma_dir, monkeypatch):
    _fake_gpus(monkeypatch, 0)
    with pytest.raises(MedtuneError, match="--device='cuda:1' asks for a CUDA GPU"):
        load_model(str(tiny_gemma_dir), device="cuda:1")


def test_qlora_on_the_cpu_device_is_refused(tiny_gemma_dir, monkeypatch):
    from medtune.models import quantization

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(MedtuneError, match="needs the model on a CUDA GPU, but device=cpu was chosen"):
        quantization.bnb_4bit_config(torch.device("cpu"))


def test_release_host_memory_returns_freed_heap_pages_on_linux():
    import platform

    import psutil

    from medtune.models.device import release_host_memory

    if platform.system() != "Linux":
        assert release_host_memory() is False
        return
    blocks = [bytearray(64 * 1024) for _ in range(4000)]  # ~256 MB in small heap blocks, below mmap's threshold
    for block in blocks[:-1]:
        block[0] = 1
    del blocks[:-1]  # freed, but glibc keeps the pages (the last block pins the top of the heap)
    before = psutil.Process().memory_info().rss
    assert release_host_memory() is True
    assert psutil.Process().memory_info().rss < before - 100 * 1024 * 1024
