"""atomic_write: the target appears only complete; a failing writer leaves no target change and no temp."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.fsutil import atomic_write, save_npy_atomic


class _Boom(Exception):
    pass


@pytest.mark.parametrize("fsync", [True, False])
def test_success_writes_target_and_no_temp(tmp_path: Path, fsync: bool) -> None:
    target = tmp_path / "out.txt"
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert not target.exists()  # nothing visible until the rename
        tmp.write_text("hello")

    assert atomic_write(target, write, fsync=fsync) == target
    assert target.read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    (tmp,) = seen
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.") and tmp.name.endswith(".partial.txt")


@pytest.mark.parametrize("exc", [_Boom, KeyboardInterrupt])
def test_failure_leaves_no_target_and_no_temp(tmp_path: Path, exc: type[BaseException]) -> None:
    target = tmp_path / "out.npy"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise exc

    with pytest.raises(exc):
        atomic_write(target, write)
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_target(tmp_path: Path) -> None:
    target = save_npy_atomic(tmp_path / "a.npy", np.arange(3))

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"torn")
        raise _Boom

    with pytest.raises(_Boom):
        atomic_write(target, write, fsync=False)
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
