"""Consent records: who agreed that their voice be cloned, for what use, when, and who recorded that.

Every voice bundle carries one (``voice.toml``'s ``[consent]`` table). ``gsvd import`` requires one with all
four fields (``--consent "speaker=...; use=...; date=...; by=..."`` or a TOML/JSON file of them);
``gsvd train`` records the operator's ``--consent``: the same four fields when it is written in that form,
else their words as ``statement`` with who recorded it and when (``train_record``). A zero-shot voice made
from an uploaded clip carries the record sent with the upload (all four fields; text from a client is parsed
with ``files=False``: a remote caller never makes the server read a file). The daemon refuses voices without
a record unless its operator allows them, so the check lives here, in one place: ``check_record``.
"""

from __future__ import annotations

import datetime as _dt
import json
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gsvd.engine.errors import InvalidInput

FIELDS = ("speaker", "use", "date", "recorded_by")
_ALIASES = {"who": "speaker", "speaker": "speaker", "use": "use", "purpose": "use", "when": "date", "date": "date",
            "by": "recorded_by", "recorded_by": "recorded_by", "statement": "statement"}
FORMAT_HELP = ('--consent "speaker=Alice Example; use=audiobook narration; date=2026-11-01; by=Bob (studio)" '
               "or a .toml/.json file with speaker, use, date, recorded_by (and optionally statement)")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ConsentRecord:
    speaker: str
    """Who agreed (the person whose voice this is)."""
    use: str
    """What they agreed to."""
    date: str
    """When they agreed (ISO date)."""
    recorded_by: str
    """Who recorded the consent (the operator)."""
    statement: str = ""
    """Their words, or where the signed form is kept."""
    recorded_at: str = field(default_factory=_now)
    source: str = ""

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"consent record lacks '{name}': {FORMAT_HELP}", "consent")
        try:
            _dt.date.fromisoformat(self.date.strip()[:10])
        except ValueError:
            raise InvalidInput(f"consent date must be an ISO date (YYYY-MM-DD); got {self.date!r}", "consent") from None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


def parse_consent(text: str, source: str = "", *, files: bool = True) -> ConsentRecord:
    """``key=value; ...`` (keys: speaker/who, use, date/when, by/recorded_by, statement) or, with ``files``
    (the local CLI's option, never a remote caller's text), a .toml/.json path."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"a consent record is required: {FORMAT_HELP}", "consent")
    path = Path(text.strip()).expanduser()
    values = _load_file(path) if files and path.suffix.lower() in (".toml", ".json") and path.is_file() else parse_pairs(text)
    fields = {k: "" for k in FIELDS} | {k: str(v) for k, v in values.items()}
    return ConsentRecord(**fields, source=source)


def parse_pairs(text: str, field_name: str = "consent") -> dict[str, str]:
    """The ``key=value; ...`` form's fields by their canonical names (no check that all are there)."""
    values = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        name = _ALIASES.get(key.strip().lower())
        if not sep or name is None:
            raise InvalidInput(f"cannot read consent part {part.strip()!r}: {FORMAT_HELP}", field_name)
        values[name] = value.strip()
    return values


def structured(text: str) -> bool:
    """True when every ``;`` part of ``text`` is ``key=value`` with a known key (the four-field form)."""
    parts = [p for p in text.split(";") if p.strip()]
    return bool(parts) and all(p.partition("=")[1] and p.partition("=")[0].strip().lower() in _ALIASES
                               for p in parts)


def train_record(text: str, recorded_by: str, source: str = "gsvd train --consent") -> dict:
    """The record ``gsvd train`` stores for its ``--consent``: written as the four fields (or a .toml/.json
    file of them), the full record (InvalidInput when one is missing); otherwise the operator's words as
    ``statement``, with ``recorded_by`` (who ran the command) and ``recorded_at``."""
    text = (text or "").strip()
    path = Path(text).expanduser()
    if structured(text) or (path.suffix.lower() in (".toml", ".json") and path.is_file()):
        return parse_consent(text, source).to_dict()
    if not text:
        raise InvalidInput(f"a consent record is required: {FORMAT_HELP}", "consent")
    return {"statement": text, "recorded_by": recorded_by, "recorded_at": _now(), "source": source}


def _load_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw) if path.suffix.lower() == ".json" else tomllib.loads(raw)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read the consent file {path}: {exc}", "consent") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the consent file {path} must hold a table of fields", "consent")
    unknown = set(data) - set(_ALIASES)
    if unknown:
        raise InvalidInput(f"the consent file {path} has unknown fields: {', '.join(sorted(unknown))}", "consent")
    return {_ALIASES[k]: v for k, v in data.items()}


def check_record(record: Mapping[str, Any] | None) -> dict:
    """A bundle's consent table if it is a usable record -- the four fields, or (``gsvd train``'s form) a
    statement -- else InvalidInput saying what is missing."""
    data = dict(record or {})
    if all(isinstance(data.get(k), str) and data[k].strip() for k in FIELDS):
        fields = {k: data[k] for k in (*FIELDS, "statement", "recorded_at", "source") if data.get(k)}
        return ConsentRecord(**fields).to_dict() | {k: v for k, v in data.items() if k not in fields}
    if isinstance(data.get("statement"), str) and data["statement"].strip():
        return data
    raise InvalidInput(f"a consent record is required: {FORMAT_HELP}", "consent")


def upload_record(values: Mapping[str, Any], source: str, field_name: str = "consent") -> dict:
    """The record sent with a zero-shot upload (a remote caller's fields: speaker, use, date, recorded_by,
    optional statement); all four are required. InvalidInput names what is missing, in the caller's terms."""
    data = {k: str(values.get(k) or "").strip() for k in (*FIELDS, "statement")}
    missing = [k for k in FIELDS if not data[k]]
    if missing:
        raise InvalidInput(f"a zero-shot voice needs the speaker's consent record (speaker: who agreed; use: to "
                           f"what; date: when, YYYY-MM-DD; recorded_by: who recorded it); missing: "
                           f"{', '.join(missing)}", field_name)
    try:
        return ConsentRecord(**data, source=source).to_dict()
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field_name) from None


def summary(record: Mapping[str, Any] | None) -> str:
    """A short line naming whose consent a record holds (logs, the audit log); "" for no record."""
    data = dict(record or {})
    if data.get("speaker"):
        return f"{data['speaker']} ({data.get('use', '')}, {data.get('date', '')}, recorded by {data.get('recorded_by', '')})"
    statement = str(data.get("statement", "")).strip()
    return statement if len(statement) <= 80 else statement[:77] + "..."
