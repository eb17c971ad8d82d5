"""Credentials out of everything the runtime shows: log lines, error messages, dead-letter reasons.

Queue and result-store URIs may carry a password (`redis://:PASSWORD@host/0`) or a credential in
their query (a presigned URL's `X-Amz-Signature`, a `token=`); those URIs reach log lines, error
messages and the reasons stored with dead letters, which are read by more people than the
secret is meant for. `redact_uri` is the one rule: the userinfo's password and the value of
every credential-like query parameter become `***`, and the rest of the URI is kept as written,
so a reader still sees which host, database and stream are meant. `redact_text` applies it to
every URI inside free text (an exception's message, a formatted log line), and
`RedactingFormatter` to every log line a process writes.
"""

from __future__ import annotations

import logging
import re
from typing import Final
from urllib.parse import unquote

from typing_extensions import override

MASK: Final = "***"
"""What a redacted credential is replaced with."""

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
"""A URI inside free text: scheme, `://`, then everything up to whitespace or a quote."""
_CREDENTIAL_KEY: Final = re.compile(
    r"pass|pwd|secret|token|auth|credential|signature|^sig$|api[-_]?key|access[-_]?key|"
    r"private[-_]?key|session",
    re.IGNORECASE,
)
"""Query parameter names whose value is a credential (`password`, `X-Amz-Signature`, `token`,
`sig`, `api_key`, `X-Amz-Security-Token`, ...)."""


def redact_uri(uri: str) -> str:
    """`uri` with its password and credential query values replaced by `***`.

    A URI without credentials comes back unchanged, character for character.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:
        return uri
    if _SCHEME.match(rest):  # A URL wrapped in another scheme: sqs://https://...
        return f"{scheme}://{redact_uri(rest)}"
    # The authority ends at the first '/', '?' or '#'; its userinfo at the last '@' in it (an
    # unencoded '@' in a password is common enough to allow for).
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, host = authority.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}{colon}{MASK if colon else ''}@{host}"
    return f"{scheme}://{authority}{_redact_query(tail)}"


def _redact_query(tail: str) -> str:
    """The path, query and fragment, with credential-like query values masked."""
    path, question, query = tail.partition("?")
    if not question:
        return tail
    query, hash_, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        key, equals, _value = pair.partition("=")
        if equals and _CREDENTIAL_KEY.search(unquote(key)):
            pair = f"{key}={MASK}"
        pairs.append(pair)
    return f"{path}?{'&'.join(pairs)}{hash_}{fragment}"


def redact_text(text: str) -> str:
    """`text` with every URI in it redacted (see `redact_uri`)."""
    if "://" not in text:
        return text
    return _URI.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    # Punctuation that ends a sentence or a bracket after a URI is not part of it.
    found = match.group(0)
    uri = found.rstrip(".,;:)]}")
    return redact_uri(uri) + found[len(uri) :]


class RedactingFormatter(logging.Formatter):
    """Formats with the wrapped formatter, then redacts the whole line, traceback included.

    Applied to the output rather than to the message so that an exception's text, a client
    library's log line and an `extra` field are covered as well as the runtime's own lines.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    @override
    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self._inner.format(record))


__all__ = ["MASK", "RedactingFormatter", "redact_text", "redact_uri"]
