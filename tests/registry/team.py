"""The team backends under test: PostgreSQL and the S3-compatible server that
``scripts/services.sh start`` runs (``make test`` starts them).

Each test gets its own PostgreSQL schema and its own S3 bucket, so tests never see each
other's versions. When the servers are not running the tests fail (never skip) with a
message naming the script.
"""

from __future__ import annotations

import os
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

from conftest import TEAM_ENVIRONMENT  # type: ignore[import-not-found]

PROJECT = Path(__file__).resolve().parents[2]
ENV_FILE = PROJECT / ".services.env"
AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
NOT_RUNNING = (
    "The team-registry tests need PostgreSQL and an S3-compatible server on 127.0.0.1: "
    "run `scripts/services.sh start` (make test does), then "
    "`set -a; . ./.services.env; set +a` before pytest."
)


def services() -> dict[str, str]:
    """MODELKEEP_REGISTRY_URI, MODELKEEP_ARTIFACTS_URI and the AWS variables."""
    found = dict(TEAM_ENVIRONMENT)
    found.update({k: os.environ[k] for k in AWS if k in os.environ})
    if "MODELKEEP_REGISTRY_URI" not in found and ENV_FILE.is_file():
        for line in ENV_FILE.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                found.setdefault(key.strip(), value.strip())
    missing = [
        k for k in ("MODELKEEP_REGISTRY_URI", "MODELKEEP_ARTIFACTS_URI", *AWS[:3]) if k not in found
    ]
    if missing:
        raise RuntimeError(f"{NOT_RUNNING} (missing: {', '.join(missing)})")
    return found


def fresh_team() -> dict[str, str]:
    """Variables naming a new, empty team registry: its own schema and S3 prefix."""
    found = services()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = found["MODELKEEP_REGISTRY_URI"]
    engine = sa.create_engine(base, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        raise RuntimeError(f"{NOT_RUNNING} ({exc.orig})") from exc
    finally:
        engine.dispose()
    # A bucket of its own, not a prefix of a shared one: moto's server lists a bucket by
    # walking every key in it, so one bucket for the whole suite slows every listing.
    bucket = f"t-{schema[2:]}"
    endpoint = found.get("AWS_ENDPOINT_URL")
    if endpoint:
        request = urllib.request.Request(f"{endpoint.rstrip('/')}/{bucket}", method="PUT")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except OSError as exc:
            raise RuntimeError(f"{NOT_RUNNING} (creating bucket {bucket}: {exc})") from exc
        artifacts = f"s3://{bucket}/registry"
    else:  # a real S3 without an endpoint URL: a prefix of the configured bucket
        artifacts = f"{found['MODELKEEP_ARTIFACTS_URI']}/{schema}"
    return {
        **found,
        "MODELKEEP_REGISTRY_URI": f"{base}?options=-csearch_path%3D{schema}",
        "MODELKEEP_ARTIFACTS_URI": artifacts,
    }
