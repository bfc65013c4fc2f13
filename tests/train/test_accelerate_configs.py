"""The example configs in configs/accelerate/ load with accelerate's own loader, say what they are for in
a first comment line, and the CPU one starts several local processes (not accelerate's one-process or
mpirun CPU path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"
EXPECTED = {
    "cpu-2proc.yaml": DistributedType.MULTI_GPU,
    "ddp.yaml": DistributedType.MULTI_GPU,
    "fsdp2.yaml": DistributedType.FSDP,
    "deepspeed-zero2.yaml": DistributedType.DEEPSPEED,
    "deepspeed-zero3.yaml": DistributedType.DEEPSPEED,
}


def test_every_config_is_listed():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_loads_and_explains_itself(name):
    path = CONFIGS / name
    assert path.read_text().startswith("# ")
    config = load_config_from_file(str(path))
    assert config.distributed_type == EXPECTED[name]
    assert config.num_machines == 1 and config.num_processes == 2


def test_cpu_config_uses_the_local_multi_process_launcher_on_cpu():
    config = load_config_from_file(str(CONFIGS / "cpu-2proc.yaml"))
    assert config.use_cpu and config.main_process_port == 0
    assert (config.deepspeed_config, config.fsdp_config) == ({}, {})
