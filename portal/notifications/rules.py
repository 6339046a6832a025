"""Pure rules of the notifications domain (no Flask): quiet hours, retry back-off, channel choice,
SMS length and keywords. Tested as plain functions."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

# --- channels a patient can choose per kind ------------------------------------------------------

EMAIL, SMS, BOTH, OFF = "email", "sms", "both", "off"
CHOICES = (EMAIL, SMS, BOTH, OFF)
DEFAULT_CHOICE = EMAIL


def channels_for(choice: str | None, *, can_text: bool, always_email: bool = False) -> list[str]:
    """The channels a notice goes out on. A text that cannot be sent (no confirmed number, no
    consent, STOP) falls back to email, so choosing "text" never means hearing nothing."""
    if always_email:
        return [EMAIL]
    choice = choice if choice in CHOICES else DEFAULT_CHOICE
    if choice == OFF:
        return []
    if choice == EMAIL:
        return [EMAIL]
    if not can_text:
        return [EMAIL]
    return [SMS] if choice == SMS else [EMAIL, SMS]


# --- quiet hours ---------------------------------------------------------------------------------

def parse_quiet_hours(spec: str | None) -> tuple[time, time] | None:
    """"21:00-08:00" -> (21:00, 08:00); "" or None -> no quiet hours."""
    if not spec or not spec.strip():
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", spec)
    if not m:
        raise ValueError(f"quiet hours must look like 21:00-08:00, not {spec!r}")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    return time(h1, m1), time(h2, m2)


def quiet_until(now: datetime, tz: ZoneInfo, hours: tuple[time, time] | None) -> datetime | None:
    """If `now` (aware) falls in the quiet hours of zone `tz`, the aware UTC time they end; else None.
    The window may wrap midnight (21:00-08:00) or not (12:00-13:00)."""
    if hours is None:
        return None
    start, end = hours
    if start == end:
        return None
    local = now.astimezone(tz)
    t = local.time()
    wraps = start > end
    inside = (t >= start or t < end) if wraps else (start <= t < end)
    if not inside:
        return None
    end_day = local.date()
    if wraps and t >= start:
        end_day = end_day + timedelta(days=1)
    # Build the local wall time and let zoneinfo resolve it (DST-safe: a skipped time moves forward).
    ends = datetime.combine(end_day, end, tzinfo=tz)
    return ends.astimezone(timezone.utc)


# --- retries -------------------------------------------------------------------------------------

def backoff_seconds(attempts: int, base: int = 30, cap: int = 3600) -> int:
    """Wait before the next attempt after `attempts` failures: base, 2×base, 4×base … at most `cap`."""
    return int(min(cap, base * (2 ** max(0, attempts - 1))))


# --- SMS text ------------------------------------------------------------------------------------

# The GSM 03.38 default alphabet and its extension table (the extension characters cost two).
_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(c in _GSM7_BASIC or c in _GSM7_EXT for c in text)


def sms_length(text: str) -> int:
    """Characters as the network counts them: GSM-7 septets (extension characters count 2), else
    UCS-2 code units."""
    if is_gsm7(text):
        return sum(2 if c in _GSM7_EXT else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many SMS the text is billed as (160/153 GSM-7, 70/67 UCS-2)."""
    n = sms_length(text)
    single, multi = (160, 153) if is_gsm7(text) else (70, 67)
    return 1 if n <= single else -(-n // multi)


def one_line(text: str) -> str:
    """Template output as one tidy line (templates are written over several lines)."""
    return re.sub(r"\s+", " ", text).strip()


# --- inbound keywords ----------------------------------------------------------------------------

# Carrier / CTIA opt-out and opt-in keywords (Twilio's defaults) plus ARRET (French) and BAJA (Spanish).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
                        "ARRET", "ARRÊT", "BAJA", "PARAR", "ALTO"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "ALTA", "INICIO"})
HELP_WORDS = frozenset({"HELP", "INFO", "AYUDA"})
SPANISH_WORDS = frozenset({"BAJA", "PARAR", "ALTO", "ALTA", "INICIO", "AYUDA"})

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_inbound(text: str | None, limit: int = 1600) -> str:
    """The body as we store it: control characters removed, at most `limit` characters."""
    return _CONTROL.sub("", text or "")[:limit]


def keyword_of(text: str) -> str:
    """The text stripped and upper-cased (what handlers match on)."""
    return (text or "").strip().upper()


def builtin_keyword(keyword: str) -> str | None:
    """"stop" / "start" / "help" when the whole text is one of the carrier keywords (trailing
    punctuation ignored), else None."""
    word = re.sub(r"[\s.!¡?¿]+", "", keyword)
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def keyword_language(keyword: str) -> str:
    """The language to answer a keyword in, from the keyword itself (never from whose number it is,
    so the answer cannot reveal whether a number belongs to a patient)."""
    word = re.sub(r"[\s.!¡?¿]+", "", keyword)
    return "es" if word in SPANISH_WORDS else "en"
