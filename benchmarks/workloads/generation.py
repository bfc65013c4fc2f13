"""Benchmark workload: greedy translation of test sentences with the embedded model, three ways.

Variants (each run in its own process by ``python -m benchmarks.run``):
  medtune-batched      - medtune's engine (``generate_texts``): length-sorted, left-padded batches
  hf-one-at-a-time     - plain ``model.generate``, one prompt per call
  hf-batched-unsorted  - ``model.generate`` on batches of the same size in file order (no length sorting)

All three get the same prompts (the evaluation's few-shot translation prompt), the same
``max_new_tokens`` and stop at the same tokens (EOS, or any token holding a line break: a translation
is one line). Generated tokens are counted the same way for all: each sentence's new tokens up to and
including the one that stopped it. ``extra`` says whether the texts equal the one-at-a-time texts
(each variant leaves its texts in the temporary folder; of two variants, the later one compares).

Usage: python -m benchmarks.workloads.generation --variant medtune-batched [--quick] --out result.json
       [--sentences N --max-new-tokens T] [--cache static] [--compile]   (the last two: medtune-batched only)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from benchmarks.workloads.common import (
    Target,
    device_name,
    embedded_model_dir,
    peak_mem_mb,
    read_jsonl,
    shared_data,
    write_result,
)

VARIANTS: tuple[str, ...] = ("medtune-batched", "hf-one-at-a-time", "hf-batched-unsorted")
BASELINES: tuple[str, ...] = ("hf-one-at-a-time", "hf-batched-unsorted")
TARGETS = (Target("speed", "hf-one-at-a-time", 5.0),)  # issue 10: batched generation >= 5x one at a time

TEST_FILE = "translation/tico19_en_es_general_health.jsonl"
FEW_SHOT = 3  # the evaluation's default (eval.few_shot)
SIZES = {"quick": (32, 16), "full": (96, 64)}  # sentences, max_new_tokens (quick: two batches of 16)
BATCH_SIZE = 16


def build_prompts(count: int) -> list[str]:
    """``count`` translation prompts: 3 fixed few-shot pairs from the file's end, then the first sentences."""
    from medtune.data.parallel import Pair
    from medtune.data.prompts import translation_prompt

    rows = read_jsonl(shared_data(TEST_FILE))
    pairs = [Pair(src=r["en"], tgt=r["es"]) for r in rows]
    moderate = [p for p in pairs[count:] if 30 <= len(p.src) <= 160]  # short, never a test sentence
    examples = moderate[-FEW_SHOT:]
    return [translation_prompt(p.src, "en", "es", examples) for p in pairs[:count]]


def stop_ids(model, tokenizer) -> list[int]:
    """EOS and every token holding a line break: where each variant ends a translation."""
    from medtune.generate.engine import model_eos_ids, newline_token_ids

    return sorted(set(model_eos_ids(model)) | set(newline_token_ids(tokenizer).tolist()))


def counted_tokens(new_ids: list[int], stops: set[int], pad_id: int) -> int:
    """New tokens up to and including the first stop token (all non-padding ones when none stopped it)."""
    for position, token in enumerate(new_ids):
        if token in stops:
            return position + 1
    return sum(token != pad_id for token in new_ids)


def translation_text(tokenizer, new_ids: list[int]) -> str:
    """The translation as medtune's engine returns it: decoded, first line, stripped."""
    return tokenizer.decode(new_ids, skip_special_tokens=True).split("\n", 1)[0].strip()


def hf_generate(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[list[str], int]:
    """Plain ``model.generate`` on batches in the given order (left padding); texts and counted tokens."""
    stops = stop_ids(model, tokenizer)
    tokenizer.padding_side = "left"
    texts, tokens = [], 0
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(model.device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += counted_tokens(row, set(stops), tokenizer.pad_token_id)
            texts.append(translation_text(tokenizer, row))
    return texts, tokens


def medtune_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, decoding) -> tuple[list[str], int]:
    """medtune's engine; its token count (``GenerationStats.new_tokens``) follows ``counted_tokens``' rule."""
    from medtune.generate.engine import GenerationStats, generate_texts

    stats = GenerationStats()
    texts = generate_texts(
        model, tokenizer, prompts, BATCH_SIZE, max_new_tokens, progress=None, stats=stats, decoding=decoding
    )
    return texts, stats.new_tokens


def run_variant(
    variant: str, model, tokenizer, prompts: list[str], max_new_tokens: int, decoding
) -> tuple[list[str], int]:
    """Generate with one variant; returns the texts (in prompt order) and the generated tokens."""
    if variant == "medtune-batched":
        return medtune_generate(model, tokenizer, prompts, max_new_tokens, decoding)
    if variant == "hf-one-at-a-time":
        return hf_generate(model, tokenizer, prompts, 1, max_new_tokens)
    if variant == "hf-batched-unsorted":
        return hf_generate(model, tokenizer, prompts, BATCH_SIZE, max_new_tokens)
    raise SystemExit(f"--variant must be one of {', '.join(VARIANTS)}; got {variant!r}.")


def texts_file(variant: str, prompts: list[str], max_new_tokens: int) -> Path:
    """Where a variant leaves its texts (the system's temporary folder), keyed by the prompts and length."""
    key = hashlib.sha256(json.dumps([prompts, max_new_tokens]).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"medtune-generation-{variant}-{key}.json"


def compare_with_one_at_a_time(variant: str, texts: list[str], prompts: list[str], max_new_tokens: int) -> dict:
    """Leave this variant's texts for the others; compare with the one-at-a-time texts where they exist.

    Why not generate the reference here: one prompt at a time is the slowest variant by far, and the
    suite runs it anyway; whichever of two variants runs second reports their agreement. The
    one-at-a-time run reports every batched variant it finds; a batched one run after it reports itself.
    """
    texts_file(variant, prompts, max_new_tokens).write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    reference_file = texts_file("hf-one-at-a-time", prompts, max_new_tokens)
    if variant == "hf-one-at-a-time":
        found = {}
        for other in VARIANTS[:1] + BASELINES[1:]:
            path = texts_file(other, prompts, max_new_tokens)
            if path.is_file():
                found[other] = json.loads(path.read_text(encoding="utf-8")) == texts
        return {"identical_to_one_at_a_time": True, "batched_variants_identical": found}
    if not reference_file.is_file():
        return {"identical_to_one_at_a_time": None}  # not known yet: the one-at-a-time run will say
    reference = json.loads(reference_file.read_text(encoding="utf-8"))
    same = [a == b for a, b in zip(texts, reference, strict=True)]
    return {"identical_to_one_at_a_time": all(same), "sentences_identical": sum(same)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument(
        "--quick", action="store_true", help=f"{SIZES['quick'][0]} sentences instead of {SIZES['full'][0]}"
    )
    parser.add_argument("--out", required=True, type=Path, help="where the result JSON is written")
    parser.add_argument("--sentences", type=int, help="override the number of sentences")
    parser.add_argument("--max-new-tokens", type=int, help="override the longest translation in tokens")
    parser.add_argument("--cache", choices=("dynamic", "static"), default="dynamic", help="medtune-batched: KV cache")
    parser.add_argument("--compile", action="store_true", help="medtune-batched: torch.compile the decoding step")
    args = parser.parse_args()

    import torch

    from medtune.generate.engine import DecodingOptions
    from medtune.models.loading import load_model

    count, max_new_tokens = SIZES["quick" if args.quick else "full"]
    count, max_new_tokens = args.sentences or count, args.max_new_tokens or max_new_tokens
    decoding = DecodingOptions(args.cache, args.compile)
    loaded = load_model(str(embedded_model_dir()), dtype="bfloat16", log=lambda _: None)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    prompts = build_prompts(count)
    with torch.no_grad():
        run_variant(args.variant, model, tokenizer, prompts[:2], 4, decoding)  # warm-up: first-call costs
        started = time.perf_counter()
        texts, tokens = run_variant(args.variant, model, tokenizer, prompts, max_new_tokens, decoding)
        wall = time.perf_counter() - started
    write_result(
        args.out,
        workload="generation",
        variant=args.variant,
        device=device_name(),
        steps=count,
        target_tokens=tokens,
        wall_s=round(wall, 3),
        tokens_per_s=round(tokens / wall, 2),
        peak_mem_mb=round(peak_mem_mb(), 1),
        final_loss=None,
        losses=[],
        extra={
            "sentences": count,
            "max_new_tokens": max_new_tokens,
            "batch_size": 1 if args.variant == "hf-one-at-a-time" else BATCH_SIZE,
            "dtype": "bfloat16",
            "cache": args.cache if args.variant == "medtune-batched" else "dynamic",
            "compile": args.compile and args.variant == "medtune-batched",
            **compare_with_one_at_a_time(args.variant, texts, prompts, max_new_tokens),
        },
    )
    print(args.out.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
