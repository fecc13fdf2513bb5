"""API keys on predictions (constant-time, hashes allowed), and the admin endpoint."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelkeep.errors import InvalidArgumentError
from modelkeep.serve.auth import bearer_token, load_keys
from serve.conftest import Server, post_json, records

PLAIN = "plain-key-0123456789abcdef"
HASHED = "hashed-key-0123456789abcdef"
ENV_KEY = "env-key-0123456789abcdefgh"
ADMIN = "admin-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    digest = hashlib.sha256(HASHED.encode()).hexdigest()
    keys.write_text(f"# predictions\n{PLAIN}\n\nsha256:{digest}\n")
    server = Server(
        str(bundles["lr"]),
        "--api-key-file",
        str(keys),
        env={"MODELKEEP_API_KEYS": ENV_KEY, "MODELKEEP_ADMIN_TOKEN": ADMIN},
    )
    yield server.start()
    assert server.stop() == 0
    for key in (PLAIN, HASHED, ENV_KEY, ADMIN):
        assert key not in server.output


@pytest.fixture(scope="module")
def body(churn_data: tuple[pd.DataFrame, np.ndarray]) -> dict[str, Any]:
    frame, _ = churn_data
    return {"instances": records(frame.head(2))}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key-0123456789abcdef", f"Basic {PLAIN}", "Bearer", f"Bearer {ADMIN}"],
    ids=["none", "wrong", "basic", "empty", "admin-token-is-no-api-key"],
)
@pytest.mark.parametrize(
    "path", ["/v1/models/churn_lr/predict", "/invocations", "/v2/models/churn_lr/infer"]
)
def test_predictions_need_a_key(
    secured: Server, body: dict[str, Any], header: str | None, path: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with secured.client(**headers) as client:
        response = post_json(client, path, body)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/v1/models").status_code == 401


@pytest.mark.parametrize("key", [PLAIN, HASHED, ENV_KEY], ids=["plain", "sha256", "env"])
def test_each_key_is_accepted(secured: Server, body: dict[str, Any], key: str) -> None:
    with secured.client(Authorization=f"Bearer {key}") as client:
        response = post_json(client, "/v1/models/churn_lr/predict", body)
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 2


def test_probes_metrics_and_docs_need_no_key(secured: Server) -> None:
    with secured.client() as client:
        for path in ("/livez", "/readyz", "/metrics", "/v2/health/ready", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        document = client.get("/openapi.json").json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_admin_reload_needs_the_admin_token(secured: Server) -> None:
    with secured.client(Authorization=f"Bearer {PLAIN}") as client:
        assert client.post("/admin/reload").status_code == 401
    with secured.client(Authorization=f"Bearer {ADMIN}") as client:
        response = client.post("/admin/reload")
        assert response.status_code == 200
        assert response.json() == {"events": []}  # a bundle path: no alias to follow


def test_without_an_admin_token_there_is_no_admin_endpoint(served: Server) -> None:
    with served.client() as client:
        assert client.post("/admin/reload").status_code == 404
        assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]
        # and without keys, predictions need none
        assert client.get("/v1/models").status_code == 200


def test_key_files_are_checked(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("abc\n")
    with pytest.raises(InvalidArgumentError, match=r"line 1: expected API keys of at least 16"):
        load_keys(short, environ={})
    bad = tmp_path / "bad.txt"
    bad.write_text("sha256:xyz\n")
    with pytest.raises(InvalidArgumentError, match=r"line 1: expected sha256: followed by 64"):
        load_keys(bad, environ={})
    ring = load_keys(None, environ={"MODELKEEP_API_KEYS": f"{PLAIN}, {ENV_KEY}"})
    assert len(ring) == 2 and ring.accepts(ENV_KEY) and not ring.accepts(HASHED)
    assert not load_keys(None, environ={})
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Token abc") is None
