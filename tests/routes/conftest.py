"""Fixtures of the in-process route tests (see ``helpers.py`` for what they build).

Every test gets its own service (``svc``): a copy of a database migrated once per session
(``lipspline_platform.db.migrate.upgrade``), its own data dir and broker folders, and keys
for tenants ``default`` and ``other``. Engines are disposed after each test.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lipspline_platform.db.engine import dispose_all
from lipspline_platform.db.migrate import upgrade
from tests.routes.helpers import DB_FILE, Service, Trainer
from tests.support import unhandled_errors


@pytest.fixture(scope="session", autouse=True)
def hermetic_settings() -> Iterator[None]:
    """No ``LIPSPLINE_*`` variable of the calling shell reaches the settings the tests build."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.upper().startswith("LIPSPLINE_")]:
            patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every migration applied, copied (consistently, WAL included) to a plain file."""
    folder = tmp_path_factory.mktemp("migrated")
    upgrade(f"sqlite:///{(folder / 'migrating.sqlite3').resolve()}")
    template = folder / DB_FILE
    source, target = sqlite3.connect(folder / "migrating.sqlite3"), sqlite3.connect(template)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return template


@pytest.fixture(scope="session")
def trainer() -> Trainer:
    return Trainer()


@pytest.fixture(autouse=True)
def no_unhandled_errors() -> Iterator[None]:
    """Never a 500: fail the test if the service logged an unhandled exception while it ran."""
    with unhandled_errors.no_unhandled_errors():
        yield


def _service(data_dir: Path, template_db: Path, trainer: Trainer, **overrides: object) -> Iterator[Service]:
    service = Service(data_dir, template_db, trainer, **overrides)
    try:
        yield service
    finally:
        service.close()
        dispose_all()


@pytest.fixture
def svc(tmp_path: Path, template_db: Path, trainer: Trainer) -> Iterator[Service]:
    """The service with its default limits and a rate limit no test reaches."""
    yield from _service(tmp_path / "data", template_db, trainer)


#: small limits, one per knob (the e2e suite's LIMITS, as settings)
SMALL_LIMITS = {
    "max_upload_bytes": 20_000,
    "max_rows": 300,
    "max_features": 5,
    "max_classes": 3,
    "max_width": 64,
    "max_depth": 3,
    "max_knots": 51,
    "max_parameters": 5000,
    "max_epochs": 100,
    "max_predict_rows": 50,
    "max_certify_rows": 4,
}


@pytest.fixture
def limited(tmp_path: Path, template_db: Path, trainer: Trainer) -> Iterator[Service]:
    """The service with small limits (``SMALL_LIMITS``)."""
    yield from _service(tmp_path / "data", template_db, trainer, **SMALL_LIMITS)


@pytest.fixture
def throttled(tmp_path: Path, template_db: Path, trainer: Trainer) -> Iterator[Service]:
    """The service with a burst of 3 requests per key and a slow refill (one per 10 s)."""
    yield from _service(tmp_path / "data", template_db, trainer, rate_limit_per_s=0.1, rate_limit_burst=3)


@pytest.fixture
def make_service(tmp_path: Path, template_db: Path, trainer: Trainer) -> Iterator[Callable[..., Service]]:
    """Build a service with any settings (``make_service(auth_cache_ttl_s=0)``); all closed after the test."""
    made: list[Service] = []

    def make(**overrides: object) -> Service:
        made.append(Service(tmp_path / f"data-{len(made)}", template_db, trainer, **overrides))
        return made[-1]

    try:
        yield make
    finally:
        for service in made:
            service.close()
        dispose_all()


@pytest.fixture
def seeded(svc: Service) -> dict[str, str]:
    """Tenant ``default``'s seed dataset, a job run through the lifecycle, and its model."""
    return svc.trained_model()
