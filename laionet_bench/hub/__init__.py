"""The Hugging Face Hub: indexes and results down (``download``), folders up (``upload``)."""

from .download import HubDownload as HubDownload
from .download import download_dataset_file as download_dataset_file
from .download import download_index_file as download_index_file
from .download import list_dataset_files as list_dataset_files
from .download import resolve_repo_id as resolve_repo_id
from .download import snapshot as snapshot

__all__ = ["HubDownload", "download_dataset_file", "download_index_file", "list_dataset_files", "resolve_repo_id", "snapshot"]
