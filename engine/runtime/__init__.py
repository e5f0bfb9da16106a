"""gsvd.engine.runtime: KV cache, continuous-batching scheduler, chunked SoVITS decode; its seams in `seams`."""

from gsvd.engine.runtime.chunking import ChunkPolicy, StreamDecoder, join_quality
from gsvd.engine.runtime.kv_cache import KVCache
from gsvd.engine.runtime.runtime import Runtime
from gsvd.engine.runtime.stream import StreamHandle, SynthRequest

__all__ = ["ChunkPolicy", "KVCache", "Runtime", "StreamDecoder", "StreamHandle", "SynthRequest", "join_quality"]
