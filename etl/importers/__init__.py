"""Importers of departments' files: readers, archive safety, encodings, CRS, geometry repair,
staging and an all-or-nothing merge, and the report of what happened.

Use :func:`import_file` (own connection, commits) or :func:`run_import` (the caller's
connection and transaction). See :mod:`etl.importers.loader` for the pipeline.
"""
from etl.importers.archive import Limits, check_archive, safe_extract
from etl.importers.errors import ArchiveRejected, CrsRequired, ImportRejected
from etl.importers.loader import (ALL_TARGETS, ImportOptions, file_digest, get_report, import_file,
                                  recent_reports, run_import)
from etl.importers.readers import list_layers
from etl.importers.report import ImportReport, Issue

__all__ = [
    "ALL_TARGETS", "ArchiveRejected", "CrsRequired", "ImportOptions", "ImportRejected", "ImportReport", "Issue",
    "Limits", "check_archive", "file_digest", "get_report", "import_file", "list_layers", "recent_reports",
    "run_import", "safe_extract",
]
