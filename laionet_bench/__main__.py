"""``python -m laionet_bench`` = the ``laionet-bench`` command."""

from .cli import main

raise SystemExit(main())
