"""``modelkeep.batch.predict_file``, the local engine: formats in and out, several files,
both error modes, and the errors of a bad input or output."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import modelkeep
from modelkeep.batch import (
    BatchInputError,
    BatchOutputError,
    RejectedRowError,
    Summary,
    predict_file,
)
from modelkeep.errors import InputError, InvalidArgumentError, SchemaError, SchemaWarning

from .conftest import customers

FEATURES = [
    "tenure",
    "monthly_charges",
    "support_complaints",
    "payment_delay_days",
    "contract_type",
    "usage_change",
]


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, dtype={"customer_id": str})
    return pd.read_parquet(path)


def _expected(bundle: Path, frame: pd.DataFrame, format: str) -> tuple[np.ndarray, np.ndarray]:
    model = modelkeep.load(bundle, format=format)
    with warnings.catch_warnings():  # values outside the training range: expected here
        warnings.simplefilter("ignore", SchemaWarning)
        proba = model.predict_proba(frame[FEATURES])
        return np.asarray(model.predict(frame[FEATURES])), np.asarray(proba)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("source", "target", "format"),
    [
        ("in.csv", "out.csv", "skops"),
        ("in.csv", "out.parquet", "onnx"),
        ("in.parquet", "out.csv", "onnx"),
        ("in.parquet", "out.parquet", "skops"),
    ],
    ids=["csv-csv-skops", "csv-parquet-onnx", "parquet-csv-onnx", "parquet-parquet-skops"],
)
def test_scores_every_row_as_the_model_does(
    bundle: Path, tmp_path: Path, source: str, target: str, format: str
) -> None:
    frame = customers(700)
    given = _write(frame, tmp_path / source)
    output = tmp_path / target
    summary = predict_file(
        bundle, given, output, format=format, keep_columns=["customer_id"], chunk_size=128
    )
    assert isinstance(summary, Summary)
    assert (summary.rows, summary.scored, summary.rejected, summary.files) == (700, 700, 0, 1)
    assert summary.rejected_path is None
    assert summary.format == format
    got = _read(output)
    labels, proba = _expected(bundle, frame, format)
    columns = ["customer_id", "prediction", "proba_No Churn", "proba_Churn"]
    meta = ["model_name", "model_version", "manifest_sha256"]
    assert list(got.columns) == (columns + meta if target.endswith(".csv") else columns)
    assert got["customer_id"].tolist() == frame["customer_id"].tolist()
    assert got["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(got[["proba_No Churn", "proba_Churn"]].to_numpy(), proba)
    values, counts = np.unique(labels, return_counts=True)
    assert summary.label_counts == {
        label: int(counts[values == label].sum()) for label in ("No Churn", "Churn")
    }
    digest = __import__("hashlib").sha256((bundle / "modelkeep.json").read_bytes()).hexdigest()
    assert summary.manifest_sha256 == digest
    if target.endswith(".csv"):
        assert set(got["model_name"]) == {"churn"}
        assert set(got["model_version"].astype(str)) == {"1"}
        assert set(got["manifest_sha256"]) == {digest}
    else:
        metadata = pq.read_metadata(output).metadata
        assert metadata[b"modelkeep.model_name"] == b"churn"
        assert metadata[b"modelkeep.model_version"] == b"1"
        assert metadata[b"modelkeep.manifest_sha256"] == digest.encode()
    assert _leftovers(tmp_path) == []


def test_a_directory_is_read_file_by_file_in_name_order(bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    parts = [customers(150, seed=seed) for seed in (3, 4, 5)]
    for number, part in enumerate(parts):
        _write(part, folder / f"day-{number}.parquet")
    (folder / "README.txt").write_text("not data")
    output = tmp_path / "scores.parquet"
    summary = predict_file(bundle, folder, output, keep_columns=["customer_id"], chunk_size=64)
    whole = pd.concat(parts, ignore_index=True)
    got = pd.read_parquet(output)
    assert (summary.files, summary.scored) == (3, 450)
    assert got["customer_id"].tolist() == whole["customer_id"].tolist()
    assert got["prediction"].tolist() == _expected(bundle, whole, "skops")[0].tolist()
    # A glob names the same files.
    again = predict_file(
        bundle,
        str(folder / "day-*.parquet"),
        tmp_path / "again.parquet",
        keep_columns=["customer_id"],
    )
    assert again.files == 3
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again.parquet"), got)


def _with_bad_rows(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A CSV of 300 customers, three of whose rows hold values the schema refuses."""
    frame = customers(300).astype({"tenure": object, "payment_delay_days": object})
    frame.loc[6, "tenure"] = "abc"  # data row 7: not a number
    frame.loc[99, "payment_delay_days"] = "soon"  # data row 100
    frame.loc[250, "tenure"] = 3.5  # data row 251: not a whole number
    path = tmp_path / "customers.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.mark.parametrize("format", ["skops", "onnx"])
def test_fail_mode_names_file_row_and_reason_and_writes_nothing(
    bundle: Path, tmp_path: Path, format: str
) -> None:
    source, _ = _with_bad_rows(tmp_path)
    output = tmp_path / "scores.csv"
    with pytest.raises(RejectedRowError) as caught:
        predict_file(bundle, source, output, format=format, chunk_size=50)
    error = caught.value
    assert isinstance(error, SchemaError) and isinstance(error, InputError)
    assert (error.path, error.line, error.problem.column) == (str(source), 7, "tenure")
    assert str(error) == (
        f"Input {str(source)!r}: data row 7 (1-based, header not counted): column 'tenure': "
        "expected integer, got 'abc' (str). Fix the row, or pass on_error='skip' "
        "(--on-error skip) to write rejected rows with their reasons beside the output and "
        "score the rest."
    )
    assert not output.exists()
    assert not (tmp_path / "scores.rejected.csv").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("format", ["skops", "onnx"])
def test_skip_mode_writes_rejected_rows_with_reasons_and_scores_the_rest(
    bundle: Path, tmp_path: Path, format: str
) -> None:
    source, frame = _with_bad_rows(tmp_path)
    output = tmp_path / "scores.csv"
    summary = predict_file(
        bundle,
        source,
        output,
        format=format,
        on_error="skip",
        keep_columns=["customer_id"],
        chunk_size=50,
    )
    rejected_file = tmp_path / "scores.rejected.csv"
    assert summary.rejected_path == rejected_file
    assert (summary.rows, summary.scored, summary.rejected) == (300, 297, 3)
    rejected = pd.read_csv(rejected_file, keep_default_na=False, dtype=str)
    assert rejected["rejected_row"].tolist() == ["7", "100", "251"]
    assert rejected["rejected_file"].tolist() == [str(source)] * 3
    assert rejected["rejected_column"].tolist() == ["tenure", "payment_delay_days", "tenure"]
    assert rejected["rejected_kind"].tolist() == ["invalid_value"] * 3
    assert rejected["rejected_received"].tolist() == ["'abc' (str)", "'soon' (str)", "3.5 (float)"]
    assert rejected["rejected_expected"].tolist() == ["integer", "float", "integer"]
    assert rejected["rejected_reason"][0] == "column 'tenure': expected integer, got 'abc' (str)"
    assert rejected["customer_id"].tolist() == frame["customer_id"].iloc[[6, 99, 250]].tolist()
    assert rejected["tenure"].tolist() == ["abc", frame["tenure"][99].__str__(), "3.5"]
    good = frame.drop(index=[6, 99, 250]).astype({"tenure": "int64", "payment_delay_days": float})
    got = _read(output)
    assert got["customer_id"].tolist() == good["customer_id"].tolist()
    assert got["prediction"].tolist() == _expected(bundle, good, format)[0].tolist()
    assert sum(summary.label_counts.values()) == 297


def test_skip_mode_rejects_what_the_model_refuses_in_a_typed_parquet_file(
    bundle: Path, tmp_path: Path
) -> None:
    # ONNX takes an integer column the training data had complete as int64, which cannot
    # hold a missing value: validation refuses the row (Parquet keeps the column's type).
    frame = customers(120)
    frame["support_complaints"] = frame["support_complaints"].astype(float)
    frame.loc[[10, 80], "support_complaints"] = np.nan
    source = _write(frame, tmp_path / "in.parquet")
    summary = predict_file(
        bundle, source, tmp_path / "out.parquet", format="onnx", on_error="skip", chunk_size=32
    )
    rejected = pd.read_parquet(tmp_path / "out.rejected.parquet")
    assert rejected["rejected_row"].tolist() == [11, 81]
    assert set(rejected["rejected_column"]) == {"support_complaints"}
    assert summary.scored == 118


def test_a_missing_column_is_refused_in_skip_mode_too(bundle: Path, tmp_path: Path) -> None:
    source = _write(customers(20).drop(columns=["tenure"]), tmp_path / "in.csv")
    with pytest.raises(BatchInputError) as caught:
        predict_file(bundle, source, tmp_path / "out.csv", on_error="skip")
    assert str(caught.value).startswith(
        f"Input {str(source)!r}: is missing 1 of the model's 6 columns: 'tenure'. Every input "
        "file needs every feature"
    )
    assert _leftovers(tmp_path) == [] and not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "out.rejected.csv").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("missing.csv", "Input '{dir}/missing.csv': no such file or directory."),
        ("*.nothing", "Input '{dir}/*.nothing': the pattern matches no file."),
        ("data.json", "Input '{dir}/data.json': expected a .csv, .parquet or .pq file, got the"),
        ("empty", "Input '{dir}/empty': the directory holds no .csv, .parquet or .pq file."),
    ],
    ids=["missing", "empty-glob", "extension", "empty-directory"],
)
def test_bad_inputs_are_clear_errors(
    bundle: Path, tmp_path: Path, given: str, message: str
) -> None:
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchInputError, match="^" + re.escape(message.format(dir=tmp_path))):
        predict_file(bundle, str(tmp_path / given), tmp_path / "out.csv")


def test_an_existing_output_is_refused_unless_overwrite(bundle: Path, tmp_path: Path) -> None:
    source = _write(customers(30), tmp_path / "in.parquet")
    output = tmp_path / "out.csv"
    output.write_text("old")
    with pytest.raises(BatchOutputError) as caught:
        predict_file(bundle, source, output)
    assert str(caught.value) == (
        f"Output {str(output)!r}: it already exists. Pass --overwrite (overwrite=True) to "
        "replace it atomically, or choose another path."
    )
    assert output.read_text() == "old"
    predict_file(bundle, source, output, overwrite=True)
    assert len(pd.read_csv(output)) == 30


def test_output_folder_and_options_are_checked_before_reading(bundle: Path, tmp_path: Path) -> None:
    source = _write(customers(10), tmp_path / "in.csv")
    with pytest.raises(BatchOutputError, match=re.escape("does not exist. Create it first.")):
        predict_file(bundle, source, tmp_path / "nowhere" / "out.csv")
    # A folder nobody may create files in (root included).
    with pytest.raises(BatchOutputError, match=r"is not writable|cannot be written"):
        predict_file(bundle, source, Path("/proc/modelkeep-scores.csv"))
    with pytest.raises(BatchOutputError, match="it is one of the inputs"):
        predict_file(bundle, source, source, overwrite=True)
    with pytest.raises(InvalidArgumentError, match="chunk_size"):
        predict_file(bundle, source, tmp_path / "out.csv", chunk_size=0)
    with pytest.raises(BatchInputError, match="has no column 'nope' to keep"):
        predict_file(bundle, source, tmp_path / "out.csv", keep_columns=["nope"])
    with pytest.raises(InvalidArgumentError, match="keep_columns"):
        predict_file(bundle, source, tmp_path / "out.csv", keep_columns=["prediction"])


def test_no_probabilities_on_request(bundle: Path, tmp_path: Path) -> None:
    source = _write(customers(40), tmp_path / "in.parquet")
    predict_file(bundle, source, tmp_path / "out.parquet", proba=False, format="onnx")
    assert list(pd.read_parquet(tmp_path / "out.parquet").columns) == ["prediction"]


def test_a_registry_reference_scores_with_its_version(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELKEEP_HOME", str(tmp_path / "home"))
    with modelkeep.Registry() as registry:
        version = registry.register(bundle)
        registry.set_alias("churn", "production", version.version)
    source = _write(customers(50), tmp_path / "in.parquet")
    summary = predict_file("churn@production", source, tmp_path / "out.csv", format="onnx")
    assert (summary.model_name, summary.model_version, summary.scored) == ("churn", "1", 50)
    assert summary.manifest_sha256 == version.manifest_sha256
    assert set(pd.read_csv(tmp_path / "out.csv")["manifest_sha256"]) == {version.manifest_sha256}


def test_forest_labels_from_one_pass_match_the_model_s_predict(
    bundle: Path, tmp_path: Path
) -> None:
    # A forest's predict is the argmax of its probabilities: with probabilities requested
    # the batch takes labels from them (one pass); without, it calls predict.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelkeep.batch._scoring import _predicts_argmax

    source = _write(customers(400, seed=11), tmp_path / "in.parquet")
    predict_file(bundle, source, tmp_path / "both.parquet")
    predict_file(bundle, source, tmp_path / "labels.parquet", proba=False)
    both = pd.read_parquet(tmp_path / "both.parquet")
    assert (
        both["prediction"].tolist()
        == pd.read_parquet(tmp_path / "labels.parquet")["prediction"].tolist()
    )
    assert _predicts_argmax(modelkeep.load(bundle).estimator)
    assert not _predicts_argmax(make_pipeline(StandardScaler(), LogisticRegression()))
