"""Every error and warning modelkeep raises.

Each error derives from :class:`ModelkeepError` and from the closest builtin, so callers can
catch either. Errors carry their facts as attributes; the message is built from them in
``__init__`` in one shape: what went wrong, what was expected, what came, what to do.

Errors come in families a caller can catch whole; each leaf also derives from the closest
builtin. The families and ``ModelkeepError``/``ModelkeepWarning`` are exported at the top
level; the leaves live here (and are still reachable as ``modelkeep.<Name>``).

Hierarchy::

    ModelkeepError(Exception)                   exit_code 1 (2: misuse) for the command line
    ├── BundleError                             the bundle on disk
    │   ├── ManifestError(ValueError)           the manifest cannot be read or is invalid
    │   │   └── UnsupportedFormatVersionError   written by a newer/unknown modelkeep
    │   ├── BundleExistsError(FileExistsError)  save() target exists and overwrite=False
    │   ├── BundleWriteError(OSError)           save() cannot create the bundle at the path
    │   ├── BundleNotFoundError(FileNotFoundError)  no bundle at the path given
    │   ├── BundleLayoutError(ValueError)       a symlink or special file inside a bundle (also
    │   │                                       an UnsafeArtifactError)
    │   ├── IntegrityError(ValueError)          an artifact's size or SHA-256 changed
    │   ├── ArtifactError(ValueError)           an artifact cannot be deserialized
    │   │   ├── CorruptPickleError              a pickle stream truncated, malformed or too big
    │   │   │                                   (also an UnsafeArtifactError)
    │   │   └── ArtifactFormatError             an artifact's content is not its recorded format
    │   ├── EnvironmentMismatchError(RuntimeError)  env="strict" and versions differ
    │   ├── GoldenMismatchError(ValueError)     the loaded model disagrees with its golden samples
    │   └── NoReferenceProfileError(ValueError)  saved before reference profiles (monitor; exit 2)
    ├── UnsafeArtifactError                     refused as unsafe; nothing of it ran
    │   ├── UntrustedTypesError(TypeError)      the artifact references types nobody trusted
    │   ├── UnsafePickleError(ValueError)       a pickle stream does what no saved model does
    │   ├── NeverTrustedError(ValueError)       trusted= names something never trustable
    │   ├── UnsafeModelError(ValueError)        a deserialized tree is malformed
    │   │   └── SandboxCrashError               the sandboxed worker crashed or misbehaved
    │   ├── UnsafeStateError(ValueError)        an object's state is not one a fit makes
    │   ├── UnprovenTypeError(TypeError)        an allowed class whose state has no proof
    │   ├── SandboxBlockedError(PermissionError)  loading tried what the sandbox forbids
    │   └── SandboxResourceError(RuntimeError)  the sandboxed worker hit a limit (memory ...)
    ├── InputError                              the caller's input; the bundle is fine
    │   ├── SchemaError(ValueError)             prediction input does not fit the schema
    │   │   └── RejectedRowError                a batch row refused with on_error="fail"
    │   ├── SampleMismatchError(ValueError)     save()'s sample disagrees with the model
    │   ├── LabelMapError(ValueError)           labels= keys are not the model's classes
    │   ├── NotFittedModelError(ValueError)     save() was given an unfitted estimator
    │   ├── InvalidArgumentError(ValueError)    an argument of the wrong type or value (exit 2)
    │   ├── InvalidChoiceError(ValueError)      an option outside its allowed values (exit 2)
    │   │   ├── UnknownFormatError              a format name modelkeep does not know
    │   │   └── UnknownModelError               a model the server does not serve (HTTP 404)
    │   ├── BatchInputError(ValueError)         a batch input that cannot be scored as a whole
    │   └── BatchOutputError(OSError)           a batch output that cannot be written
    ├── SignatureError(ValueError)              model.sig missing, by another key, or files differ
    │   ├── SigningKeyError                     a key file that cannot sign or verify
    │   └── SigningKeyExistsError(FileExistsError)  keygen() would overwrite a key file
    ├── ConversionError(ValueError)             a model cannot be written faithfully in a format
    │   ├── UnconvertibleModelError             a step has no converter (ONNX)
    │   └── ParityError                         the converted model disagrees with the original
    ├── MissingDependencyError(ImportError)     an optional extra is not installed
    ├── SandboxUnavailableError(RuntimeError)   the kernel refuses a sandbox mechanism
    └── RegistryError                           the registry
        ├── InvalidReferenceError(ValueError)   a reference, name or alias is malformed
        ├── UnknownReferenceError(LookupError)  no such name, version or alias
        ├── BundleRejectedError(ValueError)     register() was given a bundle failing verification
        ├── VersionInUseError(RuntimeError)     delete() of a version an alias points to
        ├── RegistryIndexError(RuntimeError)    the index cannot be read or written
        │   └── IndexLostError                  the index is missing or unreadable, bundles remain
        ├── RegistryLockedError(TimeoutError)   another process held the registry lock too long
        ├── RegistryLocationError(RuntimeError) the registry's folder is a file, or read-only
        ├── ArtifactStoreError(OSError)         the object store cannot be read or written
        └── ListingError(ValueError)            a bundle listing in the object store is invalid

    ModelkeepWarning(UserWarning)
    ├── EnvironmentMismatchWarning              env="warn" and versions differ
    ├── SchemaWarning                           input accepted but unusual (unseen category ...)
    ├── ParityWarning                           loading an artifact forced past its parity check
    └── ArtifactSkippedWarning                  save() left out one of several formats

``RegistryIndexError`` is the index error ``RegistryError`` was before it became the family.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "ArtifactError",
    "ArtifactFormatError",
    "ArtifactSkippedWarning",
    "ArtifactStoreError",
    "BatchInputError",
    "BatchOutputError",
    "BundleError",
    "BundleExistsError",
    "BundleLayoutError",
    "BundleNotFoundError",
    "BundleRejectedError",
    "BundleWriteError",
    "ConversionError",
    "CorruptPickleError",
    "EnvironmentDifference",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "GoldenMismatchError",
    "IndexLostError",
    "InputError",
    "InputProblem",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidChoiceError",
    "InvalidReferenceError",
    "LabelMapError",
    "ListingError",
    "ManifestError",
    "MissingDependencyError",
    "ModelkeepError",
    "ModelkeepWarning",
    "NeverTrustedError",
    "NoReferenceProfileError",
    "NotFittedModelError",
    "ParityError",
    "ParityWarning",
    "RegistryError",
    "RegistryIndexError",
    "RegistryLocationError",
    "RegistryLockedError",
    "RejectedRowError",
    "SampleMismatchError",
    "SandboxBlockedError",
    "SandboxCrashError",
    "SandboxResourceError",
    "SandboxUnavailableError",
    "SchemaError",
    "SchemaWarning",
    "SignatureError",
    "SigningKeyError",
    "SigningKeyExistsError",
    "UnconvertibleModelError",
    "UnknownFormatError",
    "UnknownModelError",
    "UnknownReferenceError",
    "UnprovenTypeError",
    "UnsafeArtifactError",
    "UnsafeModelError",
    "UnsafePickleError",
    "UnsafeStateError",
    "UnsupportedFormatVersionError",
    "UntrustedTypesError",
    "VersionInUseError",
]

_MAX_LISTED = 5
# Untrusted type names are what a user copies into trusted=[...]: show more of them.
_MAX_TYPES = 20


def listing(
    items: Iterable[object],
    *,
    limit: int = _MAX_LISTED,
    quote: bool = True,
    sort: bool = False,
    separator: str = ", ",
) -> str:
    """The one way a message lists things: ``'a', 'b', 'c' and 3 more``.

    ``quote`` shows each item as ``repr(str(item))``; ``sort`` sorts and drops duplicates
    (for names; leave rows and problems in their order); at most ``limit`` are shown.
    """
    texts = [repr(str(item)) if quote else str(item) for item in items]
    if sort:
        texts = sorted(set(texts))
    shown = separator.join(texts[:limit])
    if len(texts) > limit:
        joiner = "; and" if separator.strip() == ";" else " and"
        shown += f"{joiner} {len(texts) - limit} more"
    return shown


def format_names(names: Iterable[object], limit: int = _MAX_LISTED) -> str:
    """Sorted, quoted, capped list of names: ``'a', 'b', ... and 3 more``."""
    return listing(names, limit=limit, sort=True)


class ModelkeepError(Exception):
    """Base class of every error modelkeep raises.

    ``exit_code`` is the command line's exit status for it: 1 (an error), or 2 for misuse
    (an argument that is not one of its choices or not of the expected form).
    """

    exit_code: ClassVar[int] = 1


class BundleError(ModelkeepError):
    """Family: the bundle on disk (missing, exists, damaged, changed, or disagreeing with
    what it records). Catch it to handle any problem with a bundle's files."""


class UnsafeArtifactError(ModelkeepError):
    """Family: an artifact refused as unsafe (untrusted names, an unsafe or corrupt pickle
    stream, a state no fit makes, a class without a proof). Nothing of it was run."""


class InputError(ModelkeepError):
    """Family: a caller's input (prediction rows, a sample, labels, an argument) that does
    not fit what was expected. Fix the call; the bundle is fine."""


class RegistryError(ModelkeepError):
    """Family: the registry (a reference, a registration, its index, lock or folder)."""


class ManifestError(BundleError, ValueError):
    """The bundle's manifest is missing, unreadable or invalid."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Manifest {self.path!r}: {self.problem}. The bundle is damaged or was not "
            "written by modelkeep; save the model again or restore the bundle from a copy."
        )


class UnsupportedFormatVersionError(ManifestError):
    """The manifest declares a format version this modelkeep cannot read."""

    def __init__(self, path: str, found: object, supported: Sequence[int]) -> None:
        self.found = found
        self.supported = tuple(supported)
        super().__init__(path, f"unsupported format_version {found!r}")

    def _message(self) -> str:
        return (
            f"Manifest {self.path!r}: format_version expected one of "
            f"{', '.join(map(str, self.supported))}, got {self.found!r}. The bundle was "
            "written by a different modelkeep release; upgrade modelkeep to read it."
        )


class BundleExistsError(BundleError, FileExistsError):
    """``save()`` refuses to replace an existing path without ``overwrite=True``."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"Cannot save to {path!r}: it already exists. Pass overwrite=True to replace it "
            "atomically, or choose another path."
        )


class BundleWriteError(BundleError, OSError):
    """``save()`` cannot create the bundle directory at the path it was given."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"Cannot save to {path!r}: {problem}. {hint}")


class BundleNotFoundError(BundleError, FileNotFoundError):
    """There is no bundle at the given path."""

    def __init__(self, path: str, detail: str = "no such directory") -> None:
        self.path = path
        super().__init__(
            f"No modelkeep bundle at {path!r}: {detail}. Expected a directory holding "
            "modelkeep.json, as written by modelkeep.save()."
        )


class BundleLayoutError(BundleError, UnsafeArtifactError, ValueError):
    """A bundle holds something other than regular files and directories (a symlink ...).

    ``entry`` is its path relative to the bundle, ``kind`` what it is (``"a symbolic
    link"``, ``"a FIFO"`` ...). A link could make a reader read, hash, sign or copy a file
    outside the bundle, so every reader refuses it before reading anything.
    """

    def __init__(self, bundle: str, entry: str, kind: str) -> None:
        self.bundle = bundle
        self.entry = entry
        self.kind = kind
        super().__init__(
            f"Bundle {bundle!r}: expected only regular files and directories, got {entry!r}, "
            f"{kind}. A bundle never holds links or special files (a link could point outside "
            "it); replace it with a copy of what it stands for or remove it, or get an intact "
            "copy of the bundle."
        )


class IntegrityError(BundleError, ValueError):
    """An artifact's bytes differ from what the manifest recorded."""

    def __init__(self, artifact: str, field: str, expected: object, got: object) -> None:
        self.artifact = artifact
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(
            f"Artifact {artifact!r}: {field} expected {expected}, got {got}. The file "
            "changed after it was saved; restore it or save the model again."
        )


_SIGNATURE_ADVICE = {
    "missing": "Sign it with `modelkeep sign`, or get a signed copy from its publisher.",
    "wrong_key": "Check that the public key is the publisher's; if it is, do not use this bundle.",
    "malformed": "Get a copy signed with `modelkeep sign` or `model_signing sign key` from its "
    "publisher.",
    "mismatch": "The bundle changed after it was signed: do not use it, get a fresh copy from "
    "its publisher (or, if you changed it yourself, sign it again).",
    "unsignable": "A bundle holds only regular files; remove the others and sign again.",
}


class SignatureError(ModelkeepError, ValueError):
    """A bundle's signature (``model.sig``) is missing, wrong or does not match its files;
    also the family of the signing-key errors.

    ``kind`` says which, for callers that map errors to codes: ``"missing"`` (no
    signature), ``"wrong_key"`` (not made by the key given), ``"malformed"`` (not a
    signature modelkeep can read), ``"mismatch"`` (a file changed, was added or removed
    after signing, or the signature leaves out the manifest or an artifact),
    ``"unsignable"`` (``sign`` met something it cannot sign, e.g. a symlink), ``"key"``
    (:class:`SigningKeyError`) and ``"key_exists"`` (:class:`SigningKeyExistsError`).
    ``bundle`` is the path the problem is about: the bundle, or the key file.
    """

    def __init__(self, bundle: str, reason: str, *, kind: str) -> None:
        self.bundle = bundle
        self.reason = reason
        self.kind = kind
        super().__init__(self._message())

    def _message(self) -> str:
        advice = _SIGNATURE_ADVICE.get(self.kind, "")
        return f"Signature of bundle {self.bundle!r}: {self.reason}. {advice}".rstrip()


class SigningKeyError(SignatureError):
    """A key file that cannot be used to sign or verify (missing, not PEM, unsupported curve)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(path, problem, kind="key")

    def _message(self) -> str:
        return (
            f"Key file {self.path!r}: {self.problem}. Use an unencrypted EC P-256, P-384 or "
            "P-521 key in PEM format, as `modelkeep keygen` writes: the private key to sign, "
            "the .pub file to verify."
        )


class SigningKeyExistsError(SignatureError, FileExistsError):
    """``keygen()`` refuses to overwrite an existing file."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(path, "it already exists", kind="key_exists")

    def _message(self) -> str:
        return (
            f"Cannot write key file {self.path!r}: it already exists. keygen never overwrites "
            "a key; choose another path, or move the old key away first."
        )


class ArtifactError(BundleError, ValueError):
    """An artifact whose hash matched but which its format cannot read."""

    def __init__(self, artifact: str, format: str, cause: BaseException | None = None) -> None:
        self.artifact = artifact
        self.format = format
        self.cause = cause
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Artifact {self.artifact!r}: expected a readable {self.format} file, got an error "
            f"while reading it: {type(self.cause).__name__}: {self.cause}. The file was "
            "written by an incompatible tool or crafted; save the model again."
        )


class CorruptPickleError(ArtifactError, UnsafeArtifactError):
    """A pickle or joblib stream that cannot be read: truncated, malformed, or beyond a limit.

    ``offset`` is the byte (in the decompressed stream for a compressed joblib file) where
    reading stopped; ``untrusted`` the names it referenced before that point that are not
    trusted, if any.
    """

    def __init__(
        self,
        artifact: str,
        format: str,
        problem: str,
        *,
        offset: int | None = None,
        untrusted: Iterable[str] = (),
    ) -> None:
        self.problem = problem
        self.offset = offset
        self.untrusted = tuple(sorted(set(untrusted)))
        super().__init__(artifact, format)

    def _message(self) -> str:
        where = "" if self.offset is None else f"byte {self.offset}: "
        also = (
            f" Before that point it references untrusted name(s): {format_names(self.untrusted)}."
            if self.untrusted
            else ""
        )
        return (
            f"Artifact {self.artifact!r}: {where}{self.problem}. Expected a complete, "
            f"well-formed {self.format} stream; the file is truncated, corrupt or crafted, and "
            f"modelkeep did not load it.{also} Restore the file from a copy or save the model "
            "again."
        )


class ArtifactFormatError(ArtifactError):
    """An artifact whose bytes are not in the format its manifest records.

    ``format`` is the recorded format, ``found`` what the content is (``"skops"``,
    ``"onnx"`` or ``"pickle"``). Checked before deserializing, so no loader ever reads a
    file of another format than its own.
    """

    def __init__(self, artifact: str, format: str, found: str) -> None:
        self.found = found
        super().__init__(artifact, format)

    def _message(self) -> str:
        return (
            f"Artifact {self.artifact!r}: expected {self.format} content, as the manifest "
            f"records, got {self.found} content. The manifest misdescribes the file (it was "
            "crafted or mislabelled) and modelkeep did not load it; save the model again or "
            "get an intact copy of the bundle."
        )


@dataclass(frozen=True)
class EnvironmentDifference:
    """One package (or the Python version) recorded at save time vs installed now."""

    name: str
    recorded: str | None
    installed: str | None

    def __str__(self) -> str:
        return (
            f"{self.name}: recorded {self.recorded or 'absent'}, "
            f"installed {self.installed or 'absent'}"
        )


def _describe_differences(differences: Sequence[EnvironmentDifference]) -> str:
    return "; ".join(str(d) for d in differences)


class EnvironmentMismatchError(BundleError, RuntimeError):
    """``env="strict"`` and the environment differs from the recorded one."""

    def __init__(self, differences: Sequence[EnvironmentDifference]) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "Environment differs from the one the model was saved in: "
            f"{_describe_differences(self.differences)}. Install the recorded versions "
            "(the manifest's environment.requirements), or load with env='warn'."
        )


class UntrustedTypesError(UnsafeArtifactError, TypeError):
    """The artifact references types that are neither trusted by default nor passed in."""

    def __init__(self, artifact: str, types: Iterable[str]) -> None:
        self.artifact = artifact
        self.types = tuple(sorted(set(types)))
        listed = listing(self.types, limit=_MAX_TYPES, quote=False)
        every = " (all of them: `modelkeep scan`, or this error's .types)"
        super().__init__(
            f"Artifact {artifact!r} references {len(self.types)} untrusted type(s): {listed}. "
            "modelkeep did not load it. If you know where this file came from and trust "
            "these exact types, pass them as trusted=[...]"
            f"{every if len(self.types) > _MAX_TYPES else ''}."
        )


class UnsafePickleError(UnsafeArtifactError, ValueError):
    """A well-formed pickle stream that does something no saved model does.

    ``problems`` lists each construct, with its byte offset: a BUILD that would change a
    class or function for the whole process, a call of a value computed while loading, names
    computed at load time, data after STOP, a frame overrun, a persistent id ...
    """

    def __init__(self, artifact: str, problems: Sequence[str]) -> None:
        self.artifact = artifact
        self.problems = tuple(problems)
        shown = listing(self.problems, quote=False, separator="; ")
        super().__init__(
            f"Artifact {artifact!r}: expected only what a saved model's pickle does, got "
            f"{len(self.problems)} unsafe construct(s): {shown}. The file was crafted or "
            "damaged; modelkeep did not load it. Do not use it; save the model again from "
            "its source."
        )


class NeverTrustedError(UnsafeArtifactError, ValueError):
    """``trusted=`` names something modelkeep never trusts (it imports, evaluates, opens
    files, spawns processes, reaches the network or fetches attributes by name)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names)))
        super().__init__(
            f"trusted: expected names of classes and functions that only build data, got "
            f"{format_names(self.names)}, which can never be trusted: such a name lets a file "
            "import, evaluate, open files, spawn processes, reach the network or fetch "
            "attributes by name, so loading it could run any code. Remove it from trusted=; "
            "no saved model needs it."
        )


class UnsafeModelError(UnsafeArtifactError, ValueError):
    """A deserialized tree has node arrays that would make ``predict`` read out of bounds."""

    def __init__(self, estimator_path: str, node: int, reason: str) -> None:
        self.estimator_path = estimator_path
        self.node = node
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Refusing {self.estimator_path}: node {self.node}: {self.reason}. A well-formed "
            "tree never has this; the file was crafted or corrupted. Do not use it; save the "
            "model again from its source."
        )


class UnsafeStateError(UnsafeArtifactError, ValueError):
    """A deserialized object's state is not one that fitting could have produced, and the
    library would trust it (an index out of range, a method name, a stored callable ...)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"Refusing {path}: {reason}. A fitted model never has this; the file was crafted "
            "or corrupted, and nothing in it was run. Do not use it; save the model again "
            "from its source."
        )


class UnprovenTypeError(UnsafeArtifactError, TypeError):
    """The artifact holds instances of allowed classes whose state modelkeep has no proof for.

    An allowed class may be *constructed* safely, but its library trusts the state a file
    gives it; modelkeep admits an instance in-process only when it can prove that state.
    """

    def __init__(self, path: str, types: Iterable[str]) -> None:
        self.path = path
        self.types = tuple(sorted(set(types)))
        super().__init__(
            f"Refusing {path}: modelkeep has no state proof for {format_names(self.types)}, "
            "so it cannot check what the file set before the library uses it. If you know "
            "where this file came from, pass these exact names as trusted=[...] to load "
            "them unproven."
        )


class SandboxCrashError(UnsafeModelError):
    """The sandboxed worker died (a signal, an exit) or broke its protocol while loading or
    serving a model (``isolate=True``); the caller keeps running.

    ``source`` is the bundle or file, ``during`` what the worker was doing (``"load"``,
    ``"predict"`` ...), ``reason`` what happened, ``signal`` the signal that ended it (or
    None). The next call starts a fresh worker (``model.restart()`` does it at once).
    """

    def __init__(self, source: str, during: str, reason: str, signal: int | None = None) -> None:
        self.source = source
        self.during = during
        self.signal = signal
        super().__init__(source, -1, reason)

    def _message(self) -> str:
        return (
            f"Refusing {self.source!r}: the sandboxed worker failed during {self.during}: "
            f"{self.reason}. Expected a model that loads and predicts without crashing; the "
            "file is crafted, corrupt or needs more than the worker's limits. Nothing outside "
            "the sandbox was affected; do not use the file, or raise the limits only if you "
            "trust it."
        )


class SandboxBlockedError(UnsafeArtifactError, PermissionError):
    """Loading in the sandbox tried what the sandbox forbids (run a program, open a socket,
    write outside its scratch folder, load a library ...); each was blocked.

    ``attempts`` lists them as the worker saw them (``"os.system('touch /x'): blocked"``).
    """

    def __init__(self, source: str, attempts: Sequence[str]) -> None:
        self.source = source
        self.attempts = tuple(attempts)
        shown = listing(self.attempts, quote=False, separator="; ")
        super().__init__(
            f"Refusing {source!r}: expected a model whose loading only builds data, got "
            f"{len(self.attempts)} blocked attempt(s): {shown}. The sandbox stopped each one "
            "and nothing left it; the file is hostile: do not use it."
        )


class SandboxResourceError(UnsafeArtifactError, RuntimeError):
    """The sandboxed worker hit one of its limits and was stopped (``isolate=True``).

    ``limit`` names it (``"memory"``, ``"cpu_seconds"``, ``"timeout"``, ``"open_files"``,
    ``"file_size"``, ``"message_size"``), ``value`` its setting, ``during`` what the worker
    was doing.
    """

    def __init__(self, source: str, during: str, limit: str, value: object) -> None:
        self.source = source
        self.during = during
        self.limit = limit
        self.value = value
        super().__init__(
            f"Refusing {source!r}: the sandboxed worker exceeded its {limit} limit ({value}) "
            f"during {during} and was stopped. Expected a model within the limits; if you "
            f"trust this file and it needs more, pass a larger {limit} in limits=Limits(...)."
        )


class GoldenMismatchError(BundleError, ValueError):
    """The loaded model does not reproduce the outputs recorded at save time."""

    def __init__(
        self,
        output: str,
        rows: Sequence[int],
        largest_difference: float | None,
        n_rows: int,
        atol: float | None = None,
    ) -> None:
        self.output = output
        self.rows = tuple(rows)
        self.largest_difference = largest_difference
        self.n_rows = n_rows
        shown = listing(self.rows, quote=False)
        detail = f"{len(self.rows)} of {n_rows} golden rows differ (rows {shown})"
        if largest_difference is not None:
            detail += f"; largest difference {largest_difference:.3g}"
            if atol is not None:
                detail += f", tolerance {atol:.3g}"
        super().__init__(
            f"Golden samples: {output} does not match what the model gave at save time: "
            f"{detail}. The artifact is not the model that was saved, or this environment "
            "computes differently; compare environments with `modelkeep verify`."
        )


class NotFittedModelError(InputError, ValueError):
    """``save()`` was given an estimator that has not been fitted."""

    def __init__(self, model_type: str) -> None:
        self.model_type = model_type
        super().__init__(
            f"Cannot save {model_type}: it is not fitted. Call fit() before modelkeep.save()."
        )


class SampleMismatchError(InputError, ValueError):
    """``save()``'s sample does not match the model's inputs."""

    def __init__(
        self,
        problem: str,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
    ) -> None:
        self.missing = tuple(sorted(missing))
        self.unexpected = tuple(sorted(unexpected))
        parts = [problem]
        if self.missing:
            parts.append(
                f"columns the model was fitted on but missing from sample: "
                f"{format_names(self.missing)}"
            )
        if self.unexpected:
            parts.append(
                f"columns in sample the model was not fitted on: {format_names(self.unexpected)}"
            )
        super().__init__(
            "; ".join(parts) + ". Pass as sample= the data the model was fitted on "
            "(or rows of it), with the same columns."
        )


class LabelMapError(InputError, ValueError):
    """``labels=`` does not cover exactly the model's classes."""

    def __init__(self, classes: Sequence[object], keys: Sequence[object]) -> None:
        self.classes = tuple(classes)
        self.keys = tuple(keys)
        missing = [c for c in classes if c not in keys]
        extra = [k for k in keys if k not in classes]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(map(repr, missing))}")
        if extra:
            detail.append(f"not classes of the model {', '.join(map(repr, extra))}")
        super().__init__(
            f"labels: keys expected exactly the model's classes "
            f"[{', '.join(map(repr, classes))}], got [{', '.join(map(repr, keys))}] "
            f"({'; '.join(detail)}). Give one business label per class."
        )


@dataclass(frozen=True)
class InputProblem:
    """One problem with prediction input, as data (what :attr:`SchemaError.problems` holds).

    ``row`` is the first row concerned and ``column`` the column (None when the problem
    is not about one); ``expected`` and ``received`` describe the two sides as text (None
    when the problem is about the input's shape); ``message`` reads on its own; ``kind`` is
    the rule, as :attr:`SchemaError.kind`. ``to_dict()`` is JSON-safe.
    """

    row: int | None
    column: str | None
    expected: str | None
    received: str | None
    message: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "expected": self.expected,
            "received": self.received,
            "message": self.message,
            "kind": self.kind,
        }


class SchemaError(InputError, ValueError):
    """Prediction input that does not fit the model's feature schema.

    ``problems`` holds the same facts as :class:`InputProblem` records (one per missing or
    extra column; otherwise one), so that a service or a batch job can report them
    without parsing the message.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
        kind: str = "invalid",
        problems: Sequence[InputProblem] = (),
    ) -> None:
        self.column = column
        self.row = row
        self.value = value
        self.kind = kind
        self.problems = tuple(problems) or (InputProblem(row, column, None, None, message, kind),)
        super().__init__(message)


class InvalidArgumentError(InputError, ValueError):
    """An argument of the wrong type or value (``parameter`` names it)."""

    exit_code: ClassVar[int] = 2

    def __init__(self, parameter: str, expected: str, got: str, hint: str = "") -> None:
        self.parameter = parameter
        self.expected = expected
        self.got = got
        self.hint = hint
        message = f"{parameter}: expected {expected}, got {got}."
        super().__init__(f"{message} {hint}" if hint else message)


class InvalidChoiceError(InputError, ValueError):
    """An option given a value outside the ones it accepts."""

    exit_code: ClassVar[int] = 2

    def __init__(self, name: str, known: Iterable[str], context: str) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        self.context = context
        super().__init__(
            f"{context}: expected one of {', '.join(map(repr, self.known))}, got {name!r}."
        )


class UnknownFormatError(InvalidChoiceError):
    """A format name that is not registered."""

    def __init__(self, name: str, known: Iterable[str], context: str = "format") -> None:
        super().__init__(name, known, context)


class MissingDependencyError(ModelkeepError, ImportError):
    """An optional dependency is needed for a feature and is not installed."""

    def __init__(self, feature: str, packages: str, extra: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs {packages}: pip install 'modelkeep[{extra}]'")


class SandboxUnavailableError(ModelkeepError, RuntimeError):
    """``isolate=True`` on a machine that refuses one of the sandbox's mechanisms.

    ``mechanism`` names it (``"landlock"``, ``"seccomp"``, ``"rlimits"``, ``"no_new_privs"``,
    ``"capabilities"``, ``"worker"``); ``reason`` says what the kernel answered. Nothing of
    the model was read: an isolated model never runs with less confinement.
    """

    def __init__(self, mechanism: str, reason: str) -> None:
        self.mechanism = mechanism
        self.reason = reason
        super().__init__(
            f"Cannot isolate the model: expected this machine to support {mechanism}, got "
            f"{reason}. modelkeep never runs an isolated model with less confinement; "
            "`modelkeep doctor` lists what this machine supports. Load it elsewhere, or "
            "without isolate=True only if you trust the file."
        )


class ConversionError(ModelkeepError, ValueError):
    """A model that cannot be written faithfully in a format (``format`` names it)."""

    format: str


class UnconvertibleModelError(ConversionError):
    """A step of the model has no converter to the format (ONNX): nothing was written.

    ``step`` is the step's path in the model (``"preprocess/numeric/log"``, ``""`` for the
    model itself), ``step_type`` its class, ``reason`` why it cannot be converted.
    """

    def __init__(self, format: str, step: str, step_type: str, reason: str) -> None:
        self.format = format
        self.step = step
        self.step_type = step_type
        self.reason = reason
        where = f"step {step!r} ({step_type})" if step else f"the model ({step_type})"
        super().__init__(
            f"Cannot convert to {format}: {where}: expected a step with a converter to "
            f"{format}, got {reason}. Replace the step with a convertible one, or save without "
            f"{format!r} in formats."
        )


class ParityError(ConversionError):
    """The converted model disagrees with the original beyond the parity thresholds.

    ``report`` is the parity report (a :class:`modelkeep.onnx.ParityReport`); the message
    shows it and the worst rows. Nothing was written.
    """

    def __init__(self, format: str, report: Any, rendered: str) -> None:
        self.format = format
        self.report = report
        super().__init__(
            f"The {format} conversion failed its parity check against the original model, "
            f"so it was not written.\n{rendered}\nIf these differences are acceptable, "
            "loosen the thresholds (parity=ParityThresholds(...)) or pass force=True to "
            "write the artifact marked as failed."
        )


_REFERENCE_FORMS = (
    "NAME (its latest version), NAME:VERSION or NAME@ALIAS, e.g. 'churn', 'churn:3', "
    "'churn@production'"
)


class InvalidReferenceError(RegistryError, ValueError):
    """A registry reference, model name or alias name that does not parse.

    ``kind`` is ``"reference"``, ``"name"`` or ``"alias"``: what was being parsed.
    """

    def __init__(
        self, text: str, problem: str, *, kind: str = "reference", expected: str | None = None
    ) -> None:
        self.text = text
        self.problem = problem
        self.kind = kind
        if expected is None:
            expected = {
                "name": "a name of letters, digits, '.', '_' and '-', starting with a letter "
                "or digit, at most 128 characters, e.g. 'churn'",
                "alias": "an alias of letters, digits, '.', '_' and '-', starting with a "
                "letter, at most 64 characters, e.g. 'production'",
            }.get(kind, _REFERENCE_FORMS)
        super().__init__(
            f"{kind.capitalize()} {text!r}: {problem}. Expected {expected}; correct it and "
            "try again."
        )


def _first(items: Sequence[str], limit: int = _MAX_LISTED) -> str:
    return listing(items, limit=limit, quote=False)


def _quoted(items: Sequence[str]) -> str:
    return _first([repr(item) for item in items])


class UnknownReferenceError(RegistryError, LookupError):
    """A well-formed reference to a name, version or alias the registry does not hold.

    ``kind`` is ``"name"``, ``"version"``, ``"alias"`` or ``"schema version"``; ``known``
    lists what the registry does hold at that level (names, version numbers, aliases or
    feature-schema versions).
    """

    def __init__(
        self, reference: str, *, kind: str, name: str, registry: str, known: Sequence[str]
    ) -> None:
        self.reference = reference
        self.kind = kind
        self.name = name
        self.registry = registry
        self.known = tuple(known)
        where = f"in the registry at {registry!r}"
        if kind == "name":
            what = f"no model named {name!r} {where}"
            held = f"it holds {_quoted(self.known)}" if self.known else "it holds no model"
            todo = "List models with `modelkeep registry list`, or register the bundle first."
        elif kind == "version":
            target = reference.partition(":")[2]
            what = f"no version {target} of {name!r} {where}"
            held = f"its versions are {_first(self.known)}" if self.known else "it has none"
            todo = f"List them with `modelkeep registry list {name}`."
        elif kind == "schema version":
            target = reference.partition("?schema=")[2]
            what = f"no version of {name!r} with feature-schema version {target} {where}"
            held = f"its schema versions are {_first(self.known)}" if self.known else "it has none"
            todo = f"List them with `modelkeep registry list {name}`."
        else:
            target = reference.partition("@")[2]
            what = f"no alias {target!r} on {name!r} {where}"
            held = f"its aliases are {_quoted(self.known)}" if self.known else "it has none"
            todo = f"Set it with `modelkeep registry alias set {name} {target} VERSION`."
        super().__init__(f"Reference {reference!r}: {what}; {held}. {todo}")


class BundleRejectedError(RegistryError, ValueError):
    """``Registry.register()`` was given a bundle that fails verification.

    ``cause`` is the error the verification raised (an IntegrityError, GoldenMismatchError,
    ManifestError ...); it is also chained as ``__cause__``.
    """

    def __init__(self, path: str, cause: BaseException) -> None:
        self.path = path
        self.cause = cause
        super().__init__(
            f"Cannot register {path!r}: expected a bundle that passes every load check, got "
            f"{type(cause).__name__}: {cause} Nothing was added to the registry; repair or "
            "save the bundle again, then register it."
        )


class VersionInUseError(RegistryError, RuntimeError):
    """``Registry.delete()`` of a version that aliases still point to."""

    def __init__(self, reference: str, aliases: Sequence[str]) -> None:
        self.reference = reference
        self.aliases = tuple(sorted(aliases))
        super().__init__(
            f"Cannot delete {reference!r}: expected a version no alias points to, got "
            f"alias(es) {format_names(self.aliases)}. Move or remove them first "
            "(`modelkeep registry alias set` / `alias rm`), then delete."
        )


class RegistryIndexError(RegistryError, RuntimeError):
    """The registry's index could not be read or written (a database error)."""

    cause: BaseException | None

    def __init__(self, registry: str, operation: str, cause: BaseException | None) -> None:
        self.registry = registry
        self.operation = operation
        self.cause = cause
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"Registry at {self.registry!r}: {self.operation} failed: "
            f"{type(self.cause).__name__}: {self.cause}. Nothing was changed by this "
            "operation. If another process holds the index locked, retry; otherwise the "
            "index may be damaged: run `modelkeep registry check`, or restore registry.db "
            "from a backup."
        )


class IndexLostError(RegistryIndexError):
    """The index is missing, empty or unreadable while the store still holds bundles.

    ``state`` says what was found instead of an index; ``bundles`` counts the registration
    records (and record-less folders) the store holds. ``cause`` is the database error, if
    any. Read as empty, the registry would hide those versions and gc() would delete them.
    ``on_server``: the index is a database server's (a team registry), named by its URL
    without the password; its tables are what is missing, not ``registry.db``.
    """

    def __init__(
        self,
        registry: str,
        state: str,
        bundles: int,
        cause: BaseException | None = None,
        *,
        on_server: bool = False,
    ) -> None:
        self.state = state
        self.bundles = bundles
        self.on_server = on_server
        super().__init__(registry, "opening the index", cause)

    def _message(self) -> str:
        if self.on_server:
            return (
                f"Registry at {self.registry!r}: expected an index (the registry's tables in "
                f"that database) of the {self.bundles} bundle(s) its artifact store holds, got "
                f"{self.state}. Nothing was changed: read as empty, the registry would hide "
                "them and gc would delete them. Recreate the index from the store with "
                "`modelkeep registry rebuild`, or restore the database from a backup."
            )
        return (
            f"Registry at {self.registry!r}: expected an index (registry.db) of the "
            f"{self.bundles} bundle(s) its store holds, got {self.state}. Nothing was changed: "
            "read as empty, the registry would hide them and gc would delete them. Recreate "
            "the index from the store with `modelkeep registry rebuild`, or restore "
            "registry.db from a backup."
        )


class RegistryLockedError(RegistryError, TimeoutError):
    """Another process held the registry's lock longer than ``waited`` seconds.

    ``holders`` lists the processes the lock file records as holding it (``"pid 123
    (register)"``); empty when none is recorded.
    """

    def __init__(
        self, registry: str, operation: str, lock: str, holders: Sequence[str], waited: float
    ) -> None:
        self.registry = registry
        self.operation = operation
        self.cause = None
        self.lock = lock
        self.holders = tuple(holders)
        self.waited = waited
        held = f"held by {', '.join(self.holders)}" if self.holders else "held by another process"
        super().__init__(
            f"Registry at {registry!r}: {operation} waited {waited:g} s for the lock {lock!r}, "
            f"{held}; expected it free. Nothing was changed. If that process is stopped "
            "(resume it with `kill -CONT PID`) or hung, end it and retry; a registration "
            "killed mid-way leaves only debris for `modelkeep registry gc`."
        )


class RegistryLocationError(RegistryError, RuntimeError):
    """The registry's folder cannot be used for this operation: ``path`` is a file, or
    cannot be written. ``problem`` says which; ``cause`` is the OS error, if any."""

    def __init__(
        self,
        registry: str,
        operation: str,
        path: str,
        problem: str,
        todo: str,
        cause: BaseException | None = None,
    ) -> None:
        self.registry = registry
        self.operation = operation
        self.cause = cause
        self.path = path
        self.problem = problem
        super().__init__(
            f"Registry at {registry!r}: {operation} needs {path!r} to be {problem}. "
            f"Nothing was changed. {todo}"
        )


# ---- the floors: batch scoring, monitoring, serving; the team registry's stores


class BatchInputError(InputError, ValueError):
    """An input that cannot be scored as a whole: missing, an empty glob, an unknown
    extension, a column the model needs that the file lacks, an unreadable file.

    ``path`` names the input (a file, a directory or a glob), ``problem`` what is wrong.
    """

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"Input {path!r}: {problem}.{' ' + hint if hint else ''}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem, self.hint))


class BatchOutputError(InputError, OSError):
    """An output that cannot be written: it exists (without ``overwrite``), its folder is
    missing or not writable, or it names one of the inputs."""

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"Output {path!r}: {problem}.{' ' + hint if hint else ''}")

    def __str__(self) -> str:  # OSError's own __str__ would show errno fields
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem, self.hint))


class RejectedRowError(SchemaError):
    """A row that fails the model's schema with ``on_error="fail"``.

    ``path`` is the input file (or ``"partition N"`` for :func:`~modelkeep.batch.predict_dask`),
    ``line`` the row's 1-based number among the data rows of that file (the header is not
    counted), ``problem`` the :class:`~modelkeep.errors.InputProblem` validation found.
    """

    def __init__(self, path: str, line: int, problem: InputProblem) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        message = (
            f"Input {path!r}: data row {line} (1-based, header not counted): "
            f"{problem.message.rstrip('.')}. Fix the row, or pass on_error='skip' "
            "(--on-error skip) to write rejected rows with their reasons beside the output "
            "and score the rest."
        )
        super().__init__(
            message,
            column=problem.column,
            row=line,
            kind=problem.kind,
            problems=(problem,),
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.problem))


class NoReferenceProfileError(BundleError, ValueError):
    """A bundle saved without a reference profile (before modelkeep recorded one).

    Exit status 2: the reference given cannot be monitored against as it is.
    """

    exit_code: ClassVar[int] = 2

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(
            f"Bundle {source!r}: expected a reference profile to measure drift against, got "
            "no reference profile (the bundle was saved before modelkeep recorded one). Add "
            f"one from the training data: modelkeep profile {source} --sample TRAIN.parquet"
        )


class UnknownModelError(InvalidChoiceError):
    """A request named a model (or a version of it) the server does not serve (HTTP 404)."""

    def __init__(self, name: str, known: list[str], context: str = "model") -> None:
        super().__init__(name, known, context)


class ArtifactStoreError(RegistryError, OSError):
    """The artifact store (object storage) could not be read or written.

    ``store`` is its URL, ``operation`` what was being done, ``cause`` the file system's
    own error (or None when a check failed).
    """

    def __init__(
        self, store: str, operation: str, detail: str, cause: BaseException | None = None
    ) -> None:
        self.store = store
        self.operation = operation
        self.detail = detail
        self.cause = cause
        super().__init__(
            f"Artifact store {store!r}: {operation} failed: {detail}. Nothing was made "
            "visible by this operation. Check that the store is reachable (endpoint URL, "
            "credentials, bucket) and retry."
        )


class ListingError(RegistryError, ValueError):
    """A bundle listing in the artifact store is not one this modelkeep can use."""

    def __init__(self, store: str, folder: str, detail: str) -> None:
        self.store, self.folder, self.detail = store, folder, detail
        super().__init__(
            f"Artifact store {store!r}: the listing of bundle {folder} is invalid: {detail}. "
            "The store was changed by something other than modelkeep; run "
            "`modelkeep registry check`."
        )


class ModelkeepWarning(UserWarning):
    """Base class of every warning modelkeep emits."""


class EnvironmentMismatchWarning(ModelkeepWarning):
    """The environment differs from the recorded one (``env="warn"``)."""

    def __init__(self, differences: Sequence[EnvironmentDifference]) -> None:
        self.differences = tuple(differences)
        super().__init__(
            "Environment differs from the one the model was saved in: "
            f"{_describe_differences(self.differences)}. Golden samples are replayed to "
            "check predictions; load with env='strict' to refuse instead."
        )


class SchemaWarning(ModelkeepWarning):
    """Input that was accepted but is unusual for the model (``strict=False``).

    ``kind`` is one of ``"extra_columns"``, ``"unseen_categories"``, ``"out_of_range"``,
    ``"unexpected_missing"``; ``column`` names the column (None for extra columns) and
    ``values`` holds the offending values or names. ``problems`` holds the same facts as
    :class:`InputProblem` records, as :attr:`SchemaError.problems` does for an error (the
    HTTP service and batch scoring report them without parsing the message).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        column: str | None,
        values: Sequence[Any],
        problems: Sequence[InputProblem] = (),
    ):
        self.kind = kind
        self.column = column
        self.values = tuple(values)
        self.problems = tuple(problems)
        super().__init__(message)


class ParityWarning(ModelkeepWarning):
    """Loading an artifact that failed its parity check and was written with ``force=True``.

    Emitted on every load of it; ``report`` is its parity report as recorded.
    """

    def __init__(self, artifact: str, summary: str, report: Any = None) -> None:
        self.artifact = artifact
        self.summary = summary
        self.report = report
        super().__init__(
            f"Artifact {artifact!r} failed its parity check against the original model and "
            f"was written anyway (force=True): {summary}. Its predictions may differ from the "
            "original's; convert again, or load another format."
        )


class ArtifactSkippedWarning(ModelkeepWarning):
    """``save()`` left one of several requested formats out of the bundle.

    ``format`` names it and ``error`` is the :class:`ConversionError` that kept it out;
    escalate with ``warnings.simplefilter("error", ArtifactSkippedWarning)``.
    """

    def __init__(self, format: str, error: ModelkeepError, saved: Sequence[str]) -> None:
        self.format = format
        self.error = error
        self.saved = tuple(saved)
        super().__init__(
            f"Format {format!r} was left out of the bundle, which holds "
            f"{', '.join(map(repr, self.saved))}: {error}"
        )
