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
