"""The rlaif recipe keys: defaults, bounds and errors that name the key."""

from __future__ import annotations

import pytest

from medtune.errors import MedtuneError
from medtune.recipes.loader import validate_recipe

MINIMAL = {"name": "tiny", "task": "qa", "data": {"train": "q.jsonl"}}


def test_defaults_of_the_rlaif_sections():
    recipe = validate_recipe({**MINIMAL, "pipeline": "rlaif"})
    g, j, p = recipe.generate, recipe.judge, recipe.pairs
    assert (g.n, g.temperature, g.top_p, g.endpoint, g.concurrency) == (4, 0.7, 0.95, None, 8)
    assert (j.kind, j.endpoint, j.api_key_env) == ("reference", None, None)
    assert (p.margin, p.heldout) == (0.1, 0.1)
    assert recipe.eval.preference_data is None
    assert validate_recipe(MINIMAL).pipeline == "before_after"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"task": "chat", "pipeline": "rlaif"}, "key 'pipeline'"),
        ({"pipeline": "rlhf"}, "key 'pipeline'"),
        ({"generate": {"n": 1}}, "key 'generate.n'"),
        ({"judge": {"kind": "oracle"}}, "key 'judge.kind'"),
        ({"judge": {"api_key": "sk-secret"}}, "unknown key 'judge.api_key'"),
        ({"pairs": {"heldout": 1.0}}, "key 'pairs.heldout'"),
    ],
)
def test_bad_values_name_the_key(override, named):
    with pytest.raises(MedtuneError, match=named):
        validate_recipe({**MINIMAL, **override})
