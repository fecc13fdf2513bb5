"""What a batch run did: :class:`Summary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Summary"]


@dataclass(frozen=True)
class Summary:
    """The result of :func:`~modelkeep.batch.predict_file`.

    Attributes:
        output: where the scores were written (a file; a directory of Parquet parts for
            the Dask engine).
        rejected_path: the rejected-rows file (``on_error="skip"``), else None.
        files: input files read.
        rows: data rows read.
        scored: rows written to ``output``.
        rejected: rows set aside (``on_error="skip"``).
        label_counts: predicted label -> rows (classifiers; empty for a regressor).
        seconds: wall time, loading the model included.
        model_name, model_version, manifest_sha256, format: the model that scored.
        warnings: ``"<kind> in '<column>'"`` -> chunks in which the model's validation
            warned (unseen categories, values outside the training range ...).
        engine: ``"local"`` or ``"dask"``.
        load_seconds: of ``seconds``, the time spent loading and verifying the model.
    """

    output: Path
    rejected_path: Path | None
    files: int
    rows: int
    scored: int
    rejected: int
    label_counts: dict[str, int]
    seconds: float
    model_name: str
    model_version: str
    manifest_sha256: str
    format: str
    warnings: dict[str, int] = field(default_factory=dict)
    engine: str = "local"
    load_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as the command prints it, one fact per line."""
        lines = [
            f"Scored {self.scored:,} of {self.rows:,} rows from {self.files} file(s) in "
            f"{self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s; the model loaded and "
            f"verified in {self.load_seconds:.1f} s) with "
            f"{self.model_name} version {self.model_version} ({self.format}, manifest sha256 "
            f"{self.manifest_sha256[:12]}...), engine {self.engine}.",
            f"Output: {self.output}",
        ]
        if self.rejected_path is not None:
            lines.append(f"Rejected: {self.rejected:,} row(s), written to {self.rejected_path}")
        if self.label_counts:
            counts = ", ".join(f"{label}: {n:,}" for label, n in self.label_counts.items())
            lines.append(f"Labels: {counts}")
        for what, chunks in self.warnings.items():
            lines.append(f"Warning: {what} (in {chunks} chunk(s))")
        return lines
