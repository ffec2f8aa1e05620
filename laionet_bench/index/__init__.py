"""The LAIONet index: its schema and validation (``schema``), its variants and loading from the Hub or
parquet (``load``), and the reference import (``official``)."""

from .load import LaionetIndex as LaionetIndex
from .load import Variant as Variant
from .load import get_variant as get_variant
from .load import list_variants as list_variants
from .load import load_index as load_index
from .schema import EXTENSION_PREFIX as EXTENSION_PREFIX
from .schema import INDEX_COLUMNS as INDEX_COLUMNS
from .schema import Column as Column
from .schema import read_index_file as read_index_file
from .schema import validate_index_table as validate_index_table
from .schema import write_index as write_index

__all__ = ["EXTENSION_PREFIX", "INDEX_COLUMNS", "Column", "LaionetIndex", "Variant", "get_variant", "list_variants",
           "load_index", "read_index_file", "validate_index_table", "write_index"]
