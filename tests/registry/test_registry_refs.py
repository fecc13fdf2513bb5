"""References: the three forms, and a clear error for everything else."""

from __future__ import annotations

import re

import pytest

from modelkeep.errors import InvalidReferenceError
from modelkeep.registry.refs import Reference, check_alias, check_name, parse_reference

FORMS = (
    "Expected NAME (its latest version), NAME:VERSION or NAME@ALIAS, e.g. 'churn', "
    "'churn:3', 'churn@production'; correct it and try again."
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn", Reference("churn")),
        ("churn:3", Reference("churn", version=3)),
        ("churn@production", Reference("churn", alias="production")),
        ("fraud.v2_eu-1:12", Reference("fraud.v2_eu-1", version=12)),
        ("7eleven@staging", Reference("7eleven", alias="staging")),
    ],
    ids=["latest", "version", "alias", "punctuated", "digit-first-name"],
)
def test_parses_each_form(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "it is empty"),
        ("churn:", "the version after ':' must be a whole number, got ''"),
        ("churn:x", "the version after ':' must be a whole number, got 'x'"),
        ("churn:-1", "the version after ':' must be a whole number, got '-1'"),
        ("churn:0", "version numbers start at 1"),
        ("churn@", "the alias after '@' is not valid: it is empty"),
        ("churn@1st", "the alias after '@' is not valid: an alias cannot start with a digit"),
        ("churn@pro duction", "the alias after '@' is not valid: it contains ' '"),
        ("churn:3@production", "a reference names a version or an alias, not both"),
        ("my churn", "the name is not valid: it contains ' '"),
        ("_churn", "the name is not valid: it starts with '_'"),
        ("../churn", "the name is not valid: it contains '/'"),
    ],
    ids=lambda value: value or "empty",
)
def test_rejects_malformed_references(text: str, problem: str) -> None:
    with pytest.raises(
        InvalidReferenceError, match=re.escape(f"Reference {text!r}: {problem}. {FORMS}")
    ):
        parse_reference(text)


def test_names_and_aliases_are_checked_on_their_own() -> None:
    assert check_name("churn") == "churn"
    assert check_alias("production") == "production"
    with pytest.raises(
        InvalidReferenceError,
        match=re.escape(
            "Name 'churn model': it contains ' '. Expected a name of letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, at most 128 characters, e.g. 'churn'; "
            "correct it and try again."
        ),
    ):
        check_name("churn model")
    with pytest.raises(
        InvalidReferenceError,
        match=re.escape(
            "Alias '2024': an alias cannot start with a digit. Expected an alias of letters, "
            "digits, '.', '_' and '-', starting with a letter, at most 64 characters, e.g. "
            "'production'; correct it and try again."
        ),
    ):
        check_alias("2024")
    with pytest.raises(
        InvalidReferenceError, match=re.escape("Name 'x" + "y" * 128 + "': it is too long.")
    ):
        check_name("x" + "y" * 128)
