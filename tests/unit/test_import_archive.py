"""Archive safety: every check made on the central directory, before anything is extracted."""
from __future__ import annotations

import time
import tracemalloc
import zipfile

import pytest

from etl.importers import ArchiveRejected, Limits, check_archive, safe_extract, samples


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/passwd", "C:\\Windows\\evil.txt",
                                  "..\\evil.txt", "c:/evil.txt"])
def test_unsafe_paths_are_refused(tmp_path, name):
    z = samples.zip_with_entry(tmp_path / "x.zip", name)
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(z, tmp_path / "out")
    assert err.value.code == "archive_unsafe_path"
    assert not (tmp_path / "evil.txt").exists()


def test_symlinks_are_refused(tmp_path):
    z = samples.zip_with_entry(tmp_path / "x.zip", "link", b"/etc/passwd", symlink=True)
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert err.value.code == "archive_symlink"


def test_nested_archives_are_refused(tmp_path):
    z = samples.zip_with_entry(tmp_path / "x.zip", "inner.zip", b"PK\x03\x04")
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert err.value.code == "archive_nested"


def test_zip_bomb_is_refused_without_decompressing(tmp_path):
    bomb = samples.zip_bomb(tmp_path / "bomb.zip", 128 << 20)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(bomb, tmp_path / "out")
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.value.code == "archive_ratio"
    assert elapsed < 0.5 and peak < (4 << 20)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_limits_on_count_and_sizes(tmp_path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(20):
            zf.writestr(f"f{i}.csv", "a,b\n" * 100)
    assert len(check_archive(z)) == 20
    for limits, code in ((Limits(max_entries=10), "archive_too_many_entries"),
                         (Limits(max_entry_bytes=100), "archive_entry_too_large"),
                         (Limits(max_total_bytes=1000), "archive_too_large")):
        with pytest.raises(ArchiveRejected) as err:
            check_archive(z, limits)
        assert err.value.code == code


def test_corrupt_archive(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ArchiveRejected) as err:
        check_archive(bad)
    assert err.value.code == "bad_archive"


def test_safe_extract_writes_only_inside(tmp_path):
    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("dir/a.csv", "x")
        zf.writestr("__MACOSX/._a.csv", "junk")
    out = tmp_path / "out"
    out.mkdir()
    files = safe_extract(z, out)
    assert [p.relative_to(out.resolve()).as_posix() for p in files] == ["dir/a.csv"]


def test_messages_are_bilingual(tmp_path):
    z = samples.zip_with_entry(tmp_path / "x.zip", "../evil.txt")
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert "拒绝" in err.value.message_zh and "refused" in err.value.message_en
    assert "../evil.txt" in err.value.message("en")
