"""The pytest plugin's machinery (options, session, report); ``laionet_bench.plugin`` is the thin entry point."""

__all__: list[str] = []
