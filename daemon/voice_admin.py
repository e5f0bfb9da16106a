"""Voice management and server facts: one implementation behind every transport.

The gRPC servicer (LoadVoice, UnloadVoice, GetServerInfo) and the HTTP JSON API
(`POST /v1/voices`, `DELETE /v1/voices/{name}`, `GET /v1/server`, see http_api.py) call
these functions, so both accept the same bundle paths (inside the voices folder only), run
the same checks, load off the event loop and report the same numbers. Callers check auth
and map the `GsvdError`s raised here to their own status codes (daemon/errors.py).

Consent: every voice carries a consent record (`gsvd.engine.consent`). A bundle is loaded -- at start
and by LoadVoice -- only if its `[consent]` table passes `check_record`, unless the operator set
`allow_unconsented_voices` (then it is loaded with a warning and an empty record); a zero-shot voice
needs the four fields sent with its upload, whatever that setting says. The record of each voice loaded
here is kept (`VoiceAdmin.facts`) and listed by GetVoice/ListVoices and `GET /v1/voices`, with the
reference audio the canary compares the voice's speech with. Each call's details go into the audit
log's entry the transport opened for it (`daemon/audit.py`); loads at start write their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from gsvd.daemon import convert, validate
from gsvd.daemon.audit import AuditLog, Caller, Entry
from gsvd.daemon.config import DaemonConfig
from gsvd.daemon.errors import AlreadyExists, ConsentRequired
from gsvd.engine.consent import check_record, summary
from gsvd.engine.errors import InvalidInput

if TYPE_CHECKING:
    from gsvd.engine import Engine, Voice

log = logging.getLogger("gsvd.daemon")
T = TypeVar("T")


@dataclass(frozen=True)
class VoiceFacts:
    """What the daemon knows of a voice it loaded besides the engine's `Voice`."""

    consent: dict
    """The checked consent record; {} only for a voice loaded under `allow_unconsented_voices`."""
    source: str
    """"bundle" or "upload"."""
    reference: Path | None = None
    """A bundle's reference recording (the canary's speaker similarity is measured against it)."""
    clip: tuple[np.ndarray, int] | None = None
    """An uploaded voice's clip and its rate (the same use)."""


class VoiceAdmin:
    """Load, add and unload voices for every transport, with the daemon's checks: names through
    `validate.voice_name`, bundle paths through `validate.bundle_path` (inside the voices folder, the
    same rule as at start), the consent record (module docstring; its fields at most
    `validate.MAX_SHORT_TEXT` characters), the transcript under the daemon's text limit, uploaded audio
    through `validate.reference_audio` (rate, channels and length before any resampling, then the
    samples), and a name claimed while a load makes it (ALREADY_EXISTS when another load is making it, or
    when it is loaded and `replace` is not set). Loads run off the event loop; the claim is taken on it
    (check and claim are one step there)."""

    def __init__(self, engine: Engine, config: DaemonConfig, audit: AuditLog | None = None) -> None:
        self.engine, self.config = engine, config
        self.audit = audit or AuditLog()
        self._loading: set[str] = set()  # voice names a load is working on
        self._facts: dict[str, VoiceFacts] = {}

    def facts(self, name: str) -> VoiceFacts | None:
        return self._facts.get(name)

    def consent(self, name: str) -> dict:
        """The consent record of a loaded voice ({} when it has none)."""
        facts = self._facts.get(name)
        return dict(facts.consent) if facts else {}

    async def load_bundle(self, raw_path: str, name: str = "", replace: bool = False,
                          entry: Entry | None = None) -> Voice:
        """Load the bundle at `raw_path` under `name` (default: the bundle's own name)."""
        entry = entry or Entry("load_voice", Caller.daemon())
        name = validate.voice_name(name, "name") if name else ""
        path = validate.bundle_path(self.config.voices_dir, raw_path)
        entry.note(bundle=raw_path)
        own_name, record, reference = await asyncio.to_thread(_bundle_facts, path)
        name = name or own_name
        entry.note(voice=name)
        consent = self._checked_consent(record, name)
        entry.note(consent=summary(consent) or "none (allow_unconsented_voices)")
        load = partial(self.engine.load_voice, path, name, progress=partial(_log_load, path))
        with self._claim(name, replace):
            voice = await own_thread(partial(self._registered, load, VoiceFacts(consent, "bundle", reference)))
        log.info("loaded voice %s (%s); consent: %s", voice.name, voice.version, summary(consent) or "none")
        return voice

    def load_at_start(self, folder: str, listed: Path) -> Voice:
        """A bundle of the voices folder at start (on the caller's thread), under LoadVoice's rules (inside
        the folder once symlinks are followed, the consent record); its own audit entry (caller `daemon`)."""
        with self.audit.event("load_voice", Caller.daemon(), bundle=listed.name) as entry:
            path = validate.bundle_path(folder, listed.name)
            name, record, reference = _bundle_facts(path)
            entry.note(voice=name)
            if any(v.name == name for v in self.engine.voices()):
                raise AlreadyExists(f"voice {name!r} is already loaded from another folder")
            consent = self._checked_consent(record, name)
            entry.note(consent=summary(consent) or "none (allow_unconsented_voices)")
            return self._registered(partial(self.engine.load_voice, path), VoiceFacts(consent, "bundle", reference))

    async def add_reference_voice(self, name: str, base_voice: str, audio: np.ndarray, sample_rate: int,
                                  transcript: str, language: str, consent: Mapping[str, Any], replace: bool = False,
                                  entry: Entry | None = None) -> Voice:
        """A zero-shot voice from a 3-10 s clip + transcript, on the model of the loaded `base_voice`.
        `consent`: the record sent with the upload (`gsvd.engine.consent.upload_record`)."""
        entry = entry or Entry("upload_voice", Caller.daemon())
        if not name:
            raise InvalidInput("name is required for an uploaded voice", "name")
        name = validate.voice_name(name, "name")
        entry.note(voice=name)
        validate.short_text(consent, "reference.consent")
        record = check_record(consent)  # the transport built it from the upload's fields
        entry.note(consent=summary(record))
        transcript = validate.check_text(transcript, self.config.max_text_chars, "reference.transcript")
        audio = validate.reference_audio(audio, sample_rate)
        base = validate.voice_name(base_voice, "reference.base_voice")
        entry.note(base_voice=base)
        add = partial(self.engine.add_voice_from_reference, name, base, audio, sample_rate, transcript, language or "auto")
        facts = VoiceFacts(record, "upload", clip=(np.array(audio, np.float32), int(sample_rate)))
        with self._claim(name, replace):
            voice = await own_thread(partial(self._registered, add, facts))
        log.info("added zero-shot voice %s on the model of %s; consent: %s", voice.name, base, summary(record))
        return voice

    def unload_voice(self, name: str, entry: Entry | None = None) -> None:
        name = validate.voice_name(name, "name")
        if entry is not None:
            entry.note(voice=name)
        self.engine.unload_voice(name)
        self._facts.pop(name, None)
        log.info("unloaded voice %s", name)

    def _registered(self, load: Callable[[], Voice], facts: VoiceFacts) -> Voice:
        """Run a load (on its own thread) and record the voice's facts with it, so that a load whose caller went
        away meanwhile still leaves the voice with its consent record."""
        voice = load()
        self._facts[voice.name] = facts
        return voice

    def _checked_consent(self, record: Mapping[str, Any] | None, name: str) -> dict:
        """The bundle's consent record if valid; else ConsentRequired, or {} with a warning when the operator
        allows voices without one."""
        try:
            return check_record(record)
        except InvalidInput:
            if not self.config.allow_unconsented_voices:
                raise ConsentRequired(
                    f"voice {name!r} has no consent record (who agreed to be cloned, for what use, when, recorded "
                    "by whom): add a [consent] table with speaker, use, date and recorded_by to its voice.toml or "
                    "re-import it with `gsvd import --consent ...`; an operator may allow voices without one "
                    "(allow_unconsented_voices)") from None
            log.warning("voice %s has no consent record; loaded because allow_unconsented_voices is set", name)
            return {}

    @contextlib.contextmanager
    def _claim(self, name: str, replace: bool) -> Iterator[None]:
        if name in self._loading:
            raise AlreadyExists(f"voice {name!r} is being loaded by another request")
        if not replace and any(v.name == name for v in self.engine.voices()):
            raise AlreadyExists(f"voice {name!r} is already loaded: set replace to swap it, or unload it first")
        self._loading.add(name)
        try:
            yield
        finally:
            self._loading.discard(name)


def _bundle_facts(path: Path) -> tuple[str, dict, Path | None]:
    """The voice name, consent table and reference recording a bundle's manifest gives (its files are checked
    when it loads)."""
    from gsvd.engine.bundle import load_bundle

    bundle = load_bundle(path, verify=False)
    return bundle.name, dict(bundle.consent), bundle.reference_audio


def server_info(engine: Engine, config: DaemonConfig, active_streams: int) -> dict:
    """The fields of gsvd.v1.ServerInfo, as plain values."""
    info, stats = engine.info(), engine.stats()
    limits = {"max_streams": config.max_streams, "queue_limit": config.queue_limit,
              "max_text_chars": config.max_text_chars, "max_message_bytes": config.max_message_mb << 20}
    return {"version": info["version"], "backend": info["backend"] or "", "device": info["device"],
            "dtype": info["dtype"], "limits": limits, "models": [m["model_id"] for m in info["models"]],
            "sample_rate_hz": convert.NATIVE_RATE, "active_streams": active_streams,
            "queued": int(stats.get("queued", 0))}


async def own_thread(call: Callable[[], T], name: str = "gsvd-load") -> T:
    """Run a long blocking call (a voice load: minutes on a GPU; a canary sentence) on a thread of its own, off
    the event loop and off the default executor that the short engine calls share; shutdown does not wait
    for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()

    def settle(result, error) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def work() -> None:
        try:
            result, error = call(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone (daemon stopped)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await done


def _log_load(path: Path, stage: str) -> None:
    log.info("loading %s: %s", path, {"verified": "checksums verified", "model": "model resident",
                                      "reference": "reference ready"}.get(stage, stage))
