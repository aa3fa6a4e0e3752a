"""Shared fixtures for the sluice Python interop tests.

Environment:
  SLUICE_BIN               path to the built sluice binary (tests skip if unset)
  SLUICE_TEST_S3_ENDPOINT  S3-compatible endpoint, e.g. a local moto_server
                           (S3 tests skip if unset); AWS_* credentials come from
                           the environment (tests/run.sh exports them).
"""
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
S3_REGION = os.environ.get("AWS_REGION", "us-east-1")
S3_KEY = os.environ.get("AWS_ACCESS_KEY_ID", "test")
S3_SECRET = os.environ.get("AWS_SECRET_ACCESS_KEY", "test")


@pytest.fixture(scope="session")
def sluice_bin() -> str:
    path = os.environ.get("SLUICE_BIN")
    if not path:
        pytest.skip("SLUICE_BIN is not set (build sluice and point SLUICE_BIN at it; tests/run.sh does)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"SLUICE_BIN={path} is not an executable file")
    return path


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    url = os.environ.get("SLUICE_TEST_S3_ENDPOINT")
    if not url:
        pytest.skip("SLUICE_TEST_S3_ENDPOINT is not set (tests/run.sh starts moto_server and sets it)")
    return url


def s3_env(endpoint: str) -> dict:
    """Environment for a sluice process talking to the test S3 endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": S3_REGION,
        "AWS_ALLOW_HTTP": "true",
    }


def s3_storage_options(endpoint: str) -> dict:
    """storage_options for deltalake-python against the test S3 endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": S3_REGION,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


@pytest.fixture
def s3_bucket(s3_client) -> str:
    """A fresh, uniquely named, empty bucket."""
    name = f"sluice-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def copy_project(dst: Path) -> Path:
    """Copy the repo's example project (sluice.toml, catalog/, sql/) to dst."""
    dst.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "sluice.toml", dst / "sluice.toml")
    shutil.copytree(REPO_ROOT / "catalog", dst / "catalog",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if (REPO_ROOT / "sql").is_dir():
        shutil.copytree(REPO_ROOT / "sql", dst / "sql")
    return dst


@pytest.fixture
def project_dir(tmp_path) -> Path:
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def run_sluice(sluice_bin):
    """run_sluice(*args, env=None, check=True) -> CompletedProcess (text mode).

    `env` entries are added to (not replacing) the current environment.
    With check=True a non-zero exit fails the test and shows stdout/stderr.
    """

    def run(*args, env=None, check=True):
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        cmd = [sluice_bin, *map(str, args)]
        proc = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            pytest.fail(
                f"sluice exited {proc.returncode}: {' '.join(cmd)}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    return run


def parse_json_output(proc) -> object:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        pytest.fail(f"sluice output is not JSON ({e}):\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
