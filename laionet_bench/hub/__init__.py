"""The Hugging Face Hub: indexes and results down (``download``), folders up (``upload``).

Both directions report failures through one translator (``_errors.hub_error``): a one-line,
token-free :class:`~laionet_bench.errors.HubError` that says what to do.
"""

from ._errors import check_repo_id as check_repo_id
from .download import HubDownload as HubDownload
from .download import download_dataset_file as download_dataset_file
from .download import download_index_file as download_index_file
from .download import list_dataset_files as list_dataset_files
from .download import manifest_files as manifest_files
from .download import resolve_repo_id as resolve_repo_id
from .download import snapshot as snapshot
from .upload import IGNORE_PATTERNS as IGNORE_PATTERNS
from .upload import PublishResult as PublishResult
from .upload import dataset_card as dataset_card
from .upload import publish_folder as publish_folder

__all__ = [
    "IGNORE_PATTERNS",
    "HubDownload",
    "PublishResult",
    "check_repo_id",
    "dataset_card",
    "download_dataset_file",
    "download_index_file",
    "list_dataset_files",
    "manifest_files",
    "publish_folder",
    "resolve_repo_id",
    "snapshot",
]
