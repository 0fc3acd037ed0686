"""Sorting an OpenAI-compatible endpoint's failures into "try again later" and "give up".

Rate limits, server errors, timeouts and dropped connections pass; bad requests, missing
models and refused keys do not, and retrying them would only burn the budget. Messages never
carry the API key: auth failures name the variable to set, and any text the server sent back
is scrubbed of the key before it is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import openai

from refinevla_bench.teacher.protocol import PermanentTeacherError, RetryableError

MAX_SERVER_MESSAGE_CHARS = 300
REDACTED = "<redacted>"


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds the server asked us to wait: retry-after-ms, else Retry-After (seconds or an
    HTTP date); None when absent or unreadable."""
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


def classify(
    error: openai.APIError, api_key_env: str, secret: str | None
) -> RetryableError | PermanentTeacherError:
    """The protocol exception to raise for an error the openai client raised."""
    if isinstance(error, openai.APITimeoutError):
        return RetryableError("the request timed out")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return RetryableError(scrub(f"connection failed: {cause!r}", secret))
    if not isinstance(error, openai.APIStatusError):
        return PermanentTeacherError(scrub(f"unexpected reply: {error.message}", secret))
    status = error.status_code
    if status in (401, 403):
        return PermanentTeacherError(
            f"the endpoint refused the API key (HTTP {status}); set the environment variable "
            f"{api_key_env} to a valid key"
        )
    message = scrub(error.message, secret)[:MAX_SERVER_MESSAGE_CHARS]
    if status == 429:
        wait = retry_after_s(error.response.headers, datetime.now(UTC))
        return RetryableError(f"rate limited (HTTP 429): {message}", retry_after=wait)
    if status >= 500 or status in (408, 409):
        return RetryableError(f"server error (HTTP {status}): {message}")
    return PermanentTeacherError(f"the endpoint rejected the request (HTTP {status}): {message}")
