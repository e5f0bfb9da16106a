from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    PCM_S16LE: _ClassVar[AudioEncoding]
    PCM_F32LE: _ClassVar[AudioEncoding]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
PCM_S16LE: AudioEncoding
PCM_F32LE: AudioEncoding

class SynthesisOptions(_message.Message):
    __slots__ = ("top_k", "top_p", "temperature", "repetition_penalty", "noise_scale", "speed", "seed", "language", "split_method", "max_new_tokens")
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    NOISE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_METHOD_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    top_k: int
    top_p: float
    temperature: float
    repetition_penalty: float
    noise_scale: float
    speed: float
    seed: int
    language: str
    split_method: str
    max_new_tokens: int
    def __init__(self, top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., temperature: _Optional[float] = ..., repetition_penalty: _Optional[float] = ..., noise_scale: _Optional[float] = ..., speed: _Optional[float] = ..., seed: _Optional[int] = ..., language: _Optional[str] = ..., split_method: _Optional[str] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class OutputConfig(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "mouth_envelope")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MOUTH_ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    mouth_envelope: bool
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., mouth_envelope: _Optional[bool] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("text", "voice", "options", "output", "request_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    voice: str
    options: SynthesisOptions
    output: OutputConfig
    request_id: str
    def __init__(self, text: _Optional[str] = ..., voice: _Optional[str] = ..., options: _Optional[_Union[SynthesisOptions, _Mapping]] = ..., output: _Optional[_Union[OutputConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StreamingConfig(_message.Message):
    __slots__ = ("voice", "options", "output", "request_id")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    voice: str
    options: SynthesisOptions
    output: OutputConfig
    request_id: str
    def __init__(self, voice: _Optional[str] = ..., options: _Optional[_Union[SynthesisOptions, _Mapping]] = ..., output: _Optional[_Union[OutputConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TextInput(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class StreamingSynthesizeRequest(_message.Message):
    __slots__ = ("config", "input")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    config: StreamingConfig
    input: TextInput
    def __init__(self, config: _Optional[_Union[StreamingConfig, _Mapping]] = ..., input: _Optional[_Union[TextInput, _Mapping]] = ...) -> None: ...

class AudioFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate_hz", "channels", "label")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    encoding: AudioEncoding
    sample_rate_hz: int
    channels: int
    label: AiLabel
    def __init__(self, encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., channels: _Optional[int] = ..., label: _Optional[_Union[AiLabel, _Mapping]] = ...) -> None: ...

class AiLabel(_message.Message):
    __slots__ = ("ai_generated", "voice", "generator", "created", "producer", "produce_id", "watermark", "statement")
    AI_GENERATED_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    PRODUCE_ID_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    ai_generated: bool
    voice: str
    generator: str
    created: str
    producer: str
    produce_id: str
    watermark: str
    statement: str
    def __init__(self, ai_generated: _Optional[bool] = ..., voice: _Optional[str] = ..., generator: _Optional[str] = ..., created: _Optional[str] = ..., producer: _Optional[str] = ..., produce_id: _Optional[str] = ..., watermark: _Optional[str] = ..., statement: _Optional[str] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("audio", "sequence", "offset_samples", "is_final", "segment", "text", "envelope", "envelope_hop_ms", "timings")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_HOP_MS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    sequence: int
    offset_samples: int
    is_final: bool
    segment: int
    text: str
    envelope: _containers.RepeatedScalarFieldContainer[float]
    envelope_hop_ms: int
    timings: _containers.RepeatedCompositeFieldContainer[WordTiming]
    def __init__(self, audio: _Optional[bytes] = ..., sequence: _Optional[int] = ..., offset_samples: _Optional[int] = ..., is_final: _Optional[bool] = ..., segment: _Optional[int] = ..., text: _Optional[str] = ..., envelope: _Optional[_Iterable[float]] = ..., envelope_hop_ms: _Optional[int] = ..., timings: _Optional[_Iterable[_Union[WordTiming, _Mapping]]] = ...) -> None: ...

class WordTiming(_message.Message):
    __slots__ = ("text", "start_s", "end_s")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    text: str
    start_s: float
    end_s: float
    def __init__(self, text: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("start", "audio", "request_id")
    START_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    start: AudioFormat
    audio: AudioChunk
    request_id: str
    def __init__(self, start: _Optional[_Union[AudioFormat, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Voice(_message.Message):
    __slots__ = ("name", "version", "model_id", "languages", "reference_text", "reference_language", "sample_rate_hz", "consent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_TEXT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    model_id: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    reference_text: str
    reference_language: str
    sample_rate_hz: int
    consent: ConsentRecord
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., model_id: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ..., reference_text: _Optional[str] = ..., reference_language: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., consent: _Optional[_Union[ConsentRecord, _Mapping]] = ...) -> None: ...

class ConsentRecord(_message.Message):
    __slots__ = ("speaker", "use", "date", "recorded_by", "statement", "recorded_at", "source")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    USE_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_BY_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    speaker: str
    use: str
    date: str
    recorded_by: str
    statement: str
    recorded_at: str
    source: str
    def __init__(self, speaker: _Optional[str] = ..., use: _Optional[str] = ..., date: _Optional[str] = ..., recorded_by: _Optional[str] = ..., statement: _Optional[str] = ..., recorded_at: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ListVoicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListVoicesResponse(_message.Message):
    __slots__ = ("voices",)
    VOICES_FIELD_NUMBER: _ClassVar[int]
    voices: _containers.RepeatedCompositeFieldContainer[Voice]
    def __init__(self, voices: _Optional[_Iterable[_Union[Voice, _Mapping]]] = ...) -> None: ...

class GetVoiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReferenceUpload(_message.Message):
    __slots__ = ("base_voice", "audio", "encoding", "sample_rate_hz", "transcript", "language", "consent")
    BASE_VOICE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    base_voice: str
    audio: bytes
    encoding: AudioEncoding
    sample_rate_hz: int
    transcript: str
    language: str
    consent: ConsentRecord
    def __init__(self, base_voice: _Optional[str] = ..., audio: _Optional[bytes] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate_hz: _Optional[int] = ..., transcript: _Optional[str] = ..., language: _Optional[str] = ..., consent: _Optional[_Union[ConsentRecord, _Mapping]] = ...) -> None: ...

class LoadVoiceRequest(_message.Message):
    __slots__ = ("name", "bundle_path", "reference", "replace")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PATH_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    name: str
    bundle_path: str
    reference: ReferenceUpload
    replace: bool
    def __init__(self, name: _Optional[str] = ..., bundle_path: _Optional[str] = ..., reference: _Optional[_Union[ReferenceUpload, _Mapping]] = ..., replace: _Optional[bool] = ...) -> None: ...

class UnloadVoiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadVoiceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "backend", "device", "dtype", "limits", "models", "sample_rate_hz", "active_streams", "queued")
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    version: str
    backend: str
    device: str
    dtype: str
    limits: _containers.ScalarMap[str, int]
    models: _containers.RepeatedScalarFieldContainer[str]
    sample_rate_hz: int
    active_streams: int
    queued: int
    def __init__(self, version: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., limits: _Optional[_Mapping[str, int]] = ..., models: _Optional[_Iterable[str]] = ..., sample_rate_hz: _Optional[int] = ..., active_streams: _Optional[int] = ..., queued: _Optional[int] = ...) -> None: ...
