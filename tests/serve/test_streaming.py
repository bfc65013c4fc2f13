"""What a streamed reply may send before it ends: ``settled_text`` against hand-made cases."""

from __future__ import annotations

import pytest

from medtune.serve.streaming import final_text, settled_text


@pytest.mark.parametrize(
    ("decoded", "stops", "settled"),
    [
        ("  Hola", (), "Hola"),  # leading space: stripped, as in the final reply
        ("Hola ", (), "Hola"),  # trailing space: held (stripped if the reply ends here)
        ("Hola mu", ("mundo!",), "Hola"),  # "mu" may begin the stop string: held, then the space before it
        ("Hola mundo! y", ("mundo!",), "Hola"),  # the stop string arrived: the reply is complete
        ("caf\ufffd", (), "caf"),  # an incomplete UTF-8 character: held
        ("Hola m", ("xyz",), "Hola m"),
    ],
)
def test_settled_text_holds_back_what_may_still_change(decoded, stops, settled):
    assert settled_text(decoded, stops) == settled
    assert final_text(decoded + "ndo! y", stops).startswith(settled)
