"""The vqig tests run tiny models: one intra-op thread is faster than two on the shared 2-core machine."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _tiny_models(single_thread: None) -> None:
    """Every test here runs tiny models: one thread (the shared ``single_thread`` fixture)."""


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)
