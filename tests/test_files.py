"""Files written whole: a crash, a full disk or any other error leaves the old file or the new one and no part
file, and a full disk says which file, how much, and what to do."""

import errno

import pytest

from plate_lib.errors import DiskFullError
from plate_lib.files import atomic_write, size_text


def test_atomic_write_on_a_full_disk_names_the_file_and_size_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("old\n")

    def write(tmp):
        tmp.write_bytes(b"x" * 3000)  # some of it reaches the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError) as e:
        atomic_write(path, write, nbytes=2_500_000)
    says = str(e.value)
    assert says.startswith(f"{path}: no space left on the device") and "2.4 MB" in says
    assert "the previous metrics.csv is untouched" in says
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
    with pytest.raises(DiskFullError, match=r"2\.9 KB written when it filled; no new\.csv was written"):
        atomic_write(tmp_path / "new.csv", write)
    with pytest.raises(PermissionError):  # other errors pass through as they are
        atomic_write(tmp_path / "x", lambda tmp: (_ for _ in ()).throw(PermissionError(errno.EACCES, "denied")))


def test_sizes_read_as_people_read_them():
    assert [size_text(n) for n in (0, 512, 3000, 2_500_000, 5 * 1024**3, 3 * 1024**4)] == [
        "0 bytes", "512 bytes", "2.9 KB", "2.4 MB", "5.0 GB", "3072.0 GB"]
