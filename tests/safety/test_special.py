"""The table of specially handled pickle globals, shared by both walls: each entry is
implemented by both, and derives what each wall looks up."""

from __future__ import annotations

from modelkeep.safety import pickle_scan, unpickler
from modelkeep.safety.allowlist import ALLOWED, CALLABLE
from modelkeep.safety.special import SPECIAL, Form, StandIn

# The scanner also knows copyreg's protocol-2 helpers, for files that trust them.
_SCANNER_ONLY = {"copyreg.__newobj__", "copyreg.__newobj_ex__"}


def test_every_special_name_is_allowed_and_every_called_one_callable() -> None:
    assert set(SPECIAL) - ALLOWED == _SCANNER_ONLY
    called = {name for name, entry in SPECIAL.items() if entry.form or entry.stand_in}
    assert called <= CALLABLE


def test_both_walls_implement_every_form() -> None:
    assert set(pickle_scan._FORM_IMPLEMENTATIONS) == set(Form)
    assert set(unpickler._FORM_IMPLEMENTATIONS) == set(Form)
    assert set(unpickler._STAND_IN_IMPLEMENTATIONS) == set(StandIn)


def test_both_walls_check_the_same_calls() -> None:
    scanned = {f"{module}.{name}" for module, name in pickle_scan._ARGUMENT_FORMS}
    assert scanned == set(unpickler._ARGUMENT_FORMS)
    assert scanned == {name for name, entry in SPECIAL.items() if entry.form is not None}
    # Each wall applies its own implementation of the same form.
    for name, entry in SPECIAL.items():
        if entry.form is not None:
            module, _, short = name.rpartition(".")
            assert (
                pickle_scan._ARGUMENT_FORMS[(module, short)]
                is (pickle_scan._FORM_IMPLEMENTATIONS[entry.form])
            )
            assert unpickler._ARGUMENT_FORMS[name] is unpickler._FORM_IMPLEMENTATIONS[entry.form]


def test_stand_ins_come_from_the_table() -> None:
    assert set(unpickler._STAND_INS) == {n for n, e in SPECIAL.items() if e.stand_in}
    assert set(unpickler._AFTER_CALL) == {"pyarrow.lib._restore_array"}
