"""The public surface: what `import modelkeep` exports and what it costs."""

from __future__ import annotations

import subprocess
import sys

import modelkeep


def test_exported_members() -> None:
    exported = set(modelkeep.__all__)
    assert {"save", "load", "verify", "Model", "Manifest", "ModelkeepError"} <= exported
    for name in exported:
        assert hasattr(modelkeep, name), name
    public = {n for n in dir(modelkeep) if not n.startswith("_")}
    submodules = {  # present once imported (the in-process CLI tests import cli)
        "bundle",
        "cli",
        "environment",
        "errors",
        "formats",
        "golden",
        "importing",
        "integrity",
        "manifest",
        "model",
        "onnx",
        "conversion",
        "registry",
        "safety",
        "schema",
        "signing",
    }
    assert public - submodules == exported - {"__version__"}


def test_every_error_derives_from_modelkeep_error_and_a_builtin() -> None:
    import modelkeep.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception):
            if issubclass(cls, Warning):
                assert issubclass(cls, errors.ModelkeepWarning)
                continue
            assert issubclass(cls, errors.ModelkeepError), name
            if cls is not errors.ModelkeepError:
                builtin = [b for b in cls.__mro__ if b.__module__ == "builtins"]
                assert builtin[0] is not Exception, f"{name} derives from no specific builtin"


def test_import_is_light() -> None:
    code = (
        "import sys, modelkeep; "
        "heavy = [m for m in ('sklearn', 'skops', 'rich', 'typer', 'scipy', 'sqlalchemy') "
        "if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
