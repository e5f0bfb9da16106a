"""Fixtures shared by every test area."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO.parent / "shared" / "data" / "speech"


@pytest.fixture(scope="session")
def shared_speech() -> Path:
    """The real recorded speech beside the checkout; tests skip when it is absent."""
    if not SHARED_SPEECH.is_dir():
        pytest.skip(f"shared speech data not found at {SHARED_SPEECH}")
    return SHARED_SPEECH


def pytest_configure(config) -> None:
    """Under pytest-xdist (2 workers on 2 cores) each worker and the processes it starts use one
    intra-op thread: two processes spinning two OpenMP threads each on two cores run many times slower."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
