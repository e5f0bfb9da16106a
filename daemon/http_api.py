"""The HTTP JSON API beside the gateway's speech routes: voices and server state.

The web console (console.py) uses only this public API, the same any other client gets:

- `GET /v1/server`: the `GetServerInfo` fields, plus `resident` (each loaded model: version, voices,
  weight bytes), `gpu` (name and memory, or null on CPU), `runtime` (slots, queue) and `metrics`
  (first audio and real-time factor histograms with p50/p95, requests, underruns, errors by code).
- `GET /v1/voices`: loaded voices (`loaded: true`; `source` "bundle" or "upload") and the bundles in
  the voices folder that are not loaded (`loaded: false`, `bundle_path` to load them), each with
  version, languages, reference text, consent record; `defaults` holds the synthesis options a
  request gets when it sets none (`SynthesisOptions()`), `languages` the accepted language codes.
- `POST /v1/voices` (admin token): a JSON body `{"bundle_path": "alice", "name": optional}` loads a
  bundle from the voices folder (`LoadVoice`; refused without a consent record unless the operator
  allows that); a multipart form with `name`, `base_voice` (a loaded voice whose model it uses),
  `transcript`, `language`, the speaker's consent record, and the 3-10 s clip in `audio` (a
  WAV/FLAC/OGG file, or raw PCM with `encoding` pcm_f32le|pcm_s16le and `sample_rate`) makes a
  zero-shot voice (`LoadVoice` with a reference). The consent record is required: the fields
  `consent_speaker`, `consent_use`, `consent_date` (YYYY-MM-DD), `consent_by` and optionally
  `consent_statement`, or `consent` as `speaker=...; use=...; date=...; by=...` (a `consent` without
  `=` is taken as the statement).
- `DELETE /v1/voices/{name}` (admin token): `UnloadVoice`.

Every admin call (these two, and the console's package) is written to the audit log with the caller's
identity -- the token's fingerprint and, under mutual TLS, the client certificate's subject
(`http_caller`) -- refused calls included.

Voice management goes through `voice_admin`, the functions the gRPC servicer calls, so both
transports share their checks and limits (the request size is the gateway's `max_message_mb`).
Every error is JSON, `{"error": {"message", "type", "code"}}`, with a 4xx status (5xx only for
internal faults); the `json_errors` middleware gives the same shape to aiohttp's own 404/405/413
answers under `/v1/`. Bodies are read by `read_body` / `read_json` / `read_form` only: bounded by the size
limit (413) and by `body_timeout_s` (408), JSON through the daemon's one parser (`validate.json_object`), forms
whose multipart framing or text is broken refused (400). An uploaded file is decoded only after what it declares
(sample rate, channels, length) passed `validate.reference_format`, and then at most the longest clip allowed is
read from it: a FLAC of an hour of silence is a few hundred KB that would decode to gigabytes.

Auth: `guard` is the one place that asks the gateway (`Gateway._refusal`, the daemon's one policy in
`daemon/auth.py`) whether a request's bearer token may make a call; admin calls need the admin token
when one is set (else the user token; with none, only `--no-auth` on loopback opens them). Browsers cannot set headers on a WebSocket, so `request_bearer` also accepts the token as a
`gsvd.bearer.<base64url token>` entry of `Sec-WebSocket-Protocol` (next to `gsvd.v1`, the protocol
the gateway selects), the way Kubernetes' API server takes bearer tokens from browsers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from aiohttp import http_exceptions, web

from gsvd.daemon import convert, validate, voice_admin
from gsvd.daemon.audit import Caller, Entry, subject_from_peercert
from gsvd.daemon.errors import RequestTimeout, TooLarge, message_for
from gsvd.engine.consent import parse_pairs, structured, upload_record
from gsvd.engine.errors import BundleError, GsvdError, InvalidInput
from gsvd.engine.types import LANGUAGES, SynthesisOptions
from gsvd.v1 import gsvd_pb2 as pb

if TYPE_CHECKING:
    from gsvd.daemon.config import DaemonConfig
    from gsvd.daemon.gateway import Gateway

WS_PROTOCOL = "gsvd.v1"
BEARER_PROTOCOL = "gsvd.bearer."
_RAW_ENCODINGS = {"pcm_f32le": pb.PCM_F32LE, "pcm_s16le": pb.PCM_S16LE}
_FORM_FIELDS = ("sample_rate", "audio")  # how the upload form names the clip's rate and audio


def request_bearer(request: web.Request) -> str:
    """The `Bearer <token>` a request carries: its Authorization header, else a `gsvd.bearer.<base64url>`
    entry of Sec-WebSocket-Protocol; "" when neither."""
    header = request.headers.get("Authorization", "")
    if header:
        return header
    for entry in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        entry = entry.strip()
        if entry.startswith(BEARER_PROTOCOL):
            raw = entry[len(BEARER_PROTOCOL):]
            try:
                return "Bearer " + base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return ""
    return ""


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": code.lower(), "code": code}}, status=status)


def guard(gateway: Gateway, request: web.Request, admin: bool = False, entry: Entry | None = None
          ) -> web.Response | None:
    """None when the request may make the call, else the 401/403 answer (the daemon's one auth policy,
    `daemon/auth.py`, through `Gateway._refusal`); a refused admin call's audit `entry` records it."""
    refused = gateway._refusal(request, admin=admin)
    if refused is None:
        return None
    if entry is not None:
        entry.fail(refused)
    return gateway._error(refused)


def http_caller(gateway: Gateway, request: web.Request) -> Caller:
    """Who is calling (the audit log): the token's identity, the peer address, the client certificate's subject."""
    cert = request.transport.get_extra_info("peercert") if request.transport is not None else None
    return Caller(gateway.service.auth.identify(request_bearer(request) or None), "http", request.remote or "",
                  subject_from_peercert(cert))


@web.middleware
async def json_errors(request: web.Request, handler):
    """aiohttp's own 4xx answers (no route, wrong method, body too large) as JSON under /v1/."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/v1/") or exc.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "RESOURCE_EXHAUSTED"}.get(exc.status, "INVALID_ARGUMENT")
        return json_error(exc.status, code, exc.reason if exc.status != 413 else exc.text or exc.reason)


class VoicesApi:
    """`/v1/server` and `/v1/voices` (see the module docstring)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.service = gateway.service
        self._manifests: dict[Path, tuple[int, dict]] = {}  # bundle dir -> (voice.toml mtime, facts)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/server", self.server), web.get("/v1/voices", self.list_voices),
                web.post("/v1/voices", self.load_voice), web.delete("/v1/voices/{name}", self.unload_voice)]

    # ------------------------------------------------------------------ routes

    async def server(self, request: web.Request) -> web.Response:
        if (denied := guard(self.gateway, request)) is not None:
            return denied
        svc = self.service
        info = voice_admin.server_info(svc.engine, svc.config, svc.runner.active)
        info["resident"] = await asyncio.to_thread(self._resident)
        info["gpu"] = gpu_memory(info["device"])
        info["runtime"] = svc.engine.stats()
        info["metrics"] = metrics_summary(svc.metrics.registry)
        return web.json_response(info)

    async def list_voices(self, request: web.Request) -> web.Response:
        if (denied := guard(self.gateway, request)) is not None:
            return denied
        voices = await asyncio.to_thread(self._catalog)
        defaults = dataclasses.asdict(SynthesisOptions())
        return web.json_response({"voices": voices, "defaults": defaults, "languages": list(LANGUAGES)})

    async def load_voice(self, request: web.Request) -> web.Response:
        upload = request.content_type == "multipart/form-data"
        with self.service.audit.event("upload_voice" if upload else "load_voice", http_caller(self.gateway, request),
                                      self.service.hide, call="POST /v1/voices") as entry:
            if (denied := guard(self.gateway, request, admin=True, entry=entry)) is not None:
                return denied
            try:
                if upload:
                    voice = await self._upload(request, entry)
                else:
                    body = await read_json(request, self.service.config)
                    raw, name, replace = body.get("bundle_path", ""), body.get("name", ""), body.get("replace", False)
                    if not isinstance(raw, str) or not raw or not isinstance(name, str) or not isinstance(replace, bool):
                        raise InvalidInput("give bundle_path (a folder in the voices directory) and optionally name",
                                           "bundle_path")
                    voice = await self.service.admin.load_bundle(raw, name, replace, entry)
            except GsvdError as exc:
                entry.fail(exc, self.service.hide)
                return self.gateway._error(exc)
            return web.json_response({"voice": self._row(voice)}, status=201)

    async def unload_voice(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        with self.service.audit.event("unload_voice", http_caller(self.gateway, request), self.service.hide,
                                      call="DELETE /v1/voices", voice=name) as entry:
            if (denied := guard(self.gateway, request, admin=True, entry=entry)) is not None:
                return denied
            try:
                self.service.admin.unload_voice(name, entry)
            except GsvdError as exc:
                entry.fail(exc, self.service.hide)
                return self.gateway._error(exc)
            return web.json_response({"unloaded": name})

    # ----------------------------------------------------------------- helpers

    async def _upload(self, request: web.Request, entry: Entry):
        form = await read_form(request, self.service.config)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        entry.note(voice=fields.get("name", ""))
        consent = upload_record(_consent_fields(fields), "zero-shot upload (HTTP)", "consent")
        clip = form.get("audio")
        if not isinstance(clip, web.FileField):
            raise InvalidInput("the form needs the clip as a file field `audio`", "audio")
        data = clip.file.read()
        audio, rate = _decode_clip(data, fields.get("encoding", "wav"), fields.get("sample_rate", ""))
        return await self.service.admin.add_reference_voice(
            fields.get("name", ""), fields.get("base_voice", ""), audio, rate, fields.get("transcript", ""),
            fields.get("language", "auto"), consent, fields.get("replace", "") in ("1", "true"), entry)

    def _catalog(self) -> list[dict]:
        from gsvd.engine.bundle import list_bundles

        loaded = self.service.engine.voices()
        rows = [self._row(v) for v in loaded]
        paths = {Path(v.path).resolve() for v in loaded if v.path}
        root = self.service.config.voices_dir
        for path in list_bundles(root) if root else []:
            if path.resolve() in paths:
                continue
            try:
                facts = self._manifest(path)
            except GsvdError as exc:
                rows.append({"name": path.name, "loaded": False, "bundle_path": path.name,
                             "error": message_for(exc, self.service.hide)})
                continue
            rows.append({**facts, "loaded": False, "source": "bundle", "bundle_path": path.name})
        return sorted(rows, key=lambda r: (not r["loaded"], r["name"]))

    def _row(self, v) -> dict:
        """A loaded voice, with the consent record it was loaded with (VoiceAdmin)."""
        row = {"name": v.name, "version": v.version, "model_id": v.model_id, "languages": list(v.languages),
               "reference_text": v.reference_text, "reference_language": v.reference_language,
               "sample_rate_hz": v.sample_rate, "loaded": True, "consent": self.service.admin.consent(v.name)}
        if not v.path:
            return {**row, "source": "upload", "bundle_path": None}
        return {**row, "source": "bundle", "bundle_path": self._relative(Path(v.path))}

    def _manifest(self, path: Path) -> dict:
        """What the console shows of a bundle, from its voice.toml (no hashing), cached by mtime."""
        from gsvd.engine.bundle import MANIFEST, load_bundle

        try:
            mtime = (path / MANIFEST).stat().st_mtime_ns
        except OSError:
            raise BundleError(f"{path} has no readable {MANIFEST}") from None
        cached = self._manifests.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        b = load_bundle(path, verify=False)
        weights = sum(int(b.files[r].get("bytes", 0)) for r in ("gpt", "sovits") if r in b.files)
        facts = {"name": b.name, "version": b.version, "model_id": b.model_id, "languages": list(b.languages),
                 "reference_text": b.reference_text, "reference_language": b.reference_language,
                 "sample_rate_hz": b.sample_rate, "consent": b.consent, "weights_bytes": weights}
        self._manifests[path] = (mtime, facts)
        return facts

    def _relative(self, path: Path) -> str | None:
        root = self.service.config.voices_dir
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix() if root else None
        except ValueError:
            return None

    def _resident(self) -> list[dict]:
        """Each loaded model: id, version, its voices and the bytes of its weight files (from a bundle of it)."""
        engine = self.service.engine
        paths = {v.model_id: Path(v.path) for v in engine.voices() if v.path}
        rows = []
        for m in engine.info()["models"]:
            weights = None
            if m["model_id"] in paths:
                try:
                    weights = self._manifest(paths[m["model_id"]])["weights_bytes"]
                except GsvdError:
                    weights = None
            rows.append({**m, "weights_bytes": weights})
        return rows


_CONSENT_FORM = {"consent_speaker": "speaker", "consent_use": "use", "consent_date": "date", "consent_by": "recorded_by",
                 "consent_recorded_by": "recorded_by", "consent_statement": "statement"}


def _consent_fields(form: dict[str, str]) -> dict[str, str]:
    """An upload form's consent record fields (see the module docstring); never read as a file path."""
    text = form.get("consent", "").strip()
    values = parse_pairs(text) if structured(text) else ({"statement": text} if text else {})
    values.update({name: form[key].strip() for key, name in _CONSENT_FORM.items() if form.get(key, "").strip()})
    return values


async def read_body(request: web.Request, config: DaemonConfig) -> bytes:
    """The whole body, within the size limit (TooLarge: 413) and `body_timeout_s` (RequestTimeout: 408)."""
    return await _bounded(request.read(), config)


async def read_json(request: web.Request, config: DaemonConfig) -> dict:
    """The body as a JSON object (`validate.json_object`: UTF-8, no NaN, nesting refused)."""
    return validate.json_object(await read_body(request, config), "body")


async def read_form(request: web.Request, config: DaemonConfig):
    """A multipart form (aiohttp's MultiDictProxy), bounded like `read_body`; broken framing or text is an
    InvalidInput naming what is wrong."""
    try:
        return await _bounded(request.post(), config)
    except (ValueError, LookupError) as exc:  # no boundary, bad UTF-8, an unknown charset (LookupError), no end
        raise InvalidInput(f"the body is not a valid multipart form ({type(exc).__name__}: {exc})"[:300],
                           "body") from None


async def _bounded(read, config: DaemonConfig):
    try:
        async with asyncio.timeout(config.body_timeout_s):
            return await read
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {config.body_timeout_s:g} s", "body") from None
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is larger than the limit of {config.max_message_mb} MB", "body") from None
    except http_exceptions.HttpProcessingError as exc:  # a broken chunked encoding, a body cut short
        raise InvalidInput(f"the body could not be read ({exc.message})"[:300], "body") from None


def _form_rate(text: str) -> int:
    """A form's `sample_rate` (the raw-PCM upload's rate); checked by `validate.reference_format` later."""
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"sample_rate must be an integer for raw PCM; got {text[:40]!r}", "sample_rate") from None


def _decode_clip(data: bytes, encoding: str, sample_rate: str) -> tuple[np.ndarray, int]:
    """The uploaded clip as float32 mono/[channels, samples] + its rate. Raw PCM goes through the same
    decoder as gRPC's ReferenceUpload; a file is read with soundfile (WAV, FLAC, OGG) after its header passed
    `validate.reference_format`, and never past the longest clip allowed (see the module docstring)."""
    if not data:
        raise InvalidInput("the audio file is empty", "audio")
    if encoding in _RAW_ENCODINGS:
        rate = _form_rate(sample_rate)
        validate.reference_format(rate, 1, None, _FORM_FIELDS)  # the rate first: the proto field is an int32
        up = pb.ReferenceUpload(audio=data, encoding=_RAW_ENCODINGS[encoding], sample_rate_hz=rate)
        return convert.upload_audio(up), rate
    if encoding != "wav":
        raise InvalidInput("encoding must be wav (a WAV/FLAC/OGG file), pcm_f32le or pcm_s16le", "encoding")
    import soundfile as sf

    try:
        clip = sf.SoundFile(io.BytesIO(data))
    except (RuntimeError, TypeError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        raise InvalidInput(f"the audio file could not be read as WAV, FLAC or OGG ({exc})"[:300], "audio") from None
    with clip:
        rate, channels = clip.samplerate, clip.channels
        declared = clip.frames if 0 <= clip.frames < 1 << 62 else None  # a stream's unknown length: huge
        validate.reference_format(rate, channels, declared, _FORM_FIELDS)  # what the header declares
        most = validate.reference_frames(rate)
        try:
            pcm = clip.read(frames=most + 1, dtype="float32", always_2d=True)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the audio file could not be decoded ({exc})"[:300], "audio") from None
    validate.reference_format(rate, channels, len(pcm), _FORM_FIELDS)  # what it holds (a header may lie)
    return np.ascontiguousarray(pcm.T), int(rate)


def gpu_memory(device: str) -> dict | None:
    """Name and memory of the daemon's GPU (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = torch.device(device).index or 0
    free, total = torch.cuda.mem_get_info(index)
    return {"name": torch.cuda.get_device_name(index), "total_bytes": total, "free_bytes": free,
            "allocated_bytes": torch.cuda.memory_allocated(index), "reserved_bytes": torch.cuda.memory_reserved(index)}


def metrics_summary(registry) -> dict:
    """The daemon's Prometheus numbers that matter to a person watching it."""
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}

    def value(name: str) -> float:
        return float(samples.get((name, ()), 0.0))

    errors = {f"{dict(k)['method']}/{dict(k)['code']}": int(v) for (n, k), v in samples.items()
              if n == "gsvd_errors_total"}
    return {"first_audio_s": _histogram(samples, "gsvd_time_to_first_audio_seconds"),
            "real_time_factor": _histogram(samples, "gsvd_real_time_factor"),
            "requests": int(value("gsvd_requests_total")), "underruns": int(value("gsvd_underruns_total")),
            "active_streams": int(value("gsvd_active_streams")), "errors": errors}


def _histogram(samples: dict, name: str) -> dict:
    buckets = sorted(((float(dict(k)["le"]), int(v)) for (n, k), v in samples.items() if n == f"{name}_bucket"))
    count = int(samples.get((f"{name}_count", ()), 0))
    return {"buckets": [[le if math.isfinite(le) else None, c] for le, c in buckets], "count": count,
            "sum": float(samples.get((f"{name}_sum", ()), 0.0)),
            "p50": bucket_quantile(buckets, 0.5), "p95": bucket_quantile(buckets, 0.95)}


def bucket_quantile(buckets: list[tuple[float, int]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket holding the q-th observation; the upper
    bound of the last finite bucket when it falls in +Inf; None without observations."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return None
    rank, lower, below = q * total, 0.0, 0
    for le, cum in buckets:
        if cum >= rank:
            if not math.isfinite(le):
                return lower
            return lower + (le - lower) * ((rank - below) / (cum - below) if cum > below else 1.0)
        lower, below = le, cum
    return lower

