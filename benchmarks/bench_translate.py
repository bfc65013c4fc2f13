"""Benchmark medtune's translation training and generation on the embedded model, against TRL.

Each part runs in its own process so that peak memory (max RSS) is measured per part:
  medtune   - medtune's training loop (LoRA, target-only logits, length-grouped batches)
  trl       - TRL's SFTTrainer with its defaults: same model, data, batch size, LoRA and steps
  generate  - medtune's batched greedy translation of test sentences

Usage: python benchmarks/bench_translate.py [--steps 20] [--batch-size 8] [--sentences 48]
Prints absolute figures and the medtune/TRL ratios. Needs the embedded model (cached on first use).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

LORA = dict(
    r=16, alpha=32, dropout=0.0, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n_train: int):
    from medtune.data.parallel import load_pairs
    from medtune.data.split import split_pairs

    pairs = load_pairs("demo:medical_en_es.jsonl", doc_col="doc_id")
    train, _, test = split_pairs(pairs, 0.12, 0.04, 42)
    return train[:n_train], test


def part_medtune(steps: int, batch_size: int, checkpointing: bool) -> dict:
    """The bundled translate-en-es recipe's training setup (LoRA, activation checkpointing as configured)."""
    from medtune.recipes.loader import load_recipe
    from medtune.train.batching import encode_translation_pairs
    from medtune.train.loop import train_loop
    from medtune.train.setup import loop_config, prepare_trainable_model

    recipe = load_recipe(
        "translate-en-es",
        [
            f"train.max_steps={steps}",
            f"train.batch_size={batch_size}",
            "train.lr=2e-4",
            f"train.gradient_checkpointing={str(checkpointing).lower()}",
            f"train.lora.r={LORA['r']}",
            f"train.lora.alpha={LORA['alpha']}",
            f"train.lora.dropout={LORA['dropout']}",
            "train.eval_every=1000000",
            "train.save_every=1000000",
        ],
    )
    train, _ = _data(steps * batch_size)
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    examples = encode_translation_pairs(trainable.loaded.tokenizer, train, seq2seq=False, max_length=256)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_loop(
            trainable.model,
            examples,
            [],
            loop_config(recipe),
            trainable.loaded.tokenizer.pad_token_id,
            False,
            __import__("pathlib").Path(tmp),
            log=lambda *_: None,
        )
        wall = time.perf_counter() - started
    return {
        "target_tokens": result.target_tokens,
        "seconds": wall,
        "target_tokens_per_s": result.target_tokens / wall,
        "final_loss": result.loss_history[-1][1],
        "padding_waste": result.padding_waste,
        "gradient_checkpointing": checkpointing,
        "peak_mb": _peak_mb(),
    }


def part_trl(steps: int, batch_size: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from medtune.data.prompts import translation_prompt, translation_target
    from medtune.models.gguf import ensure_embedded_model

    train, _ = _data(steps * batch_size)
    path = ensure_embedded_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    rows = [{"prompt": translation_prompt(p.src), "completion": translation_target(p.tgt)} for p in train]
    target_tokens = sum(len(tokenizer(r["completion"], add_special_tokens=False)["input_ids"]) for r in rows)
    peft = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["targets"],
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            output_dir=tmp,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=2e-4,
            report_to=[],
            save_strategy="no",
            logging_steps=steps,
            seed=42,
            use_cpu=True,
        )
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft
        )
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    # Every example is seen once (steps * batch_size rows), so the target tokens trained are the completions' tokens.
    return {
        "target_tokens": target_tokens,
        "seconds": wall,
        "target_tokens_per_s": target_tokens / wall,
        "peak_mb": _peak_mb(),
    }


def part_generate(sentences: int, batch_size: int) -> dict:
    from medtune.eval.translation import translation_prompts
    from medtune.generate.engine import GenerationStats, generate_texts
    from medtune.models.loading import load_model

    _, test = _data(0)
    test = test[:sentences]
    loaded = load_model("gemma-3-270m")
    prompts = translation_prompts(loaded, test, [], "en", "es")
    stats = GenerationStats()
    generate_texts(loaded.model, loaded.tokenizer, prompts, batch_size=batch_size, progress=None, stats=stats)
    return {
        "sentences": stats.sequences,
        "seconds": stats.seconds,
        "sentences_per_s": stats.sequences_per_s,
        "new_tokens_per_s": stats.new_tokens / stats.seconds,
        "peak_mb": _peak_mb(),
    }


def _run_part(name: str, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--part",
        name,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--sentences",
        str(args.sentences),
        *(["--no-checkpointing"] if args.no_checkpointing else []),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"part {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps for each trainer")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="sequences per step (training) / per batch (generation)"
    )
    parser.add_argument("--sentences", type=int, default=48, help="test sentences to translate")
    parser.add_argument("--part", choices=["medtune", "trl", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--skip-trl", action="store_true", help="do not run the TRL comparison")
    parser.add_argument(
        "--no-checkpointing",
        action="store_true",
        help="train medtune without activation checkpointing (faster, about 1 GB more memory)",
    )
    args = parser.parse_args()
    if args.part:
        fn = {
            "medtune": lambda: part_medtune(args.steps, args.batch_size, not args.no_checkpointing),
            "trl": lambda: part_trl(args.steps, args.batch_size),
            "generate": lambda: part_generate(args.sentences, 16),
        }[args.part]
        print(json.dumps(fn()))
        return
    results = {"medtune": _run_part("medtune", args), "generate": _run_part("generate", args)}
    if not args.skip_trl:
        results["trl"] = _run_part("trl", args)
    m, g = results["medtune"], results["generate"]
    print(
        f"medtune training : {m['target_tokens_per_s']:.1f} target tokens/s ({m['target_tokens']} tokens in {m['seconds']:.1f} s), "
        f"peak {m['peak_mb']:.0f} MB, padding {100 * m['padding_waste']:.1f}%, checkpointing {m['gradient_checkpointing']}"
    )
    print(
        f"generation       : {g['sentences_per_s']:.2f} sentences/s, {g['new_tokens_per_s']:.1f} new tokens/s ({g['sentences']} sentences), peak {g['peak_mb']:.0f} MB"
    )
    if "trl" in results:
        t = results["trl"]
        print(
            f"TRL SFTTrainer   : {t['target_tokens_per_s']:.1f} target tokens/s ({t['target_tokens']} tokens in {t['seconds']:.1f} s), peak {t['peak_mb']:.0f} MB"
        )
        print(f"speed ratio medtune/TRL : {m['target_tokens_per_s'] / t['target_tokens_per_s']:.2f}x")
        print(f"memory ratio medtune/TRL: {m['peak_mb'] / t['peak_mb']:.2f}x")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
