"""save() refuses what could never load or serve its own data, and saves of one path queue."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import modelkeep
from modelkeep import BundleWriteError, InvalidArgumentError, SampleMismatchError


def _frame(n: int = 120) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, n),
            "charges": rng.normal(70.0, 20.0, n).round(2),
            "zone": rng.choice(["01", "02", "10"], n),
        }
    )
    return frame, ((frame["tenure"] < 20) | (frame["zone"] == "01")).to_numpy().astype(int)


def _pipeline() -> Pipeline:
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["tenure", "charges"]), ("zone", OneHotEncoder(), ["zone"])]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression())])


@pytest.fixture(scope="module")
def fitted() -> tuple[Pipeline, pd.DataFrame]:
    frame, target = _frame()
    return _pipeline().fit(frame, target), frame


# ------------------------------------------------------------------------- sample kinds


def test_a_numeric_column_sampled_as_text_is_refused(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = fitted
    sample = frame.assign(tenure=frame["tenure"].astype(str))  # as read from a CSV as text
    shown = ", ".join(repr(v) for v in sorted(sample["tenure"].unique())[:5])
    message = (
        "sample column 'tenure': expected the kind of values the model was fitted on, got "
        f"text holding numbers ({shown} and "
    )
    with pytest.raises(SampleMismatchError, match=re.escape(message)) as info:
        modelkeep.save(model, tmp_path / "m", sample=sample, name="m")
    assert str(info.value).endswith(
        "so a bundle saved from this sample would refuse numeric input. Convert the column "
        "first, e.g. sample['tenure'] = pd.to_numeric(sample['tenure']). Pass as sample= the "
        "data the model was fitted on (or rows of it), with the same columns."
    )
    assert not (tmp_path / "m").exists()


def test_text_the_model_uses_as_categories_is_kept_and_the_bundle_takes_its_data(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = fitted  # "zone" holds "01", "02", "10": numbers as text, used as text
    manifest = modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    assert next(f for f in manifest.features if f.name == "zone").dtype == "string"
    loaded = modelkeep.load(tmp_path / "m")
    assert loaded.predict(frame).tolist() == model.predict(frame).tolist()


# ------------------------------------------------------------------------- target path


def test_a_path_under_a_file_is_a_modelkeep_error_naming_the_path(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path
) -> None:
    model, frame = fitted
    (tmp_path / "afile").write_text("not a folder")
    given = str(tmp_path / "afile" / "sub")
    message = (
        f"Cannot save to {given!r}: {str(tmp_path / 'afile')!r} is a file, not a directory. "
        "Choose a path whose parent folders are directories (or can be created)."
    )
    with pytest.raises(BundleWriteError, match=re.escape(message)) as info:
        modelkeep.save(model, given, sample=frame, name="m")
    assert isinstance(info.value, OSError)
    assert info.value.path == given


def test_a_read_only_folder_is_a_modelkeep_error_naming_the_folder(
    fitted: tuple[Pipeline, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, frame = fitted
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: refuse as the kernel would for a user
        real_open = os.open

        def refuse(path: Any, *args: Any, **kwargs: Any) -> int:
            if Path(path).parent == folder:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    else:
        folder.chmod(0o555)
    given = folder / "bundle"
    message = (
        f"Cannot save to {str(given)!r}: no permission to write in {str(folder)!r}. Choose a "
        "folder you can write to, or change its permissions."
    )
    try:
        with pytest.raises(BundleWriteError, match=re.escape(message)):
            modelkeep.save(model, given, sample=frame, name="m")
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


# ------------------------------------------------------------------------- importable code


def _double(x: Any) -> Any:
    return x * 2


def _local_function() -> Any:
    def triple(x: Any) -> Any:
        return x * 3

    return triple


@pytest.mark.parametrize(
    ("func", "name", "why"),
    [
        (lambda x: x, "test_bundle_save.<lambda>", "a lambda, which has no name to import"),
        (
            _local_function(),
            "test_bundle_save._local_function.<locals>.triple",
            "a function defined inside a function, which no import can reach",
        ),
    ],
    ids=["lambda", "local-function"],
)
def test_code_no_other_process_can_import_is_refused(
    tmp_path: Path, func: Any, name: str, why: str
) -> None:
    frame, target = _frame()
    frame = frame[["tenure", "charges"]]
    model = Pipeline([("f", FunctionTransformer(func)), ("model", LogisticRegression())]).fit(
        frame, target
    )
    message = (
        "model: expected classes and functions that another process can import by name, "
        f"got {name!r}, {why}. A bundle refers to code by module and name; define it at the "
        "top level of an importable module (not the script you run, not inside a function), "
        "import it from there, and fit again."
    )
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    assert list(tmp_path.iterdir()) == []


def test_a_named_function_in_a_module_is_fine(tmp_path: Path) -> None:
    frame, target = _frame()
    frame = frame[["tenure", "charges"]]
    model = Pipeline([("f", FunctionTransformer(np.log1p)), ("model", LogisticRegression())]).fit(
        frame, target
    )
    modelkeep.save(model, tmp_path / "m", sample=frame, name="m")
    assert (tmp_path / "m" / "modelkeep.json").is_file()


def test_a_class_defined_in_the_running_script_is_refused(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from sklearn.base import BaseEstimator, TransformerMixin
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        import modelkeep

        class Clip(TransformerMixin, BaseEstimator):
            def fit(self, X, y=None):
                return self
            def transform(self, X):
                return np.clip(X, 0, 100)

        X = pd.DataFrame({{"a": np.arange(40.0), "b": np.arange(40.0) % 7}})
        model = Pipeline([("clip", Clip()), ("m", LogisticRegression())]).fit(X, X.a > 20)
        try:
            modelkeep.save(model, {str(tmp_path / "m")!r}, sample=X, name="m")
        except modelkeep.InvalidArgumentError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == (
        "model: expected classes and functions that another process can import by name, "
        "got '__main__.Clip', a class defined in __main__, which is a different module in "
        "every process. A bundle refers to code by module and name; define it at the top "
        "level of an importable module (not the script you run, not inside a function), "
        "import it from there, and fit again."
    )
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------- concurrent saves

_SAVER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    from sklearn.linear_model import LogisticRegression
    import modelkeep

    path, start = sys.argv[1], float(sys.argv[2])
    X = pd.DataFrame({"a": np.arange(60.0), "b": np.arange(60.0) % 7})
    model = LogisticRegression().fit(X, X.a > 30)
    time.sleep(max(0.0, start - time.time()))
    manifest = modelkeep.save(model, path, sample=X, name="m", overwrite=True)
    print(manifest.version)
    """
)


def test_concurrent_saves_of_one_path_get_distinct_versions(tmp_path: Path) -> None:
    import time

    target = tmp_path / "m"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    start = time.time() + 6.0  # after every process has imported scikit-learn
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(target), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in results]
    versions = sorted(int(out.strip()) for out, _ in results)
    assert versions == [1, 2, 3, 4]  # two first saves with overwrite=True do not race
    manifest = json.loads((target / "modelkeep.json").read_text())
    assert manifest["version"] == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "saver.py"]


# ------------------------------------------------------------------ labels without proba


def test_a_classifier_without_predict_proba_saves_its_labels_alone(
    tmp_path: Path,
) -> None:
    from sklearn.svm import LinearSVC

    frame, target = _frame()
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["tenure", "charges"]), ("zone", OneHotEncoder(), ["zone"])]
    )
    model = Pipeline([("prep", prep), ("svm", LinearSVC())]).fit(frame, target)
    with pytest.warns(modelkeep.ArtifactSkippedWarning) as caught:
        manifest = modelkeep.save(
            model, tmp_path / "m", sample=frame, name="svm", formats=("skops", "onnx")
        )
    # The ONNX conversion is refused with our error, naming the step; skops is saved.
    error = caught[0].message.error  # type: ignore[union-attr]
    assert isinstance(error, modelkeep.UnconvertibleModelError)
    assert (error.step, error.step_type) == ("svm", "sklearn.svm.LinearSVC")
    assert [a.format for a in manifest.artifacts] == ["skops"]
    golden = manifest.golden
    assert golden.probabilities is None
    assert golden.predictions == model.predict(frame.iloc[golden.rows]).tolist()

    loaded = modelkeep.load(tmp_path / "m")  # replays the golden labels
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))
    with pytest.raises(
        InvalidArgumentError,
        match=re.escape(
            "predict_proba: expected a classifier with class probabilities, got LinearSVC, "
            "which has no predict_proba. This model gives labels only; use predict()."
        ),
    ):
        loaded.predict_proba(frame)
