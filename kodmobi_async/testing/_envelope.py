# ruff: noqa: RUF001  # the Russian texts are Cyrillic on purpose
"""kod.mobi's JSON error envelope, as the fake writes it, in English and Russian.

A scripted status fault and the fake's own refusals must look exactly alike to a client,
so both build their bodies here. Pure: no I/O, no aiohttp.
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

_LANGUAGES = frozenset({"en", "ru"})

# Only the statuses a client is likely to see get a Russian text; others fall back to the
# English reason phrase, which is what an untranslated server would send anyway.
_RUSSIAN_REASONS: Mapping[int, str] = {
    400: "Некорректный запрос",
    401: "Требуется авторизация",
    403: "Доступ запрещён",
    404: "Не найдено",
    405: "Метод не поддерживается",
    408: "Истекло время ожидания запроса",
    409: "Конфликт",
    429: "Слишком много запросов, повторите позже",
    500: "Внутренняя ошибка сервера",
    502: "Ошибка шлюза",
    503: "Сервис временно недоступен",
    504: "Шлюз не отвечает",
}


def preferred_language(accept_language: str | None) -> str:
    """Pick the envelope language for an ``Accept-Language`` header value.

    Args:
        accept_language: The raw header value, for example ``"ru-RU,ru;q=0.9,en;q=0.8"``,
            or None when the header is absent.

    Returns:
        ``"ru"`` or ``"en"``: the supported language with the highest quality value,
        English when none of the listed languages is supported.
    """
    if not accept_language:
        return "en"
    best, best_quality = "en", 0.0
    for item in accept_language.split(","):
        tag, _, params = item.partition(";")
        quality = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-", 1)[0].lower()
        if primary in _LANGUAGES and quality > best_quality:
            best, best_quality = primary, quality
    return best


def default_sys_message(status: int) -> str:
    """Derive the ``sys_message`` the fake uses for a status when none is given.

    Args:
        status: An HTTP status code.

    Returns:
        ``ERROR_`` plus the reason phrase in upper snake case (503 gives
        ``ERROR_SERVICE_UNAVAILABLE``), or ``ERROR_HTTP_<status>`` for codes without a
        standard phrase.
    """
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return f"ERROR_HTTP_{status}"
    return "ERROR_" + re.sub(r"[^A-Z0-9]+", "_", phrase.upper()).strip("_")


def default_error_text(status: int, language: str) -> str:
    """Return the human-readable ``error`` text the fake uses for a status.

    Args:
        status: An HTTP status code.
        language: ``"en"`` or ``"ru"``.

    Returns:
        The localized reason for the status.
    """
    if language == "ru" and status in _RUSSIAN_REASONS:
        return _RUSSIAN_REASONS[status]
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP error {status}"


def envelope(
    status: int, sys_message: str, error: str, error_params: Mapping[str, Any] | None = None
) -> bytes:
    """Serialize kod.mobi's JSON error envelope.

    Args:
        status: The HTTP status, mirrored in the body's ``status`` field.
        sys_message: The stable machine-readable code.
        error: The human-readable, localized text.
        error_params: Extra details; serialized as ``{}`` when None.

    Returns:
        The UTF-8 JSON body.
    """
    document = {
        "success": False,
        "error": error,
        "error_params": dict(error_params or {}),
        "status": status,
        "sys_message": sys_message,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@attrs.frozen
class Refusal:
    """One of the server's own error answers, serialized once per language.

    Args:
        status: The HTTP status.
        sys_message: The machine-readable code.
        bodies: The envelope bytes keyed by language (``"en"``, ``"ru"``).
    """

    status: int
    sys_message: str
    bodies: Mapping[str, bytes] = attrs.field(hash=False)


def _refusal(status: int, sys_message: str, *, en: str, ru: str) -> Refusal:
    bodies = {"en": envelope(status, sys_message, en), "ru": envelope(status, sys_message, ru)}
    return Refusal(status, sys_message, bodies)


MISSING_KEY = _refusal(
    401,
    "ERROR_UNAUTHORIZED",
    en="API key is missing: send it in the x-api-key header",
    ru="Не передан ключ API: укажите его в заголовке x-api-key",
)
BAD_KEY = _refusal(401, "ERROR_UNAUTHORIZED", en="Invalid API key", ru="Неверный ключ API")
BAD_SESSION_ID = _refusal(
    400,
    "ERROR_BAD_REQUEST",
    en="Invalid session_id: expected a ULID",
    ru="Некорректный session_id: ожидается ULID",
)
UNKNOWN_SESSION = _refusal(
    404, "ERROR_MESSAGE_NOT_FOUND", en="Session not found", ru="Сессия не найдена"
)
# Word for word what Fault.status(429) sends, so a test cannot tell the fake's own rate
# limit from a scripted one.
RATE_LIMITED = _refusal(
    429,
    default_sys_message(429),
    en=default_error_text(429, "en"),
    ru=default_error_text(429, "ru"),
)
UNKNOWN_PATH = _refusal(404, "ERROR_NOT_FOUND", en="Not found", ru="Не найдено")
WRONG_METHOD = _refusal(
    405, "ERROR_METHOD_NOT_ALLOWED", en="Method not allowed", ru="Метод не поддерживается"
)
