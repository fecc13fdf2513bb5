"""Mutated model files: every one loads or raises a ModelkeepError, nothing else.

A seeded fuzz run in a child process (so that an interpreter crash fails this test instead
of ending the test run): byte-level mutations of pickle and joblib files (flips, inserts,
deletions, truncations), and value-level mutations that keep the stream well formed
(integers and characters of the arguments changed), which reach numpy's and scikit-learn's
state setters. It found numpy crashing the interpreter on malformed dtype and object-array
states; those are refused now (see modelkeep.safety.numpy_state).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_FUZZ = textwrap.dedent(
    """
    import collections, io, json, pickle, pickletools, random, struct, sys, warnings
    import joblib, numpy as np, pandas as pd, scipy.sparse
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.preprocessing import StandardScaler
    from modelkeep.errors import ModelkeepError
    from modelkeep.safety.loader import load_pickle_bytes

    warnings.simplefilter("ignore")
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    value = {
        "rf": RandomForestClassifier(3, max_depth=3, random_state=0).fit(X, y),
        "hgb": HistGradientBoostingClassifier(max_iter=3).fit(X, y),
        "scaler": StandardScaler().fit(X),
        "objects": np.array(["a", None], dtype=object),
        "sparse": scipy.sparse.csr_matrix(np.eye(3)),
        "frame": pd.DataFrame({"a": [1.0, 2.0]}),
        "structured": np.zeros(2, dtype=[("a", "<i8"), ("b", "<f4")]),
        "scalar": np.float32(3.0),
    }
    seeds = [pickle.dumps(value, protocol=p) for p in (0, 2, 4, 5)]
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    seeds.append(buffer.getvalue())
    widths = {"BININT1": "<B", "BININT2": "<H", "BININT": "<i"}
    sites = []
    for index, data in enumerate(seeds[:4]):
        for op, arg, pos in pickletools.genops(data):
            if op.name in widths or op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
                sites.append((index, pos, op.name))
    rng = random.Random(int(sys.argv[1]))
    special = [0, 1, 2, 3, 8, 16, 63, 64, 127, 128, 255, 256, 65535, -1, 2**31 - 1, -2**31]
    outcomes, failures = collections.Counter(), []
    for attempt in range(int(sys.argv[2])):
        if attempt % 2:
            index, pos, name = rng.choice(sites)
            data = bytearray(seeds[index])
            if name in widths:
                fmt = widths[name]
                size = struct.calcsize(fmt)
                try:
                    data[pos + 1 : pos + 1 + size] = struct.pack(fmt, rng.choice(special))
                except struct.error:
                    data[pos + 1 : pos + 1 + size] = bytes(rng.randrange(256) for _ in range(size))
            else:
                head = 2 if name.startswith("SHORT") else 5
                length = int.from_bytes(data[pos + 1 : pos + head], "little")
                if length:
                    data[pos + head + rng.randrange(length)] = rng.choice(b"abfiuOV<>|=08._")
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                pos = rng.randrange(len(data))
                kind = rng.random()
                if kind < 0.5:
                    data[pos] = rng.randrange(256)
                elif kind < 0.7:
                    del data[pos : pos + rng.randint(1, 8)]
                elif kind < 0.9:
                    data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
                else:
                    data = data[: max(pos, 2)]
        try:
            # pandas objects have no state proof; trusting the frame lets mutations load.
            load_pickle_bytes(
                bytes(data), artifact="fuzzed", trusted=["pandas.DataFrame"]
            )
            outcomes["loaded"] += 1
        except ModelkeepError as exc:
            outcomes[type(exc).__name__] += 1
        except BaseException as exc:
            failures.append(f"attempt {attempt}: {type(exc).__name__}: {exc}")
    print(json.dumps({"outcomes": outcomes, "failures": failures[:5]}))
    """
)


def test_mutated_files_load_or_raise_a_modelkeep_error() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FUZZ, "20261126", "1200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    assert found["failures"] == []
    outcomes = found["outcomes"]
    assert sum(outcomes.values()) == 1200
    # Every kind of refusal is exercised, and some mutations still load.
    assert {"loaded", "CorruptPickleError", "UnsafePickleError", "UntrustedTypesError"} <= set(
        outcomes
    )
