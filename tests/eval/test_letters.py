"""Reading the chosen letter out of free-text replies: the usual shapes, option text, and refusals."""

from __future__ import annotations

import pytest

from medtune.eval.letters import extract_letter

OPTIONS = {
    "A": "Give intravenous protamine sulfate",
    "B": "Continue warfarin at the same dose",
    "C": "Hold warfarin and give oral vitamin K",
    "D": "Transfuse packed red blood cells",
}


@pytest.mark.parametrize(
    "reply",
    [
        "Answer: C",
        "answer: c",
        "C",
        "C.",
        "C)",
        "(C)",
        "c)",
        "(c)",
        "**C**",
        "**Answer:** C",
        "The answer is C",
        "The correct answer is (C).",
        "The correct option is C: hold warfarin.",
        "Option C",
        "I would choose option C",
        " C. Hold warfarin and give oral vitamin K\nExplanation: A reverses heparin, not warfarin.",
        "C. Because A and B are wrong",
        "Hold warfarin and give oral vitamin K.",
        "hold warfarin and give oral vitamin k, since there is no bleeding",
        "I think C",
    ],
)
def test_reads_the_letter_from_common_reply_shapes(reply):
    assert extract_letter(reply, OPTIONS) == "C"


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "A or C",
        "A and C",
        "(A) and (C)",
        "A, C",
        "Either B or D",
        "The answer is C or D",
        "Answer: A. Answer: C.",
        "I do not know",
        "The answer is a bit unclear",
        "Answer: E",  # not one of the options
        "Give vitamin K",  # neither a letter nor the start of an option's text
    ],
)
def test_refuses_empty_ambiguous_or_unknown_replies(reply):
    assert extract_letter(reply, OPTIONS) is None


def test_articles_and_pronouns_are_not_letters():
    assert extract_letter("A patient like this needs B", OPTIONS) == "B"
    assert extract_letter("I am sure it is D", OPTIONS) == "D"
    assert extract_letter("A", OPTIONS) == "A"  # on its own, "A" is the letter


def test_letters_only_options_and_longest_matching_option_text():
    assert extract_letter("Answer: B", "ABC") == "B"
    assert extract_letter("Hold warfarin", "ABCD") is None  # no option texts to match without a dict
    yes_no = {"A": "yes", "B": "no", "C": "maybe"}
    assert extract_letter("Yes.", yes_no) == "A"
    assert extract_letter("maybe, the trial was small", yes_no) == "C"
    nested = {"A": "Warfarin", "B": "Warfarin and vitamin K"}
    assert extract_letter("Warfarin and vitamin K together", nested) == "B"
