"""Benchmark ``rlhf_update``: seconds per online update on the embedded model, LoRA and full, KL off and on.

Each setting runs in its own process (so peak memory is per setting: full fine-tuning with ``kl_coef > 0``
keeps a frozen copy of the model), does one untimed warm-up update, then times ``--updates`` updates on
different sentences of the bundled medical corpus (scores alternating high and low) and reports the
median and mean seconds per update and the peak resident memory (plus peak GPU memory on CUDA). With
``--dtype auto`` LoRA runs over a bf16 base where the hardware has bf16, full fine-tuning in float32
(an Adam step of lr 5e-6 would be lost in bf16 weights).

Usage: python benchmarks/bench_rlhf_update.py [--model gemma-3-270m] [--updates 20] [--dtype auto] [--device auto]
Quick check (a tiny random Gemma 3 built from the embedded model's tokenizer): python benchmarks/bench_rlhf_update.py --quick
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = (("lora", 0.0), ("lora", 0.1), ("full", 0.0), ("full", 0.1))
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MARIAN_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_tiny_model(folder: Path) -> str:
    """A 2-layer Gemma 3 with random weights and the embedded model's tokenizer (a timing of the code path only)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, Gemma3ForCausalLM

    from medtune.models.gguf import ensure_embedded_model

    embedded = ensure_embedded_model()
    config = AutoConfig.from_pretrained(embedded)
    config = getattr(config, "text_config", config)
    for key, value in dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=1, head_dim=32).items():  # fmt: skip
        setattr(config, key, value)
    if hasattr(config, "layer_types"):
        config.layer_types = config.layer_types[:2]
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(embedded).save_pretrained(folder)
    return str(folder)


def part(model_name: str, method: str, kl_coef: float, updates: int, dtype: str, device: str) -> dict:
    """Time ``updates`` calls of rlhf_update in one setting."""
    import torch

    from medtune.data.demo import DEMO_DIR
    from medtune.data.io import read_jsonl
    from medtune.feedback import rlhf_update
    from medtune.models.adapters import attach_lora
    from medtune.models.loading import load_model

    # full fine-tuning keeps float32 weights (as medtune's training does): a 5e-6 step is lost in bf16 weights
    weights = "float32" if method == "full" and dtype == "auto" else dtype
    loaded = load_model(model_name, dtype=weights, device=device, log=lambda *_: None)
    model = loaded.model
    if method == "lora":
        targets = MARIAN_TARGETS if loaded.is_seq2seq else LORA_TARGETS
        model = attach_lora(model, 16, 32, 0.0, targets)
    else:
        model.requires_grad_(True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-6)
    rows = read_jsonl(DEMO_DIR / "medical_en_es.jsonl")[: updates + 1]
    scores = [0.9 if i % 2 == 0 else 0.2 for i in range(len(rows))]
    tokenizer = loaded.tokenizer

    def update(i: int) -> float:
        return rlhf_update(model, rows[i]["en"], rows[i]["es"], scores[i], optimizer, tokenizer, kl_coef=kl_coef)

    update(0)  # warm-up: the parity probe, the reference copy (full, kl > 0), lazy allocations
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = []
    for i in range(1, len(rows)):
        started = time.perf_counter()
        update(i)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    result = {
        "method": method,
        "kl_coef": kl_coef,
        "updates": len(seconds),
        "median_s": statistics.median(seconds),
        "mean_s": statistics.fmean(seconds),
        "peak_rss_mb": round(_peak_rss_mb()),
        **loaded.runtime_info(),
    }
    if loaded.device.type == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="model name or folder (default: the embedded model)")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per setting (after one warm-up)")
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny random model and 3 updates: checks the script runs"
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: one setting, in a child process
    args = parser.parse_args()
    if args.part:
        method, kl = args.part.split(":")
        print(json.dumps(part(args.model, method, float(kl), args.updates, args.dtype, args.device)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model, updates = args.model, args.updates
        if args.quick:
            model, updates = build_tiny_model(Path(tmp) / "tiny"), 3
        results = []
        for method, kl in SETTINGS:
            command = [sys.executable, __file__, "--model", model, "--updates", str(updates), "--dtype", args.dtype,
                       "--device", args.device, "--part", f"{method}:{kl}"]  # fmt: skip
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    print(f"rlhf_update on {args.model if not args.quick else 'a tiny random Gemma 3 (--quick)'}:")
    print(f"{'method':<6} {'kl_coef':>7} {'median s':>9} {'mean s':>8} {'peak RSS MB':>12}  device, dtype")
    for r in results:
        print(f"{r['method']:<6} {r['kl_coef']:>7} {r['median_s']:>9.4f} {r['mean_s']:>8.4f} {r['peak_rss_mb']:>12}  "
              f"{r['device']}, {r['dtype']}" + (f", peak GPU {r['peak_gpu_mb']} MB" if "peak_gpu_mb" in r else ""))  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
