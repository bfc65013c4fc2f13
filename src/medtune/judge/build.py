"""A judge from its spec: ``reference``, ``llm``, ``ensemble`` or ``ensemble:reference=0.5,llm=0.5``.

Weights (``--weights`` on the CLI, ``name=value`` pairs separated by commas) mean, per kind:
- ``reference``: ``similarity=0.7,coverage=0.3`` (the defaults);
- ``llm``: the rubric's criteria and their weights, e.g. ``factual_accuracy=2,completeness=1``
  (default: factual_accuracy, completeness, key_point_coverage, equal weights);
- ``ensemble``: member weights ``reference=0.5,llm=0.5`` (also writable in the spec), and a
  member's own weights with its name in front: ``reference.similarity=0.6,llm.completeness=2``.
"""

from __future__ import annotations

from pathlib import Path

from medtune.errors import MedtuneError
from medtune.judge.base import Judge

KINDS = ("reference", "llm", "ensemble")


def parse_weight_pairs(text: str | None, option: str = "--weights") -> dict[str, float]:
    """``"a=0.5,b=1"`` -> ``{"a": 0.5, "b": 1.0}``.

    Raises:
        MedtuneError: a part that is not ``name=number``, naming ``option``.
    """
    weights: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise MedtuneError(
                f"{option}: '{part.strip()}' is not name=number; write e.g. similarity=0.7,coverage=0.3."
            )
    return weights


def parse_judge_spec(spec: str) -> tuple[str, dict[str, float]]:
    """``"ensemble:reference=0.5,llm=0.5"`` -> ``("ensemble", {...})``; plain kinds have no weights."""
    kind, _, weights = spec.strip().partition(":")
    if kind not in KINDS:
        raise MedtuneError(
            f"--judge: unknown judge '{spec}'. Use reference, llm, ensemble or ensemble:reference=0.5,llm=0.5."
        )
    if weights and kind != "ensemble":
        raise MedtuneError(f"--judge: only an ensemble takes weights in its spec ('{spec}'); use --weights for {kind}.")
    return kind, parse_weight_pairs(weights, "--judge")


def _glossary_terms(glossary: str | None) -> list[str]:
    if not glossary:
        return []
    from medtune.data.glossary import load_glossary

    return [form for term in load_glossary(glossary) for form in (*term.src_forms, *term.tgt_forms)]


def build_judge(
    kind: str,
    *,
    endpoint: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    glossary: str | None = None,
    weights: dict | None = None,
    task: str = "qa",
    policy_model: str | None = None,
    concurrency: int = 8,
    retries: int | None = None,
    log=print,
) -> Judge:
    """Build a judge from its spec (see the module docstring for weights).

    Args:
        kind: ``reference``, ``llm``, ``ensemble`` or ``ensemble:name=weight,...``.
        endpoint, model, api_key: the ``llm`` judge's OpenAI-compatible server and model name; with
            no endpoint, ``model`` is loaded locally (any model medtune can load).
        glossary: a glossary file whose terms count as key points (reference judge).
        task: ``qa`` or ``translation`` (reference judge: sentence chrF++ against the reference).
        policy_model: the model whose answers are judged; a warning is logged when the judge is the same model.
        concurrency: parallel requests to the endpoint.
    Raises:
        MedtuneError: an unknown kind, bad weights, or an llm judge without a model.
    """
    kind, spec_weights = parse_judge_spec(kind)
    weights = {**spec_weights, **(weights or {})}
    if kind == "reference":
        from medtune.judge.reference import ReferenceJudge

        return ReferenceJudge(task=task, weights=weights, glossary_terms=_glossary_terms(glossary))
    if kind == "llm":
        return _llm_judge(endpoint, model, api_key, weights, policy_model, concurrency, retries, log)
    return _ensemble(weights, endpoint, model, api_key, glossary, task, policy_model, concurrency, retries, log)


def _llm_judge(endpoint, model, api_key, weights, policy_model, concurrency, retries, log) -> Judge:
    from medtune.judge.backends import EndpointChatBackend, LocalChatBackend
    from medtune.judge.llm import DEFAULT_RETRIES, LLMJudge

    if not model:
        raise MedtuneError(
            "The llm judge needs a model: --judge-model NAME (the model name at --endpoint URL, or a model medtune "
            "can load locally when no endpoint is given)."
        )
    if policy_model and _same_model(model, policy_model):
        log(
            f"warning: the judge model '{model}' is also the policy whose answers it judges; self-judging favours "
            "its own answers. Prefer a different, stronger judge."
        )
    if endpoint:
        backend = EndpointChatBackend(endpoint, model, api_key=api_key, concurrency=concurrency)
    else:
        backend = LocalChatBackend(model, log=log)
    return LLMJudge(backend, criteria=weights or None, retries=DEFAULT_RETRIES if retries is None else retries)


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def _ensemble(weights, endpoint, model, api_key, glossary, task, policy_model, concurrency, retries, log) -> Judge:
    from medtune.judge.ensemble import EnsembleJudge

    member_weights = {k: v for k, v in weights.items() if "." not in k}
    if not member_weights:
        raise MedtuneError("An ensemble needs member weights: --judge ensemble:reference=0.5,llm=0.5.")
    unknown = sorted(set(member_weights) - {"reference", "llm"})
    if unknown:
        raise MedtuneError(f"--judge: unknown ensemble member(s) {', '.join(unknown)}; members are reference and llm.")
    members = {}
    for name in member_weights:
        own = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith(name + ".")}
        members[name] = build_judge(
            name,
            endpoint=endpoint,
            model=model,
            api_key=api_key,
            glossary=glossary,
            weights=own,
            task=task,
            policy_model=policy_model,
            concurrency=concurrency,
            retries=retries,
            log=log,
        )
    stray = sorted(k for k in weights if "." in k and k.split(".", 1)[0] not in members)
    if stray:
        raise MedtuneError(f"--weights: {', '.join(stray)} name no member of this ensemble ({', '.join(members)}).")
    return EnsembleJudge(members, member_weights)
