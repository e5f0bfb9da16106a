"""The public synthesis API: voices in, streams of audio chunks out.

`Engine` owns the loaded voices, the text frontend and the runtime (KV cache,
scheduler, chunked decode). It turns text into phone ids and BERT features,
submits one runtime request per sentence and relabels the PCM pieces the
runtime yields as `AudioChunk`s with sequence numbers and offsets.

It knows nothing about gRPC or the daemon; it is thread-safe: many threads may
call `stream` at once and the runtime batches them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from gsvd.engine.errors import Cancelled, InvalidInput, VoiceNotFound
from gsvd.engine.preparer import Job
from gsvd.engine.provenance.watermark import StreamMark, WatermarkConfig, Watermarker
from gsvd.engine.settings import RuntimeConfig
from gsvd.engine.types import SAMPLE_RATE, AudioChunk, PhoneTiming, SynthesisOptions

if TYPE_CHECKING:
    from gsvd.engine.runtime import SynthRequest
    from gsvd.engine.runtime.seams import StepBackend
    from gsvd.engine.text import Lexicon, TextFrontend

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5000  # the one text limit: the daemon's default and ceiling for every transport


@dataclass(frozen=True)
class Voice:
    """A loaded voice: a reference (timbre + prompt) bound to a model."""

    name: str
    version: str
    model_id: str
    """Voices with the same model_id share one set of weights (and batch together)."""
    languages: tuple[str, ...]
    reference_text: str
    reference_language: str
    sample_rate: int = SAMPLE_RATE
    path: str | None = None
    defaults: SynthesisOptions = field(default_factory=SynthesisOptions)
    """The voice's own default options (its bundle's voice.toml `[defaults]`); a request's options replace them."""


@dataclass
class _VoiceState:
    voice: Voice
    ref_phone_ids: torch.Tensor  # [Nr] long
    ref_bert: torch.Tensor  # [1024, Nr]
    prompt_tokens: torch.Tensor  # [Ty] long
    ge: torch.Tensor  # [gin, 1] on the runtime device
    symbols_version: str = "v2"
    lexicon: Lexicon | None = None  # per-voice pronunciation overrides (bundle's lexicon.toml / .csv)


def _user_path(path: str | Path | None) -> Path | None:
    """A path as the user wrote it: `~` is their home folder (None and "" stay None)."""
    return Path(path).expanduser() if path else None


@dataclass
class _ModelState:
    model_id: str
    version: str
    gpt: torch.nn.Module
    sovits: torch.nn.Module
    voices: set[str] = field(default_factory=set)


class Engine:
    """Loads voices and streams their speech.

    Args:
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N".
        dtype: "auto" (fp16/bf16 on GPU, fp32 on CPU), "float32", "float16", "bfloat16".
        max_streams: concurrent streams (KV-cache slots) per model.
        queue_limit: requests waiting for a slot before admission refuses new ones.
        runtime: the whole runtime configuration (`gsvd.engine.settings.RuntimeConfig`); None: built from the
            `GSVD_*` environment. The four arguments above, when given, override its fields.
        bert_folder: local chinese-roberta-wwm-ext-large folder (BERT features for zh).
        hubert_folder: local chinese-hubert-base folder (only for voices made from an upload).
        sv_model: ERes2NetV2 checkpoint (only for v2Pro voices made from an upload).
        lexicon: a user pronunciation lexicon (TOML or CSV) applied to every voice.
        frontend_workers: processes that run the text analysis (G2P) of concurrent requests, so that a
            burst of requests does not hold the GIL the scheduler needs; a lone request runs inline.
            None: half the CPU cores (up to 8) on a GPU, none on CPU.
        watermark: mark every stream's audio with this inaudible watermark as it is made
            (``gsvd.engine.provenance``; same samples chunked or whole); None: unmarked.
        pinned_voices: voices whose models stay on the device whatever the memory pressure (also
            ``load_voice(..., pinned=True)`` and ``pin_voice``); other idle models may be evicted to host memory,
            least recently used first, and come back on their next request.
    """

    def __init__(
        self,
        device: str | None = None,
        dtype: str | None = None,
        *,
        max_streams: int | None = None,
        queue_limit: int | None = None,
        runtime: RuntimeConfig | None = None,
        bert_folder: str | Path | None = None,
        hubert_folder: str | Path | None = None,
        sv_model: str | Path | None = None,
        lexicon: str | Path | None = None,
        frontend_workers: int | None = None,
        watermark: WatermarkConfig | None = None,
        pinned_voices: Iterable[str] = (),
    ) -> None:
        from gsvd.engine.preparer import RequestPreparer
        from gsvd.engine.runtime import Runtime
        from gsvd.engine.text import Lexicon, TextFrontend
        from gsvd.engine.text.pool import AnalysisPool, default_workers

        given = {"device": device, "dtype": dtype, "max_streams": max_streams, "queue_limit": queue_limit}
        if runtime is None:  # the edge: the only place below the caller that reads the environment
            self.config = RuntimeConfig.load(env=os.environ, **given)
        else:
            self.config = runtime.with_overrides(**{k: v for k, v in given.items() if v is not None})
        self._watermarker = Watermarker(watermark) if watermark is not None else None
        self._runtime = Runtime(self.config, watermark=self._watermarker.pattern if self._watermarker else None)
        rt_info = self._runtime.info()
        self.device = torch.device(str(rt_info["device"]))
        bert_folder, hubert_folder, sv_model, lexicon = map(_user_path, (bert_folder, hubert_folder, sv_model, lexicon))
        self._lexicon = Lexicon.load(lexicon) if lexicon else None
        self._frontend = TextFrontend(
            version="v2", bert_folder=bert_folder, device=str(self.device), lexicon=self._lexicon
        )
        self._frontend_v1: TextFrontend | None = None
        self._bert_folder = bert_folder
        self._hubert_folder = hubert_folder
        self._sv_model = sv_model
        self._hubert = None
        self._sv = None
        self._voices: dict[str, _VoiceState] = {}
        self._models: dict[str, _ModelState] = {}
        self._lock = threading.RLock()  # held briefly: the voice and model tables
        self._loads = threading.Lock()  # voice loads, one at a time (held while a model is built)
        self._limits = {"max_streams": self.config.max_streams, "queue_limit": self.config.queue_limit,
                        "max_text_chars": MAX_TEXT_CHARS}
        self._closed = False
        self._frontend.phonemize("你好 hello", "auto")  # load dictionaries now, not in the first request
        workers = default_workers(str(self.device)) if frontend_workers is None else frontend_workers
        self._analysis = AnalysisPool(workers)  # concurrent requests' G2P in worker processes
        # one thread builds every caller's requests (see engine/preparer.py)
        self._preparer = RequestPreparer(self._analysis, self._runtime.submit_many)
        self._pinned_voices = frozenset(pinned_voices)

    # ------------------------------------------------------------------ voices

    def load_voice(
        self, path: str | Path, name: str | None = None, *, pinned: bool | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Voice:
        """Load a voice bundle directory; models are shared by weight hash.

        The slow steps (checksums, building the model and making it resident, which on a GPU captures
        its graphs) run without the engine's lock, so listing voices and streams of other voices go on
        meanwhile; loads run one at a time. `progress(stage)` is told "verified", "model" and
        "reference" as each step ends; the voice is registered after the last one. `pinned`: its model is
        never evicted from the device (None: when the voice is one of the engine's `pinned_voices`);
        ResourceExhausted when the memory budget cannot hold the model.
        """
        from gsvd.engine.bundle import load_bundle

        report = progress or _no_progress
        with self._loads:
            bundle = load_bundle(Path(path).expanduser())  # "~/voices/alice" as in the README
            voice_name = name or bundle.name
            pin = pinned if pinned is not None else voice_name in self._pinned_voices
            report("verified")
            with self._lock:
                model = self._models.get(bundle.model_id)
            fresh = model is None
            if model is None:
                model = self._build_model(bundle, pin)
            elif pin:
                self._runtime.pin(model.model_id)
            try:
                report("model")
                state = self._bundle_state(voice_name, model, bundle)
                report("reference")
                with self._lock:
                    if fresh:
                        self._models[model.model_id] = model
                    elif self._models.get(model.model_id) is not model:
                        raise VoiceNotFound(f"the model of voice {voice_name!r} was unloaded during the load")
                    self._replace_voice(voice_name, state)
                    return state.voice
            except BaseException:
                if fresh:  # a model nobody uses must not stay resident
                    self._runtime.remove_model(model.model_id)
                raise

    def add_voice_from_reference(
        self,
        name: str,
        base_voice: str,
        audio: np.ndarray,
        sample_rate: int,
        text: str,
        language: str,
    ) -> Voice:
        """Make a zero-shot voice from a 3-10 s clip + transcript on an already-loaded model."""
        from gsvd.engine.bundle import validate_voice_name
        from gsvd.engine.reference import prepare_reference

        validate_voice_name(name)
        if not text.strip():
            raise InvalidInput("reference text is empty", "text")
        with self._lock:
            base = self._voice_state_of(base_voice)
            model = self._models[base.voice.model_id]
        with self._runtime.using(model.model_id):  # its weights on the device meanwhile
            feats = prepare_reference(
                np.asarray(audio, dtype=np.float32),
                sample_rate,
                sovits=model.sovits,
                hubert=self._get_hubert(),
                sv=self._get_sv() if model.version in ("v2Pro", "v2ProPlus") else None,
            )
        fe = self._frontend_for(base.symbols_version)
        ids, bert, _ = fe.features(_prompt_text(text, language), _frontend_lang(language))
        with self._lock:
            if model.model_id not in self._models:
                raise VoiceNotFound(f"the model of voice {base_voice!r} was unloaded meanwhile")
            state = self._voice_state(
                name,
                model,
                ref_phone_ids=ids,
                ref_bert=bert,
                prompt_tokens=feats.prompt_tokens,
                spec=feats.spec,
                sv_emb=feats.sv_emb,
                reference_text=text,
                reference_language=language,
                languages=base.voice.languages,
                path=None,
                defaults=base.voice.defaults,
            )
            self._replace_voice(name, state)
            return state.voice

    def unload_voice(self, name: str) -> None:
        """Forget a voice; its model is freed when no voice uses it any more. It does not wait for a load in
        progress (a load whose model was freed meanwhile fails with VoiceNotFound)."""
        with self._lock:
            state = self._voice_state_of(name)
            del self._voices[name]
            model = self._models[state.voice.model_id]
            model.voices.discard(name)
            if not model.voices:
                self._runtime.remove_model(model.model_id)
                del self._models[model.model_id]

    def pin_voice(self, name: str, pinned: bool = True) -> None:
        """Keep the voice's model on the device whatever the memory pressure (or let it be evicted again)."""
        with self._lock:
            self._runtime.pin(self._voice_state_of(name).voice.model_id, pinned)

    def evict_voice(self, name: str) -> bool:
        """Move the voice's model to host memory now, if it is idle and not pinned -> whether it was; its next
        request brings it back (one copy from pinned memory)."""
        with self._lock:
            model_id = self._voice_state_of(name).voice.model_id
        return self._runtime.evict(model_id)

    def ready(self, timeout: float | None = None) -> bool:
        """Wait until the CUDA graphs queued for the loaded voices are captured (models serve before: from their
        plain paths) -> True, or False after `timeout` seconds; True at once without graphs."""
        return self._runtime.wait_graphs(timeout)

    def voices(self) -> list[Voice]:
        with self._lock:
            return [s.voice for s in self._voices.values()]

    def voice(self, name: str) -> Voice:
        with self._lock:
            return self._voice_state_of(name).voice

    # --------------------------------------------------------------- synthesis

    def stream(
        self,
        text: str,
        voice: str,
        options: SynthesisOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Iterator[AudioChunk]:
        """Synthesize `text`; yields chunks as soon as each can be played.

        `options`: None for the voice's defaults (`Voice.defaults`, see `options_for`). `cancel` (set from
        any thread) or `deadline` (time.monotonic()) stop the stream within one decode step and raise
        `Cancelled`. Closing the iterator early frees the runtime slot too.
        """
        _check_text(text)
        state = self.voice_state(voice)
        opts = (options or state.voice.defaults).validate()
        pieces = self._frontend_for(state.symbols_version).split(text, opts.split_method)
        if not pieces:
            raise InvalidInput("text has nothing to speak (empty after normalization)", "text")
        return self._stream_pieces(iter(pieces), state, opts, cancel, deadline)

    def stream_text(
        self,
        pieces: Iterable[str],
        voice: str,
        options: SynthesisOptions | None = None,
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> Iterator[AudioChunk]:
        """Synthesize text that arrives in pieces (e.g. LLM tokens).

        A sentence is spoken as soon as it is complete (ends in sentence
        punctuation) or the input ends; audio order follows text order.
        """
        state = self.voice_state(voice)
        opts = (options or state.voice.defaults).validate()
        fe = self._frontend_for(state.symbols_version)
        sentences = _sentences_from_pieces(pieces, fe, opts.split_method)
        return self._stream_pieces(sentences, state, opts, cancel, deadline)

    def options_for(self, voice: str, **overrides: object) -> SynthesisOptions:
        """The voice's default options with these fields replaced (None values ignored), validated: what a
        request that sets only some options should use."""
        return self.voice(voice).defaults.with_overrides(**overrides)

    def synthesize(
        self, text: str, voice: str, options: SynthesisOptions | None = None
    ) -> tuple[np.ndarray, int]:
        """Whole-utterance synthesis: the concatenated stream (float32 PCM, rate)."""
        chunks = [c.pcm for c in self.stream(text, voice, options)]
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return pcm, SAMPLE_RATE

    # ------------------------------------------------------------------- state

    def info(self) -> dict:
        import gsvd

        rt = self._runtime.info()
        with self._lock:
            models = [
                {"model_id": m.model_id, "version": m.version, "voices": sorted(m.voices),
                 "resident": self._runtime.resident(m.model_id)}
                for m in self._models.values()
            ]
        return {
            "version": gsvd.__version__,
            "torch": torch.__version__,
            "backend": rt.get("backend"),
            "device": str(rt.get("device")),
            "dtype": str(rt.get("dtype")),
            "limits": dict(self._limits),
            "models": models,
            "sample_rate": SAMPLE_RATE,
        }

    def stats(self) -> dict:
        return dict(self._runtime.stats())

    def tick_stats(self) -> dict | None:
        """The runtime's per-tick scheduler statistics since start, or None when the `tick_stats` setting is
        off (see `Runtime.tick_stats`)."""
        return self._runtime.tick_stats()

    def reload_lexicon(self) -> None:
        """Re-read the global and per-voice lexicon files (no restart needed)."""
        if self._lexicon is not None:
            self._lexicon.reload()
        with self._lock:
            states = list(self._voices.values())
        for state in states:
            if state.lexicon is not None:
                state.lexicon.reload()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._preparer.close()
            self._runtime.close()
            self._analysis.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def voice_state(self, name: str) -> _VoiceState:
        with self._lock:
            return self._voice_state_of(name)

    # --------------------------------------------------------------- internals

    def _stream_pieces(
        self,
        pieces: Iterator[str],
        state: _VoiceState,
        opts: SynthesisOptions,
        cancel: threading.Event | None,
        deadline: float | None,
    ) -> Iterator[AudioChunk]:
        from gsvd.engine.runtime import StreamHandle

        seed = opts.seed if opts.seed is not None and opts.seed >= 0 else int(time.time_ns() % (2**31))
        fe = self._frontend_for(state.symbols_version)
        lang = _frontend_lang(opts.language)
        sequence = 0
        offset = 0
        mark = self._watermarker.stream_mark(state.voice.name) if self._watermarker else None
        closer: AudioChunk | None = None  # a segment's zero-length last chunk (word timings), held until we
        for index, piece in enumerate(pieces):  # know whether it ends the request; audio is never held back
            _check_cancel(cancel, deadline)
            handle = StreamHandle()
            build = partial(self._request, state, opts=replace(opts, seed=seed + index), deadline=deadline,
                            cancel=cancel, mark=mark.at(offset) if mark is not None else None)
            job = Job(piece, lang, fe, fe.lexicon_for(state.lexicon), build, handle, cancel, deadline,
                      first=index == 0)
            self._preparer.put(job)  # analysis, BERT and the runtime request in the preparer's thread
            first, seg_start = True, offset
            try:
                for pcm in _watch(handle, cancel, deadline):
                    if closer is not None:
                        yield closer
                        closer = None
                    pcm = np.asarray(pcm, dtype=np.float32)  # marked by the runtime (`SynthRequest.mark`)
                    yield AudioChunk(pcm=pcm, sample_rate=SAMPLE_RATE, sequence=sequence,
                                     offset=offset, segment=index, text=piece if first else "")
                    first = False
                    sequence += 1
                    offset += len(pcm)
            finally:
                handle.cancel()
            if job.empty:  # nothing to speak in this sentence
                continue
            if closer is not None:
                yield closer
            timings = _word_timings(job.analysis.words, seg_start, offset)
            closer = AudioChunk(np.zeros(0, np.float32), SAMPLE_RATE, sequence, offset, segment=index,
                                text=piece if first else "", timings=timings)
            sequence += 1
        if closer is None:
            closer = AudioChunk(np.zeros(0, np.float32), SAMPLE_RATE, sequence, offset)
        yield replace(closer, is_final=True)

    def _request(self, state: _VoiceState, ids: torch.Tensor, bert: torch.Tensor, opts: SynthesisOptions,
                 deadline: float | None, cancel: threading.Event | None = None,
                 mark: StreamMark | None = None) -> SynthRequest:
        from gsvd.engine.runtime import SynthRequest

        return SynthRequest(
            model_id=state.voice.model_id,
            gpt_phone_ids=torch.cat([state.ref_phone_ids, ids.to(torch.long)]),
            gpt_bert=torch.cat([state.ref_bert, bert.to(state.ref_bert.dtype)], dim=1),
            prompt_tokens=state.prompt_tokens,
            target_phone_ids=ids.to(torch.long),
            ge=state.ge,
            options=opts,
            deadline=deadline,
            cancel=cancel,
            mark=mark,
        )

    def _bundle_state(self, name: str, model: _ModelState, bundle) -> _VoiceState:
        """Voice `name` on `model` from its bundle's reference cache and lexicon (not registered)."""
        ref = bundle.load_reference()
        meta = {"reference_text": bundle.reference_text, "reference_language": bundle.reference_language,
                "languages": tuple(bundle.languages), "path": str(bundle.path), "defaults": bundle.defaults}
        state = self._voice_state(name, model, ref_phone_ids=ref.phone_ids, ref_bert=ref.bert,
                                  prompt_tokens=ref.prompt_tokens, spec=ref.spec, sv_emb=ref.sv_emb, **meta)
        state.lexicon = _bundle_lexicon(Path(bundle.path))
        return state

    def _build_model(self, bundle, pinned: bool = False) -> _ModelState:
        """Build a bundle's model and make it resident in the runtime (registered by the caller)."""
        gpt = bundle.build_gpt(device="cpu")
        sovits = bundle.build_sovits(device="cpu")
        self._runtime.add_model(bundle.model_id, gpt, sovits, backend=self._step_backend(bundle.path), pinned=pinned)
        return _ModelState(bundle.model_id, bundle.version, gpt, sovits)

    def _step_backend(self, bundle_path: str | Path) -> StepBackend | None:
        """Where the decode step may come from a TensorRT engine of the bundle (CUDA, or the `backend` setting
        demanding it: then an unusable engine is an error), the backend that picks it; else None (torch)."""
        mode = self.config.backend
        if mode == "torch" or (self._runtime.device.type != "cuda" and mode != "tensorrt"):
            return None
        from gsvd.trt_build.runtime_backend import TensorRTBackend

        return TensorRTBackend(bundle_path, mode)

    def _voice_state(
        self, name, model: _ModelState, *, ref_phone_ids, ref_bert, prompt_tokens, spec, sv_emb, **meta
    ) -> _VoiceState:
        with torch.inference_mode(), self._runtime.using(model.model_id):  # its weights on the device meanwhile
            spec_t = torch.as_tensor(spec, dtype=torch.float32).unsqueeze(0)
            sv_t = None if sv_emb is None else torch.as_tensor(sv_emb, dtype=torch.float32).reshape(1, -1)
            sovits = model.sovits
            param = next(sovits.ref_enc.parameters())
            ge = sovits.compute_ge(spec_t.to(param.device, param.dtype), None if sv_t is None else sv_t.to(param.device, param.dtype))
        phoneme_vocab = model.gpt.ar_text_embedding.word_embeddings.weight.shape[0]
        voice = Voice(
            name=name,
            version=model.version,
            model_id=model.model_id,
            languages=meta["languages"] or ("zh", "en", "ja"),
            reference_text=meta["reference_text"],
            reference_language=meta["reference_language"],
            path=meta["path"],
            defaults=meta["defaults"],
        )
        return _VoiceState(
            voice=voice,
            ref_phone_ids=torch.as_tensor(ref_phone_ids, dtype=torch.long).reshape(-1),
            ref_bert=torch.as_tensor(ref_bert, dtype=torch.float32),
            prompt_tokens=torch.as_tensor(prompt_tokens, dtype=torch.long).reshape(-1),
            ge=ge[0].float(),
            symbols_version="v1" if phoneme_vocab <= 512 else "v2",
        )

    def _replace_voice(self, name: str, state: _VoiceState) -> None:
        """Register `state` as voice `name` (under the lock; its model is registered already)."""
        old = self._voices.get(name)
        self._voices[name] = state
        self._models[state.voice.model_id].voices.add(name)
        if old is not None and old.voice.model_id != state.voice.model_id:
            prev = self._models.get(old.voice.model_id)
            if prev is not None:
                prev.voices.discard(name)
                if not prev.voices:
                    self._runtime.remove_model(prev.model_id)
                    del self._models[prev.model_id]

    def _voice_state_of(self, name: str) -> _VoiceState:
        try:
            return self._voices[name]
        except KeyError:
            known = ", ".join(sorted(self._voices)) or "none loaded"
            raise VoiceNotFound(f"unknown voice {name!r} (known: {known})") from None

    def _frontend_for(self, version: str) -> TextFrontend:
        if version == "v2":
            return self._frontend
        with self._lock:
            if self._frontend_v1 is None:
                from gsvd.engine.text import TextFrontend

                self._frontend_v1 = TextFrontend(
                    version="v1", bert_folder=self._bert_folder, device=str(self.device), lexicon=self._lexicon
                )
            return self._frontend_v1

    def _get_hubert(self):
        from gsvd.engine.ssl import HubertEncoder

        return self._base_model("_hubert", self._hubert_folder, HubertEncoder.from_folder,
                                "a voice from an uploaded clip needs chinese-hubert-base: run "
                                "`gsvd models fetch chinese-hubert-base` or start with --hubert PATH")

    def _get_sv(self):
        from gsvd.engine.sv import SpeakerEncoder

        return self._base_model("_sv", self._sv_model, SpeakerEncoder.from_file,
                                "a v2Pro voice from an uploaded clip needs the ERes2NetV2 speaker model: run "
                                "`gsvd models fetch sv` or start with --sv-model PATH")

    def _base_model(self, attr: str, path: Path | None, load, missing: str):
        """Load a base model once, on first need; MissingModel names the command that gets it."""
        from gsvd.engine.errors import MissingModel

        with self._lock:
            if getattr(self, attr) is None:
                if path is None:
                    raise MissingModel(missing)
                setattr(self, attr, load(path, device="cpu"))
            return getattr(self, attr)


# ---------------------------------------------------------------------- helpers


def _no_progress(stage: str) -> None:
    """The default `load_voice(progress=...)`: nobody is told."""


def _word_timings(words: list[tuple[str, int]], start: int, end: int) -> tuple[PhoneTiming, ...]:
    """Estimated word timings (seconds from the stream start): the segment's audio split in
    proportion to each word's phone count. GPT-SoVITS predicts no durations, so this is an
    estimate for captions and lip sync, not an alignment."""
    total = sum(n for _, n in words)
    if total == 0 or end <= start:
        return ()
    out, pos = [], float(start)
    for word, n in words:
        step = (end - start) * n / total
        out.append(PhoneTiming(word, pos / SAMPLE_RATE, (pos + step) / SAMPLE_RATE))
        pos += step
    return tuple(out)


def _bundle_lexicon(path: Path):
    """A voice's own lexicon: lexicon.toml or lexicon.csv inside its bundle, if present."""
    from gsvd.engine.text import Lexicon

    for name in ("lexicon.toml", "lexicon.csv"):
        if (path / name).is_file():
            return Lexicon.load(path / name)
    return None


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise InvalidInput("text must be a string", "text")
    if not text.strip():
        raise InvalidInput("text is empty", "text")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(f"text is {len(text)} characters; the limit is {MAX_TEXT_CHARS}", "text")


def _check_cancel(cancel: threading.Event | None, deadline: float | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("request cancelled")
    if deadline is not None and time.monotonic() > deadline:
        raise Cancelled("request deadline exceeded")


def _watch(handle, cancel: threading.Event | None, deadline: float | None) -> Iterator[np.ndarray]:
    """Iterate a runtime handle. The request carries `cancel`, which the scheduler checks every tick (it
    ends the handle with Cancelled), so no thread per stream has to watch it."""
    yield from handle
    _check_cancel(cancel, deadline)


def _frontend_lang(language: str) -> str:
    return language or "auto"


def _prompt_text(text: str, language: str) -> str:
    """Upstream appends a full stop to a prompt text that lacks final punctuation."""
    text = text.strip()
    if text and text[-1] not in "。.!?！？，,…~:：—":
        text += "." if language == "en" else "。"
    return text


_SENTENCE_END = frozenset("。！？!?.…；;\n")


def _last_sentence_end(buffer: str) -> int:
    """Index of the last confirmed sentence end in `buffer`, or -1.

    A '.' is confirmed only when a non-digit follows it (so "3." waiting for
    "14" is not cut); every other end mark is confirmed at once.
    """
    for i in range(len(buffer) - 1, -1, -1):
        ch = buffer[i]
        if ch not in _SENTENCE_END:
            continue
        if ch == "." and (i + 1 == len(buffer) or buffer[i + 1].isdigit()):
            continue
        return i
    return -1


def _sentences_from_pieces(pieces: Iterable[str], fe, method: str) -> Iterator[str]:
    """Assemble streamed text pieces into speakable sentences, in order."""
    buffer = ""
    for piece in pieces:
        if not isinstance(piece, str):
            raise InvalidInput("text pieces must be strings", "text")
        buffer += piece
        if len(buffer) > MAX_TEXT_CHARS:
            raise InvalidInput(f"streamed text exceeds {MAX_TEXT_CHARS} characters", "text")
        cut = _last_sentence_end(buffer)
        if cut >= 0:
            ready, buffer = buffer[: cut + 1], buffer[cut + 1 :]
            yield from fe.split(ready, method)
    if buffer.strip():
        yield from fe.split(buffer, method)


__all__ = ["Engine", "Voice"]
