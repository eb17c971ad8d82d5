"""The one request-trace reader: `fit-traffic`, `simulate` and `tune` read a trace through here.

A trace is a delimited text file with a header and one row per request. What a log export
looks like varies, so the reader adapts instead of refusing:

- the delimiter is read from the header line (comma, tab, semicolon or pipe: whichever it holds
  most of), so a TSV is read as a TSV rather than refused as a missing column;
- the arrival-time column is the one named (`--timestamp-column`, matched exactly, then ignoring
  case), else `TIMESTAMP` in any case, else the only column whose first value is a time; other
  columns are ignored;
- times are ISO 8601 or epoch seconds, milliseconds, microseconds or nanoseconds, detected from
  the first row (each unit's plausible range, years 2000 to 2100, is disjoint from the others'),
  or a named `--timestamp-format` (one of those, or a strptime pattern); times without an offset
  are in `--timezone`;
- rows out of time order are sorted, and the reader says how many were (exports from several
  servers interleave);
- a sampled log (`--sample-rate 0.01`: one request in a hundred kept) stands for `1 / rate` times
  as many requests: every rate read from it is scaled by that weight.

Every refusal is one line naming the file, the row and the column, and the fix.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_COLUMN = "TIMESTAMP"
DEFAULT_TIMEZONE = "UTC"
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
"""The delimiters a header line is searched for, and how the reader names them."""

_EPOCH_MIN_S, _EPOCH_MAX_S = 946_684_800, 4_102_444_800
EPOCH_UNITS = {"epoch-s": 1, "epoch-ms": 10**3, "epoch-us": 10**6, "epoch-ns": 10**9}
TIMESTAMP_FORMATS = ("auto", "iso", *EPOCH_UNITS)
_FORMAT_NAMES = {
    "iso": "ISO 8601",
    "epoch-s": "epoch seconds",
    "epoch-ms": "epoch milliseconds",
    "epoch-us": "epoch microseconds",
    "epoch-ns": "epoch nanoseconds",
}


class TraceError(ValueError):
    """The trace cannot be read; the message is one line naming the file (row, column) and fix."""


@dataclass(frozen=True)
class Trace:
    """Arrival times read from a trace file, sorted, and how they were read."""

    path: Path
    stamps: list[datetime]
    """Every row's arrival time, timezone-aware, in time order."""
    column: str
    timestamp_format: str
    delimiter: str = ","
    sample_rate: float = 1.0
    """The share of requests the log kept; each row stands for `1 / sample_rate` requests."""
    column_note: str = ""
    """How the column was chosen when it was not named exactly (empty: it was)."""
    unsorted_rows: int = 0
    """Rows that came earlier in time than the row before them (sorted here)."""

    @property
    def weight(self) -> float:
        """Requests each row stands for (`1 / sample_rate`)."""
        return 1.0 / self.sample_rate

    @property
    def format_name(self) -> str:
        """The time format as a reader says it (`epoch milliseconds`)."""
        return format_name(self.timestamp_format)

    def notes(self) -> list[str]:
        """How the trace was read, one short clause each: column, format, delimiter, order."""
        read = f"{self.format_name} from column {self.column!r}"
        if self.column_note:
            read += f" ({self.column_note})"
        notes = [read]
        if self.delimiter != ",":
            notes.append(f"{DELIMITERS[self.delimiter]}-separated")
        if self.unsorted_rows:
            notes.append(f"{self.unsorted_rows} row(s) were out of time order and were sorted")
        if self.sample_rate != 1.0:
            notes.append(
                f"a {self.sample_rate:.4g} sample: each row counts as {self.weight:.4g} requests"
            )
        return notes

    def offsets(self) -> list[float]:
        """Seconds from the first request to each request."""
        first = self.stamps[0]
        return [(stamp - first).total_seconds() for stamp in self.stamps]


def format_name(timestamp_format: str) -> str:
    """`epoch-ms` as `epoch milliseconds`; a strptime pattern as `format '%d/%m/%Y'`."""
    return _FORMAT_NAMES.get(timestamp_format, f"format {timestamp_format!r}")


def zone(name: str) -> tzinfo:
    """The IANA timezone `name`, or `TraceError` naming `--timezone` and the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TraceError(
            f"--timezone: {name!r} is not an IANA timezone; use a name such as "
            "'America/New_York' or 'UTC'"
        ) from None


def _epoch_unit(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    for unit, scale in EPOCH_UNITS.items():
        if _EPOCH_MIN_S <= value / scale <= _EPOCH_MAX_S:
            return unit
    return None


def _detect_format(text: str, requested: str) -> str | None:
    """The format `text` is in under `requested` (auto: detect), or None if it is not a time."""
    text = text.strip()
    if requested in EPOCH_UNITS or "%" in requested:
        return requested
    unit = _epoch_unit(text)
    if requested == "auto" and unit is not None:
        return unit
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return None
    return "iso"


def _parser(timestamp_format: str, local: tzinfo) -> Callable[[str], datetime]:
    if timestamp_format in EPOCH_UNITS:
        scale = EPOCH_UNITS[timestamp_format]

        def from_epoch(text: str) -> datetime:
            return datetime.fromtimestamp(float(text) / scale, tz=UTC)

        return from_epoch

    def from_text(text: str) -> datetime:
        if "%" in timestamp_format:
            stamp = datetime.strptime(text.strip(), timestamp_format)
        else:
            stamp = datetime.fromisoformat(text.strip())
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=local)

    return from_text


def _delimiter(header: str) -> str:
    """The delimiter the header line holds most of; a comma when it holds none (one column)."""
    counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _resolve_column(
    fieldnames: Sequence[str],
    requested: str | None,
    first_row: dict[str, str],
    fmt: str,
    path: Path,
) -> tuple[str, str]:
    """The column to read and, when it was not named exactly, how it was chosen."""
    wanted = requested or DEFAULT_COLUMN
    if wanted in fieldnames:
        return wanted, ""
    folded = [name for name in fieldnames if name.strip().casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0], f"matched {wanted!r} ignoring case"
    if requested is None:
        candidates = [name for name in fieldnames if _detect_format(first_row.get(name) or "", fmt)]
        if len(candidates) == 1:
            return candidates[0], f"no {DEFAULT_COLUMN!r} column; the only one holding times"
        if candidates:
            raise TraceError(
                f"{path}: no column {DEFAULT_COLUMN!r}, and several hold times ({candidates}); "
                "name the arrival-time column with --timestamp-column"
            )
    raise TraceError(
        f"{path}: no column {wanted!r} (columns: {list(fieldnames)}); name the arrival-time "
        "column with --timestamp-column"
    )


def _check_sample_rate(sample_rate: float) -> None:
    if not (math.isfinite(sample_rate) and 0 < sample_rate <= 1):
        raise TraceError(
            f"--sample-rate: {sample_rate:g} is not a share in (0, 1]; give the share of "
            "requests the log kept, e.g. 0.01 for one in a hundred (1 for a full log)"
        )


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]], str]:
    if not path.exists():
        raise TraceError(f"trace file {path} does not exist; pass the file's path with --trace")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            delimiter = _delimiter(handle.readline())
            handle.seek(0)
            # utf-8-sig skips the byte-order mark again after the seek to 0.
            reader = csv.DictReader(handle, delimiter=delimiter)
            rows = list(reader)
            fieldnames = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise TraceError(f"cannot read trace file {path}: {error}") from None
    return fieldnames, rows, delimiter


def read_trace(
    path: Path,
    column: str | None = None,
    *,
    timestamp_format: str = "auto",
    timezone: str = DEFAULT_TIMEZONE,
    sample_rate: float = 1.0,
) -> Trace:
    """Arrival times from the trace at `path`, sorted, as timezone-aware datetimes.

    `column` is matched exactly, then ignoring case; when it is None, the `TIMESTAMP` column (in
    any case), or else the only column whose first value is a time. Times without an offset are
    in `timezone`. `TraceError` names the file, the row and the column of the first bad value.
    """
    if timestamp_format not in TIMESTAMP_FORMATS and "%" not in timestamp_format:
        raise TraceError(
            f"--timestamp-format: {timestamp_format!r} is not one of "
            f"{', '.join(TIMESTAMP_FORMATS)} nor a strptime pattern such as '%d/%m/%Y %H:%M:%S'"
        )
    _check_sample_rate(sample_rate)
    local = zone(timezone)
    fieldnames, rows, delimiter = _rows(path)
    if not fieldnames:
        raise TraceError(f"{path} is empty; expected a header line and one row per request")
    if not rows:
        raise TraceError(f"{path} has a header but no rows; expected one row per request")
    name, note = _resolve_column(fieldnames, column, rows[0], timestamp_format, path)
    first = (rows[0].get(name) or "").strip()
    detected = _detect_format(first, timestamp_format)
    if detected is None:
        expected = "an ISO 8601 time" if timestamp_format == "iso" else "a time"
        raise TraceError(
            f"{path}:2: column {name!r}: {first!r} is not {expected} (ISO 8601, or epoch "
            "seconds/ms/us/ns); pass --timestamp-format, e.g. a strptime pattern"
        )
    parse = _parser(detected, local)
    stamps: list[datetime] = []
    unsorted = 0
    for line, row in enumerate(rows, start=2):
        text = row.get(name) or ""
        try:
            stamp = parse(text)
        except (ValueError, OverflowError, OSError):
            raise TraceError(
                f"{path}:{line}: column {name!r}: {text!r} is not {format_name(detected)} (the "
                "format of the first row); fix the row or pass --timestamp-format"
            ) from None
        if stamps and stamp < stamps[-1]:
            unsorted += 1
        stamps.append(stamp)
    if unsorted:
        stamps.sort()
    return Trace(
        path=path,
        stamps=stamps,
        column=name,
        timestamp_format=detected,
        delimiter=delimiter,
        sample_rate=sample_rate,
        column_note=note,
        unsorted_rows=unsorted,
    )


def add_trace_arguments(
    parser: argparse.ArgumentParser,
    *,
    required: bool,
    timezone_help: str = "IANA timezone of times written without an offset",
) -> None:
    """The trace flags every command that reads a trace shares (read back by `from_arguments`)."""
    parser.add_argument(
        "--trace",
        type=Path,
        required=required,
        default=None,
        help="request trace: a header line and one row per request (comma, tab, semicolon or "
        "pipe separated; other columns are ignored)",
    )
    parser.add_argument(
        "--timestamp-column",
        default=None,
        metavar="NAME",
        help=f"arrival-time column, matched ignoring case (default: {DEFAULT_COLUMN}, or else "
        "the only column whose values are times)",
    )
    parser.add_argument(
        "--timestamp-format",
        default="auto",
        metavar="FORMAT",
        help=f"one of {', '.join(TIMESTAMP_FORMATS)}, or a strptime pattern (default: auto, "
        "detected from the first row: ISO 8601 or epoch seconds/ms/us/ns)",
    )
    parser.add_argument(
        "--timezone",
        default=DEFAULT_TIMEZONE,
        help=f"{timezone_help} (default: {DEFAULT_TIMEZONE})",
    )
    parser.add_argument(
        "--sample-rate",
        type=float,
        default=1.0,
        metavar="SHARE",
        help="the share of requests the log kept, e.g. 0.01 for a 1%% sample: each row counts "
        "as 1/SHARE requests (default: 1, a full log)",
    )


def from_arguments(args: argparse.Namespace) -> Trace:
    """The trace the flags of `add_trace_arguments` name (`--trace` must be set)."""
    path: Path = args.trace
    return read_trace(
        path,
        args.timestamp_column,
        timestamp_format=args.timestamp_format,
        timezone=args.timezone,
        sample_rate=args.sample_rate,
    )


__all__ = [
    "DEFAULT_COLUMN",
    "DEFAULT_TIMEZONE",
    "DELIMITERS",
    "EPOCH_UNITS",
    "TIMESTAMP_FORMATS",
    "Trace",
    "TraceError",
    "add_trace_arguments",
    "format_name",
    "from_arguments",
    "read_trace",
    "zone",
]
