"""The skops load path imports nothing a file names before the audit has passed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import modelkeep
from modelkeep import UntrustedTypesError

MODULE = "modelkeep_test_planted"

BENIGN = """
import numpy as np

class Scale:
    def fit(self, X, y=None):
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return X * 2
"""

HOSTILE = (
    """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
"""
    + BENIGN
)


def test_untrusted_module_is_never_imported(tmp_path: Path) -> None:
    source = tmp_path / f"{MODULE}.py"
    source.write_text(BENIGN)
    sys.path.insert(0, str(tmp_path))
    try:
        planted = __import__(MODULE)
        frame = pd.DataFrame({"a": np.linspace(-1, 1, 40), "b": np.linspace(1, -1, 40)})
        target = (frame["a"] > 0).astype(int)
        model = make_pipeline(planted.Scale(), LogisticRegression()).fit(frame, target)
        modelkeep.save(model, tmp_path / "bundle", sample=frame, name="m")

        # The module now runs code when imported; a load must refuse before importing it.
        del sys.modules[MODULE]
        marker = tmp_path / "marker"
        source.write_text(HOSTILE.format(marker=str(marker)))
        for cached in (tmp_path / "__pycache__").glob("*"):
            cached.unlink()
        with pytest.raises(
            UntrustedTypesError,
            match=re.escape(f"references 1 untrusted type(s): {MODULE}.Scale."),
        ):
            modelkeep.load(tmp_path / "bundle")
        assert not marker.exists()
        assert MODULE not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(MODULE, None)
