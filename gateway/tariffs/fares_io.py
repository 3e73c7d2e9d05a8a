"""The file side of GTFS fares: read a feed directory and hand its text to the pure parser.

This module owns the only file reads of the fare engine. It reads the files `parse_feed` knows
(`policies.gtfs.FEED_FILES`, plus the fare files it only reports as unsupported) that exist in
the directory, as UTF-8, leaving BOMs and line ends for the parser, and skips the rest of the
feed (trips.txt and stop_times.txt can be large).
"""

from __future__ import annotations

from pathlib import Path

from policies.gtfs import FEED_FILES, UNSUPPORTED_FILES, FareFeed, FeedError, parse_feed

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A fare file larger than this is refused rather than read into memory."""


def read_feed_files(path: str | Path) -> dict[str, str]:
    """{file name: text} of the fare-relevant files in directory `path`."""
    root = Path(path)
    if not root.is_dir():
        raise FeedError(str(root), None, None, "not a directory")
    files: dict[str, str] = {}
    for name in (*FEED_FILES, *UNSUPPORTED_FILES):
        file = root / name
        if not file.is_file():
            continue
        if file.stat().st_size > MAX_FILE_BYTES:
            raise FeedError(name, None, None, f"larger than {MAX_FILE_BYTES} bytes")
        try:
            # newline="" keeps CRLF as written; the csv layer of the parser handles both.
            with file.open(encoding="utf-8", newline="") as f:
                files[name] = f.read()
        except UnicodeDecodeError as exc:
            raise FeedError(
                name, None, None, f"not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
    return files


def load_feed_dir(path: str | Path) -> FareFeed:
    """Read and parse the feed in directory `path`; `FeedError` if it is invalid."""
    root = Path(path)
    return parse_feed(read_feed_files(root), name=root.resolve().name)
