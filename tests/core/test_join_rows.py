"""`chunking.join_rows`: a chunk pass's rows joined (cross-fade with each stream's held-back tail, the next tail held
back) and watermarked on their device, all at once -- checked against doing it one stream at a time on the host."""

from __future__ import annotations

import numpy as np
import torch

from gsvd.engine.provenance import Watermarker
from gsvd.engine.runtime import ChunkPolicy, StreamDecoder
from gsvd.engine.runtime.chunking import join_rows

N = ChunkPolicy().crossfade


def _decoder(mark=None, samples_out: int = 0) -> StreamDecoder:
    d = StreamDecoder(None, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 1, 1), 0.0, 1.0, 0, ChunkPolicy(),
                      mark=mark)
    d.samples_out = samples_out
    return d


def _host_join(audio: np.ndarray, tail: np.ndarray | None, last: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The join, one stream on the host: fade the tail out over the chunk's start, hold the next tail back."""
    if tail is not None:
        if len(audio) >= N:
            fade = np.linspace(0.0, 1.0, N, dtype=np.float32)
            audio = np.concatenate([tail * (1 - fade) + audio[:N] * fade, audio[N:]])
        else:
            audio = tail
    if not last and len(audio) > N:
        return audio[:-N], audio[-N:]
    return audio, None


def test_rows_join_like_one_stream_at_a_time() -> None:
    rng = np.random.default_rng(0)
    wav = rng.standard_normal((4, 6400)).astype(np.float32)
    tails = [None, rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32), None]
    skips, lasts = [0, 1280, 6400 - 200, 640], [False, False, False, True]  # row 2: shorter than its tail
    rows = [(_decoder(), s, last, None if t is None else torch.from_numpy(t)) for s, last, t in zip(skips, lasts, tails)]
    audio, lengths, new_tails = join_rows(torch.from_numpy(wav), rows)
    for r in range(4):
        want, want_tail = _host_join(wav[r, skips[r]:], tails[r], lasts[r])
        assert lengths[r] == len(want)
        np.testing.assert_allclose(audio[r, : lengths[r]].numpy(), want, atol=1e-6)
        if want_tail is None:
            assert new_tails[r] is None
        else:
            np.testing.assert_allclose(new_tails[r].numpy(), want_tail, atol=1e-6)
    assert lengths == [6400 - N, 6400 - 1280 - N, N, 6400 - 640]


def test_marked_rows_get_the_stream_markers_mark_at_their_positions() -> None:
    """Rows at different stream positions (one off the 10 ms grid), one unmarked and one of another voice: each
    marked row's audio is what the reference `StreamMarker` gives for the same samples at the same position."""
    rng = np.random.default_rng(1)
    marker = Watermarker()
    wav = (0.1 * rng.standard_normal((4, 9600))).astype(np.float32)
    starts = [0, 3200 * 7, 160, 0]
    voices = ["alice", "bob", "alice", None]
    rows = [(_decoder(None if v is None else marker.stream_mark(v).at(s)), 0, True, None)
            for v, s in zip(voices, starts)]
    audio, lengths, _ = join_rows(torch.from_numpy(wav), rows)
    for r, (voice, start) in enumerate(zip(voices, starts)):
        got = audio[r, : lengths[r]].numpy().astype(np.float64)
        if voice is None:
            assert np.array_equal(got, wav[r])
            continue
        ref = marker.stream(voice, 32000)
        ref.apply(np.zeros(start, np.float32))  # the stream's audio before this chunk
        want = ref.apply(wav[r], start).astype(np.float64)
        mark = want - wav[r]
        assert np.sqrt(np.mean(mark**2)) > 0.005 * np.sqrt(np.mean(wav[r] ** 2))  # the mark is there (about -36 dB)
        assert np.abs(got - want).max() <= 1e-3 * np.abs(mark).max()


def test_a_stream_that_ends_on_a_chunk_boundary_plays_its_held_back_tail(tmp_path) -> None:
    """Without lookahead a chunk can end exactly where the stream then ends: the tail it held back is played
    (alone) when the stream finishes, so no audio is lost and the stream has its whole length."""
    from gsvd.engine.checkpoints.sovits import build_sovits, load_sovits
    from gsvd.engine.runtime.chunking import stream_tokens
    from gsvd.engine.testing.sovits import write_tiny_sovits
    from gsvd.engine.types import SAMPLES_PER_TOKEN

    sovits = build_sovits(load_sovits(write_tiny_sovits(tmp_path / "s.pth", seed=4)))
    torch.manual_seed(0)
    with torch.no_grad():
        ge = sovits.compute_ge(torch.rand(1, 1025, 80))
    policy = ChunkPolicy(first=6, lookahead=0)
    dec = StreamDecoder(sovits, torch.randint(0, 700, (1, 12)), ge, 0.0, 1.0, 0, policy,
                        mark=Watermarker().stream_mark("alice"))
    audio, joins = stream_tokens(dec, torch.randint(0, 1024, (6,)).tolist())
    assert joins == [6 * SAMPLES_PER_TOKEN - N]  # the chunk, then its tail on its own
    assert len(audio) == 6 * SAMPLES_PER_TOKEN and dec.samples_out == len(audio) and dec.overlap == 0
    assert np.abs(audio[-N:]).max() > 0  # the tail is audio, not silence


def test_a_row_whose_skip_passes_its_window_plays_nothing_or_its_tail() -> None:
    """A re-timed window can be shorter than the history it drops: no audio from it (the tail alone, if any)."""
    wav = torch.ones(2, 640)
    tail = torch.full((N,), 0.5)
    audio, lengths, tails = join_rows(wav, [(_decoder(), 1280, False, None), (_decoder(), 1280, True, tail)])
    assert lengths == [0, N] and tails == [None, None]
    assert torch.equal(audio[1, :N], tail)
