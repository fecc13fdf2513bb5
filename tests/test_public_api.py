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
    submodules = {  # the public submodules: present once imported (the CLI imports them)
        "batch",
        "cli",
        "errors",
        "manifest",
        "monitor",
        "onnx",
        "registry",
        "safety",
        "sandbox",
        "serve",
        "signing",
    }
    assert public - submodules == exported - {"__version__"}


def test_all_is_sorted() -> None:
    assert modelkeep.__all__ == sorted(modelkeep.__all__)
    import modelkeep.errors as errors

    assert errors.__all__ == sorted(errors.__all__)


FAMILIES = {
    "BundleError": {
        "ManifestError",
        "UnsupportedFormatVersionError",
        "BundleExistsError",
        "BundleWriteError",
        "BundleNotFoundError",
        "BundleLayoutError",
        "IntegrityError",
        "ArtifactError",
        "CorruptPickleError",
        "ArtifactFormatError",
        "EnvironmentMismatchError",
        "GoldenMismatchError",
        "NoReferenceProfileError",
    },
    "UnsafeArtifactError": {
        "BundleLayoutError",
        "CorruptPickleError",
        "UntrustedTypesError",
        "UnsafePickleError",
        "NeverTrustedError",
        "UnsafeModelError",
        "UnsafeStateError",
        "UnprovenTypeError",
        "SandboxBlockedError",
        "SandboxCrashError",
        "SandboxResourceError",
    },
    "InputError": {
        "SchemaError",
        "SampleMismatchError",
        "LabelMapError",
        "NotFittedModelError",
        "InvalidArgumentError",
        "InvalidChoiceError",
        "UnknownFormatError",
        "UnknownModelError",
        "BatchInputError",
        "BatchOutputError",
        "RejectedRowError",
    },
    "SignatureError": {"SigningKeyError", "SigningKeyExistsError"},
    "ConversionError": {"UnconvertibleModelError", "ParityError"},
    "RegistryError": {
        "InvalidReferenceError",
        "UnknownReferenceError",
        "BundleRejectedError",
        "VersionInUseError",
        "RegistryIndexError",
        "IndexLostError",
        "RegistryLockedError",
        "RegistryLocationError",
        "ArtifactStoreError",
        "ListingError",
    },
}


def test_the_families_hold_exactly_their_members() -> None:
    import modelkeep.errors as errors

    for family, members in FAMILIES.items():
        base = getattr(errors, family)
        assert family in modelkeep.__all__
        found = {
            name
            for name in errors.__all__
            if name != family
            and isinstance(getattr(errors, name), type)
            and issubclass(getattr(errors, name), base)
        }
        assert found == members, family


def test_the_leaves_are_still_reachable_at_the_top_level() -> None:
    import modelkeep.errors as errors

    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, (Exception, Warning)):
            assert getattr(modelkeep, name) is value, name
    try:
        modelkeep.NoSuchError  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no attribute 'NoSuchError'" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_every_error_derives_from_modelkeep_error_and_a_builtin() -> None:
    import modelkeep.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, Exception):
            if issubclass(cls, Warning):
                assert issubclass(cls, errors.ModelkeepWarning)
                continue
            assert issubclass(cls, errors.ModelkeepError), name
            if cls is not errors.ModelkeepError and name not in FAMILIES:
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
