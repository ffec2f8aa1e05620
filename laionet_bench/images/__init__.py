"""Images of LAIONet rows: fetching URLs into webdataset shards, the manifest of what loaded, reading back."""
