"""Fixtures of the deploy/ tests: a certificate authority, collected static files, a password hasher
the production processes know, and API keys."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from tests.deploy.stack import ROOT, SERVER_NAME, production_env
from tests.deploy.tls import Certificates, certificates_issue
from tests.ticks.factories import UserFactory
from ticks.models import ClientApiKey


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates_issue(tmp_path_factory.mktemp("tls"), SERVER_NAME)


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release step: collectstatic under the production settings (the admin's pages need its manifest)."""
    directory = tmp_path_factory.mktemp("static")
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=production_env(STATIC_ROOT=str(directory)),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    return directory


@pytest.fixture
def production_hasher(settings) -> None:
    """Passwords set here must verify in the production processes, which do not know the tests' MD5."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]


def api_key_issue(user: AbstractBaseUser | None = None) -> str:
    _, key = ClientApiKey.objects.create_key(name="deploy", user=user or UserFactory())
    return key
