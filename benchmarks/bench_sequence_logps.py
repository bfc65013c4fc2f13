"""Microbenchmark of per-sequence log-probs (DPO, KTO): medtune's per-row fused head vs plain autograd.

One training step of per-sequence log-probs through medtune's fused output layer, against plain
autograd on the logits at the answer positions, and against SFT's scalar fused loss.

A small Gemma 3 with the real 262k-token vocabulary (so the output layer dominates, as in the embedded
model), LoRA on q/v, one batch of ``--rows`` sequences (half prompt, half answer); each step is a
forward and backward pass with a different upstream weight per row (as DPO gives them). Each mode runs
in its own process, so that its peak memory (max RSS) is its own; CPU seconds per step (one thread)
are the steadier figure on a shared machine:

* ``sft``: ``target_loss`` (the scalar fused loss whose gradient is formed in the forward pass);
* ``fused``: ``sequence_logps`` (the per-row fused head: one extra head matmul per chunk in backward);
* ``plain``: the model body, then the full ``[answer tokens, vocab]`` logits, log-softmax and gather.

Usage: python benchmarks/bench_sequence_logps.py [--steps 4] [--vocab 262144] [--rows 8] [--length 128]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

MODES = ("sft", "fused", "plain")


def build_model(vocab: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from medtune.models.adapters import attach_lora

    config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return attach_lora(Gemma3ForCausalLM(config), 8, 16, 0.0, ["q_proj", "v_proj"]).train()


def make_batch(vocab: int, rows: int, length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (rows, length), generator=generator)
    labels = ids.clone()
    labels[:, : length // 2] = -100  # a prompt half and an answer half
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def plain_sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Plain autograd: hidden states, the full logits at the answer positions, log-softmax, gather, row sums."""
    from medtune.models.fused_head import decoder_hidden_states, head_logits
    from medtune.models.scoring import row_sums

    hidden = decoder_hidden_states(model, batch)
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = head_logits(model, hidden[:, :-1][keep])
    token = torch.log_softmax(logits, -1).gather(1, targets[keep][:, None]).squeeze(1)
    return row_sums(token, keep)


def run_mode(mode: str, steps: int, vocab: int, rows: int, length: int) -> dict:
    from medtune.train.loss import sequence_logps, target_loss

    model = build_model(vocab)
    batch = make_batch(vocab, rows, length)
    weights = torch.linspace(-1.0, 1.0, rows)  # a different upstream gradient per row
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    times, cpu_times, value = [], [], 0.0
    for _ in range(steps + 1):  # the first step warms up
        started, cpu_started = time.perf_counter(), time.process_time()
        if mode == "sft":
            loss_sum, n = target_loss(model, batch, seq2seq=False)
            loss = loss_sum / n
        else:
            logps = sequence_logps(model, batch, False) if mode == "fused" else plain_sequence_logps(model, batch)
            loss = (logps * weights).sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
        value = float(loss)
    return {
        "mode": mode,
        "median_s": statistics.median(times[1:]),
        "fastest_s": min(times[1:]),
        "median_cpu_s": statistics.median(cpu_times[1:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "last_loss": value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per mode (after one warm-up)")
    parser.add_argument("--vocab", type=int, default=262144, help="vocabulary size of the model's output layer")
    parser.add_argument("--rows", type=int, default=8, help="sequences per batch (DPO: 2 x pairs)")
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence, half of them answer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # internal: run one mode in this process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.steps, args.vocab, args.rows, args.length)))
        return
    answer_tokens = args.rows * (args.length - args.length // 2)
    print(f"{args.rows} rows x {args.length} tokens ({answer_tokens} answer tokens), vocabulary {args.vocab:,}")
    print(f"{'mode':<7}{'median s/step':>15}{'fastest':>10}{'median CPU s':>14}{'peak RSS MB':>13}")
    for mode in MODES:
        command = [sys.executable, __file__, "--mode", mode, *sys.argv[1:]]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(
            f"{mode:<7}{result['median_s']:>15.3f}{result['fastest_s']:>10.3f}{result['median_cpu_s']:>14.3f}"
            f"{result['peak_rss_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
