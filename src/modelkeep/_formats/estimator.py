"""The serving half shared by every format whose artifact is the scikit-learn estimator
itself (skops, pickle, joblib): each implements only ``dump`` and ``load``."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from modelkeep._claims import check_claims
from modelkeep._environment import compare_environment
from modelkeep.errors import InvalidChoiceError

if TYPE_CHECKING:
    from modelkeep._dump import DumpContext
    from modelkeep.errors import EnvironmentDifference
    from modelkeep.manifest import Artifact, Manifest

__all__ = ["EstimatorServing"]


class EstimatorServing(ABC):
    """A format whose artifact deserializes to the estimator: served by scikit-learn.

    ``load`` deserializes from an open binary stream, trusting only what the format trusts
    by default plus ``trusted``; it raises :class:`modelkeep.errors.UntrustedTypesError`
    instead of constructing anything else, and proves the whole state before returning.
    """

    name: str
    extension: str
    serves = "estimator"
    converted = False

    @abstractmethod
    def dump(
        self, model: object, path: Path, *, context: DumpContext | None = None
    ) -> dict[str, Any]: ...

    @abstractmethod
    def load(self, stream: BinaryIO, *, artifact: str, trusted: Sequence[str]) -> object: ...

    def environment_differences(
        self, manifest: Manifest, artifact: Artifact
    ) -> list[EnvironmentDifference]:
        """The whole recorded training environment (Python, scikit-learn ...) vs this one."""
        return compare_environment(manifest.environment)

    def open(
        self,
        data: bytes,
        *,
        manifest: Manifest,
        artifact: Artifact,
        trusted: Sequence[str],
        options: Mapping[str, Any],
    ) -> Any:
        if options.get("session") is not None:
            raise InvalidChoiceError(
                "session_options=...",
                ["None for a non-ONNX artifact"],
                f"session_options (format {artifact.format!r})",
            )
        return self.load(io.BytesIO(data), artifact=artifact.path, trusted=trusted)

    def claims(self, opened: Any, manifest: Manifest, *, source: str) -> list[str]:
        return check_claims(opened, manifest, source)

    def replay_golden(
        self, opened: Any, manifest: Manifest, artifact: Artifact, *, atol: float
    ) -> int:
        # pandas and the schema come with it: imported here, never on the ONNX load path.
        from modelkeep._golden import replay_golden

        return replay_golden(opened, manifest.golden, manifest.features, atol=atol)

    def notices(self, artifact: Artifact) -> list[Warning]:
        return []

    def describe(self, opened: Any, artifact: Artifact) -> str:
        from modelkeep.safety.state import proven_trees
        from modelkeep.safety.trees import validate_trees

        # Counted when the load proved them; walked again only for a model proven elsewhere.
        trees = proven_trees(opened)
        if trees is None:
            trees = validate_trees(opened)
        counted = f", {trees} tree(s) validated" if trees else ""
        return f"{artifact.path} loaded ({artifact.format}){counted}"
