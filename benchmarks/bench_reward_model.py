"""Benchmark the reward model: does it learn reviewer-like scores of translations, without a reference?

Offline data, made here from a parallel file read in place (TICO-19 EN->ES by default): for each of
``--sources`` sentences, the reference translation itself and ``--variants - 1`` damaged copies, each
with one to three errors of the kinds reviewers flag: dropped words (omission), a number changed or a
negation dropped (meaning), a content word replaced by one from another sentence (terminology), the
end cut off (omission), two neighbouring words swapped (fluency). Two simulated reviewers score each
translation ``1 - sum of its errors' severities`` plus their own noise (sd ``--noise``), clipped to
[0, 1]; the item's score is their mean, as the feedback store's items are. Sentences, not items, are
held out (``--heldout``), so no held-out translation shares a source with a training one.

Printed: the reward model's held-out Spearman against those scores with its 95% bootstrap interval
(target >= 0.3), its pairwise accuracy on all held-out pairs and on same-source pairs (choosing the
better of two translations of one sentence), next to reference-based sentence chrF++ on the same
items (which sees the reference, the reward model does not), and the training time.

Usage: python benchmarks/bench_reward_model.py [--model gemma-3-270m] [--sources 400] [--variants 3]
       [--epochs 2] [--lr 2e-4] [--pairwise-weight 0] [--device auto] [--dtype auto]
Quick check (a tiny random Gemma 3, 40 sentences, 10 steps): python benchmarks/bench_reward_model.py --quick
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

TICO = "/work/shared/data/translation/tico19_en_es_general_health.jsonl"
# Severity of each kind of error: how much of a reviewer's score it costs.
SEVERITY = {"drop_word": 0.12, "number": 0.45, "negation": 0.5, "term": 0.3, "truncate": 0.35, "swap": 0.08}


def damage(translation: str, others: list[str], rng: random.Random) -> tuple[str, float]:
    """A copy of ``translation`` with one to three errors, and the sum of their severities."""
    words = translation.split()
    cost = 0.0
    for _ in range(rng.randint(1, 3)):
        kinds = ["drop_word", "term", "truncate", "swap"]
        if any(re.search(r"\d", w) for w in words):
            kinds.append("number")
        if "no" in words:
            kinds.append("negation")
        kind = rng.choice(kinds)
        if len(words) < 4 and kind in ("drop_word", "truncate", "swap"):
            kind = "term"
        if kind == "drop_word":
            del words[rng.randrange(len(words))]
        elif kind == "truncate":
            words = words[: max(2, 2 * len(words) // 3)]
        elif kind == "swap":
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == "number":
            i = rng.choice([k for k, w in enumerate(words) if re.search(r"\d", w)])
            words[i] = re.sub(r"\d", lambda m: str((int(m.group()) + rng.randint(1, 8)) % 10), words[i], count=1)
        elif kind == "negation":
            words.remove("no")
        else:
            long_words = [k for k, w in enumerate(words) if len(w) >= 6] or list(range(len(words)))
            pool = [w for other in others for w in other.split() if len(w) >= 6]
            words[rng.choice(long_words)] = rng.choice(pool)
        cost += SEVERITY[kind]
    return " ".join(words), cost


def reviewer_items(rows: list[dict], variants: int, noise: float, seed: int) -> list:
    """Judged items (ItemFeedback) for every row: the reference and ``variants - 1`` damaged copies."""
    from medtune.feedback.training_data import ItemFeedback

    rng = random.Random(seed)
    references = [r["es"] for r in rows]
    items = []
    for k, row in enumerate(rows):
        seen = set()
        for v in range(variants):
            text, cost = (row["es"], 0.0) if v == 0 else damage(row["es"], rng.sample(references, 5), rng)
            if text in seen:
                continue
            seen.add(text)
            scores = tuple(min(1.0, max(0.0, 1 - cost + rng.gauss(0, noise))) for _ in range(2))
            items.append(
                ItemFeedback(f"s{k:05d}-v{v}", row["en"], text, row["es"], sum(scores) / 2, None, 2, scores, True)
            )
    return items


def same_source_accuracy(values: list[float], items: list) -> tuple[float | None, int]:
    """Share of same-source pairs with different scores that ``values`` order like the scores."""
    from medtune.judge.agreement import same_prompt_pairs

    pairs = same_prompt_pairs([i.source for i in items], [i.score for i in items])
    if not pairs:
        return None, 0
    return sum(values[better] > values[worse] for better, worse in pairs) / len(pairs), len(pairs)


def _interval(figures: dict, key: str) -> str:
    value, low, high = figures.get(key), figures.get(f"{key}_ci_low"), figures.get(f"{key}_ci_high")
    if value is None:
        return "n/a"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=TICO, help="parallel JSONL with en/es columns, read in place")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--sources", type=int, default=400, help="sentences used (a seeded sample)")
    parser.add_argument("--variants", type=int, default=3, help="translations per sentence (the reference + damaged)")
    parser.add_argument("--heldout", type=float, default=0.25, help="share of sentences held out")
    parser.add_argument("--noise", type=float, default=0.07, help="each simulated reviewer's noise (sd)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--pairwise-weight", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto", help="train.dtype: auto, float32 or bfloat16")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="a tiny random model, 40 sentences, 10 steps")
    args = parser.parse_args()

    from medtune.data.io import read_rows
    from medtune.data.sampling import sample_items
    from medtune.eval.metrics import sentence_chrf_scores
    from medtune.feedback.reward import heldout_metrics, train_reward_model
    from medtune.recipes.schema import Recipe

    rows = sample_items([r.fields for r in read_rows(args.data)], 40 if args.quick else args.sources, args.seed)
    items = reviewer_items(rows, args.variants, args.noise, args.seed)
    sources = sorted({i.source for i in items})
    held_sources = set(random.Random(args.seed).sample(sources, round(args.heldout * len(sources))))
    train = [i for i in items if i.source not in held_sources]
    heldout = [i for i in items if i.source in held_sources]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.quick:
            sys.path.insert(0, str(Path(__file__).parent))
            from bench_rlhf_update import build_tiny_model

            model = build_tiny_model(Path(tmp) / "tiny")
        recipe = Recipe(
            name="bench-reward",
            task="translation",
            pipeline="feedback_reward",
            model=model,
            device=args.device,
            seed=args.seed,
            data={"train": "feedback"},
            feedback={"pairwise_weight": args.pairwise_weight},
            train={
                "dtype": args.dtype,
                "epochs": args.epochs,
                "max_steps": 10 if args.quick else args.max_steps,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "eval_every": 10**6,
            },
        )
        started = time.perf_counter()
        metrics = train_reward_model(recipe, train, heldout, str(Path(tmp) / "reward"), log=lambda m: None)
        seconds = time.perf_counter() - started
        from medtune.data.io import read_jsonl

        rewards = [r["reward"] for r in read_jsonl(Path(tmp) / "reward" / "heldout_scores.jsonl")]
    chrf = sentence_chrf_scores([i.translation for i in heldout], [i.reference for i in heldout])
    chrf_figures = heldout_metrics(chrf, heldout, seed=args.seed)  # chrF++ in the reward's place
    ss_reward, n_pairs = same_source_accuracy(rewards, heldout)
    ss_chrf, _ = same_source_accuracy(chrf, heldout)
    scores = [i.score for i in items]
    print(
        f"reward model on {'a tiny random Gemma 3 (--quick)' if args.quick else args.model}: {len(train)} items "
        f"({len(sources) - len(held_sources)} sentences) to train, {len(heldout)} held out ({len(held_sources)} "
        f"sentences); scores mean {sum(scores) / len(scores):.3f}, {metrics['steps']} steps in {seconds:.1f} s "
        f"({metrics.get('dtype')} on {metrics.get('device')})"
    )
    print(f"{'held-out':<34}{'Spearman [95% CI]':>26}{'pairwise acc.':>16}{'same-source acc.':>18}")
    print(
        f"{'reward model (no reference)':<34}{_interval(metrics, 'spearman'):>26}"
        f"{metrics['pairwise_accuracy']:>16.3f}{(ss_reward if ss_reward is not None else float('nan')):>18.3f}"
    )
    print(
        f"{'sentence chrF++ (with reference)':<34}{_interval(chrf_figures, 'spearman'):>26}"
        f"{chrf_figures['pairwise_accuracy']:>16.3f}"
        f"{(ss_chrf if ss_chrf is not None else float('nan')):>18.3f}"
    )
    print(f"({n_pairs} same-source pairs; target: reward-model Spearman >= 0.3)")


if __name__ == "__main__":
    main()
