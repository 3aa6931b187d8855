"""When root starts the embedded cluster as the postgres user, a folder it cannot enter is named."""
from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from geodata.cluster import ClusterError, LocalCluster
from geodata.config import Settings


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.fixture
def base():
    # Not pytest's tmp_path: for root it lies under a 0700 folder, the very case tested here.
    path = Path(tempfile.mkdtemp(dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0 or not _has_postgres_user(),
                    reason="only root hands the cluster to the postgres user")
def test_a_private_parent_folder_is_named_before_initdb(base):
    private = base / "private"
    private.mkdir(mode=0o700)
    cluster = LocalCluster(Settings(data_dir=private / "project" / ".dvmap", pg_port=54999))
    assert cluster._unreachable_parent() == private
    with pytest.raises(ClusterError) as info:
        cluster.init()
    assert str(private) in str(info.value) and "DVMAP_DATA_DIR" in str(info.value)
    assert not cluster.pgdata.exists()  # stopped before anything was made for initdb
    private.chmod(0o711)
    assert cluster._unreachable_parent() is None
