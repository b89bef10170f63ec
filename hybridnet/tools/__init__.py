"""Command-line tools: ``python -m hybridnet.tools.im2rec`` (image lists and RecordIO packing)."""
