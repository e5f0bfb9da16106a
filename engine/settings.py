"""The engine's one configuration, `RuntimeConfig`, and the one registry of its `GSVD_*` variables.

Every setting is a field here, with its default and what it means; its environment variable is `GSVD_` and the
field's name in capitals (`GSVD_CUDA_GRAPHS`, `GSVD_CHUNK_POLICY`, ...). The object is built once at the edge
(`Engine(...)` from its arguments and the environment; `gsvd serve` from its TOML table, the environment and its
flags) and passed down whole: nothing below the engine's constructor reads the environment. A bad value is an
`InvalidInput` naming the variable, at start-up. Experiments that were settled (chunk slack, passes in flight,
fp16 content encoder, ...) are not settings: their code paths are gone and `benchmarks/HISTORY.md` keeps why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from gsvd.engine.errors import InvalidInput

if TYPE_CHECKING:
    from gsvd.engine.runtime.chunking import ChunkPolicy

PREFIX = "GSVD_"
DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("auto", "torch", "tensorrt")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _setting(default: Any, meaning: str) -> Any:
    return field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class RuntimeConfig:
    """How the engine runs. Build with `RuntimeConfig.load(...)` (defaults < table < environment < overrides)
    or directly (defaults < arguments)."""

    device: str = _setting("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    dtype: str = _setting("auto", "GPT weights: auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16")
    max_streams: int = _setting(64, "streams decoded at once across all models (the slots of the KV pool that "
                                    "models of one GPT shape share; fewer when the memory budget holds fewer)")
    queue_limit: int = _setting(256, "requests waiting for a slot before new ones are refused")
    max_len: int = _setting(2048, "KV-cache positions per stream (reference + text phones + prompt + generated "
                                  "tokens); with max_streams it sets the KV pool's memory")
    backend: str = _setting("auto", "GPT decode step on CUDA: auto (a fresh TensorRT engine in the bundle, else "
                                    "torch), torch, or tensorrt (an error when the engine cannot be used)")
    cuda_graphs: bool = _setting(True, "on CUDA: prefill, decode step, content encoder and vocoder replayed from "
                                       "CUDA graphs captured at voice load (false: eager, the reference path)")
    decode_kernels: bool = _setting(True, "Triton kernels in the graphed decode step (false: torch ops, as when "
                                          "Triton is missing or a kernel does not compile)")
    chunk_policy: str = _setting("6,2,48", "audio chunk sizes in tokens: first,growth[,largest] (25 tokens = 1 s)")
    switch_interval: float = _setting(0.0005, "on CUDA: the interpreter's GIL switch interval, seconds (0: leave "
                                              "it as it is)")
    tick_stats: bool = _setting(False, "count per-tick scheduler statistics (Engine.tick_stats(), the daemon's "
                                       "metrics); off costs nothing")
    gpu_memory_fraction: float = _setting(0.9, "on CUDA: share of the GPU's memory the runtime may hold (model "
                                               "weights, KV pools, graph templates); a load past it evicts idle "
                                               "models' weights to host memory, least recently used first")
    gpu_memory_gib: float = _setting(0.0, "the same budget in GiB (0: gpu_memory_fraction on CUDA, none on CPU)")
    kv_cache_gib: float = _setting(0.0, "GiB of a KV pool (0: max_streams slots, within 3/4 of the budget left "
                                        "when the pool is made)")
    lanes: int = _setting(2, "CUDA streams for the GPT work and for the chunk decodes each, so the work of different "
                             "models overlaps (a second lane's graphs are captured once a second model is resident)")
    graphs_at_load: bool = _setting(False, "on CUDA: capture every graph before a voice load returns (else in the "
                                           "background while the model serves from its plain path)")
    triton_cache: str = _setting("", "folder of Triton's compiled kernels, kept across restarts (gsvd serve and "
                                     "Engine: $XDG_CACHE_HOME/gsvd/triton by default; empty: Triton's own default)")

    def __post_init__(self) -> None:
        _check(self.dtype in DTYPES, "dtype", f"one of {', '.join(DTYPES)}", self.dtype)
        _check(self.backend in BACKENDS, "backend", f"one of {', '.join(BACKENDS)}", self.backend)
        for name in ("max_streams", "queue_limit", "max_len", "lanes"):
            _check(getattr(self, name) >= 1, name, "at least 1", getattr(self, name))
        _check(0 < self.gpu_memory_fraction <= 1, "gpu_memory_fraction", "in (0, 1]", self.gpu_memory_fraction)
        for name in ("gpu_memory_gib", "kv_cache_gib"):
            _check(getattr(self, name) >= 0, name, "a number of GiB >= 0", getattr(self, name))
        _check(self.switch_interval >= 0, "switch_interval", "a number of seconds >= 0", self.switch_interval)
        self.policy()  # a bad chunk policy is an error now, not at voice load

    def policy(self) -> ChunkPolicy:
        from gsvd.engine.runtime.chunking import ChunkPolicy

        try:
            return ChunkPolicy.parse(self.chunk_policy)
        except ValueError as exc:
            raise InvalidInput(f"{PREFIX}CHUNK_POLICY: {exc}", "chunk_policy") from None

    def with_overrides(self, **values: object) -> RuntimeConfig:
        """A copy with these settings (values as typed or as text), checked."""
        return replace(self, **_parsed(values, "arguments"))

    @classmethod
    def load(cls, table: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
             **overrides: object) -> RuntimeConfig:
        """defaults < `table` (e.g. a TOML table) < `env` (`GSVD_*`; the process environment when None) <
        `overrides` (None values ignored). Unknown keys in `table` are errors; unknown `GSVD_*` variables are
        left to their owners (the daemon's own settings)."""
        env = os.environ if env is None else env
        values = _parsed(dict(table or {}), "config")
        values |= _parsed({f.name: env[variable(f.name)] for f in fields(cls) if variable(f.name) in env},
                          "environment")
        values |= _parsed({k: v for k, v in overrides.items() if v is not None}, "arguments")
        values.setdefault("triton_cache", default_triton_cache(env))
        return cls(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def registry(cls) -> list[tuple[str, object, str]]:
        """(variable, default, meaning) of every setting: the table the docs print."""
        return [(variable(f.name), f.default if f.default is not MISSING else None, f.metadata["meaning"])
                for f in fields(cls)]


def default_triton_cache(env: Mapping[str, str]) -> str:
    """Where compiled Triton kernels are kept unless set: the gsvd cache folder ($XDG_CACHE_HOME/gsvd, else
    ~/.cache/gsvd), `triton`."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gsvd", "triton")


def variable(name: str) -> str:
    """The environment variable of a setting: GSVD_ + its name in capitals."""
    return PREFIX + name.upper()


def _parsed(values: Mapping[str, object], source: str) -> dict[str, object]:
    kinds = {f.name: f.type for f in fields(RuntimeConfig)}
    out = {}
    for key, value in values.items():
        if key not in kinds:
            raise InvalidInput(f"{source}: unknown runtime setting {key!r}", key)
        out[key] = _parse(key, kinds[key], value)
    return out


def _parse(key: str, kind: object, value: object) -> object:
    kind = str(kind)
    text = str(value).strip().lower()
    if kind == "bool":
        if isinstance(value, bool) or text in _TRUE | _FALSE:
            return value if isinstance(value, bool) else text in _TRUE
        raise InvalidInput(f"{variable(key)} must be true or false (1/0); got {value!r}", key)
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{variable(key)} must be a {kind}; got {value!r}", key) from None


def _check(ok: bool, key: str, want: str, value: object) -> None:
    if not ok:
        raise InvalidInput(f"{variable(key)} must be {want}; got {value!r}", key)
