"""The errors' text: one list formatter, caps, and messages built from the errors' facts."""

from __future__ import annotations

import pytest

from modelkeep.errors import (
    GoldenMismatchError,
    UnsafePickleError,
    UnsupportedFormatVersionError,
    UntrustedTypesError,
    listing,
)


def test_listing_caps_quotes_and_counts_the_rest() -> None:
    assert listing(["b", "a", "c"]) == "'b', 'a', 'c'"
    assert listing(["b", "a", "b"], sort=True) == "'a', 'b'"
    assert listing(range(8), quote=False) == "0, 1, 2, 3, 4 and 3 more"
    assert listing(["x;", "y", "z"], limit=1, quote=False, separator="; ") == "x;; and 2 more"
    assert listing([]) == ""


def test_golden_rows_are_capped_at_five() -> None:
    error = GoldenMismatchError("predictions", list(range(12)), 0.5, 20)
    assert "12 of 20 golden rows differ (rows 0, 1, 2, 3, 4 and 7 more)" in str(error)
    assert error.rows == tuple(range(12))  # every row is kept on the error


def test_untrusted_types_are_capped_and_all_kept() -> None:
    names = [f"pkg.T{i:02d}" for i in range(25)]
    error = UntrustedTypesError("model.pkl", names)
    assert "references 25 untrusted type(s): pkg.T00, " in str(error)
    assert "pkg.T19 and 5 more" in str(error)
    assert "(all of them: `modelkeep scan`, or this error's .types)" in str(error)
    assert error.types == tuple(names)
    few = UntrustedTypesError("model.pkl", ["pkg.B", "pkg.A"])
    assert "2 untrusted type(s): pkg.A, pkg.B. modelkeep did not load it." in str(few)
    assert "all of them" not in str(few)


def test_unsafe_constructs_are_listed_with_semicolons() -> None:
    error = UnsafePickleError("m.pkl", [f"byte {i}: BUILD of a class" for i in range(7)])
    assert "byte 4: BUILD of a class; and 2 more. The file was crafted" in str(error)


def test_a_specialized_message_keeps_the_base_facts() -> None:
    error = UnsupportedFormatVersionError("b/modelkeep.json", 99, [1, 2])
    assert (error.path, error.problem) == ("b/modelkeep.json", "unsupported format_version 99")
    assert str(error).startswith(
        "Manifest 'b/modelkeep.json': format_version expected one of 1, 2, got 99."
    )
    with pytest.raises(ValueError):  # still the builtin it always was
        raise error


def test_an_optional_dependency_names_the_extra_to_install() -> None:
    from modelkeep._optional import require
    from modelkeep.errors import MissingDependencyError

    assert require("parquet", "json", "csv", feature="Reading").__name__ == "json"
    with pytest.raises(MissingDependencyError) as caught:
        require("serve", "json", "no_such_module_xyz", feature="Serving", packages="fastapi")
    assert str(caught.value) == "Serving needs fastapi: pip install 'modelkeep[serve]'"
    assert caught.value.extra == "serve"
