"""SubmitJob's input rules: every bad input is refused with a message that says what is wrong."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.generator.validation import validate_idempotency_key, validate_request


def _validate(prompt: str = "a bear who finds honey", parts: int = 3, style: str = "") -> object:
    return validate_request(prompt, parts, style, default_parts=3, default_style="Pencil and Ink")


def test_a_good_request_is_trimmed_and_gets_the_defaults() -> None:
    request = validate_request("  a bear  \n", 0, "", default_parts=4, default_style="Pencil and Ink")
    assert (request.prompt, request.parts, request.style) == ("a bear", 4, "Pencil and Ink")


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "prompt is empty"),
        ("   \n\t  ", "prompt is empty"),
        ("\x00\x01\u200b", "only whitespace or control characters"),
        ("x" * 2001, "prompt is 2001 characters long; at most 2000"),
    ],
)
def test_bad_prompts_are_refused_with_a_clear_message(prompt: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _validate(prompt=prompt)


def test_a_prompt_of_exactly_2000_characters_after_trimming_is_accepted() -> None:
    assert len(_validate(prompt="  " + "y" * 2000 + "  ").prompt) == 2000  # type: ignore[attr-defined]


@pytest.mark.parametrize("parts", [-1, 9, 100])
def test_part_counts_outside_1_to_8_are_refused(parts: int) -> None:
    with pytest.raises(InvalidArgument, match=f"parts must be between 1 and 8, got {parts}"):
        _validate(parts=parts)


@pytest.mark.parametrize("parts", [1, 8])
def test_part_counts_at_the_limits_are_accepted(parts: int) -> None:
    assert _validate(parts=parts).parts == parts  # type: ignore[attr-defined]


def test_a_style_longer_than_80_characters_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="style is 81 characters long; at most 80"):
        _validate(style="s" * 81)


def test_a_style_with_control_characters_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="style must not contain control characters"):
        _validate(style="ink\x07")


def test_idempotency_keys_must_be_short_and_printable() -> None:
    assert validate_idempotency_key("abc-123") == "abc-123"
    with pytest.raises(InvalidArgument, match="at most 200"):
        validate_idempotency_key("k" * 201)
    with pytest.raises(InvalidArgument, match="printable"):
        validate_idempotency_key("a\nb")
