"""Flow tests run in float64 (like zuko's), seeded, on tiny configs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def float64_seeded():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(dtype)
