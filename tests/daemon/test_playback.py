"""Playback pieces that run without an audio device: ring buffer, resampling, missing PortAudio."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gsvd.clients.playback import PlaybackUnavailable, RingBuffer, resample


def test_ring_buffer_order_wraparound_and_underrun():
    ring = RingBuffer(8)
    ring.write(np.arange(6, dtype=np.float32))
    out = np.empty(4, np.float32)
    assert ring.read_into(out) == 4 and out.tolist() == [0, 1, 2, 3]
    ring.write(np.arange(6, 12, dtype=np.float32))  # wraps around the end
    out = np.empty(10, np.float32)
    assert ring.read_into(out) == 8
    assert out[:8].tolist() == [4, 5, 6, 7, 8, 9, 10, 11] and out[8:].tolist() == [0, 0]
    assert ring.underruns == 1


def test_ring_buffer_blocks_writer_until_read():
    ring = RingBuffer(4)
    ring.write(np.ones(4, np.float32))
    done = threading.Event()
    t = threading.Thread(target=lambda: (ring.write(np.ones(2, np.float32), timeout=5), done.set()))
    t.start()
    assert not done.wait(0.1)
    ring.read_into(np.empty(2, np.float32))
    assert done.wait(2)
    with pytest.raises(TimeoutError):
        ring.write(np.ones(8, np.float32), timeout=0.05)


def test_resample_to_device_rate():
    x = np.sin(2 * np.pi * 440 * np.arange(32000) / 32000).astype(np.float32)
    y = resample(x, 32000, 48000)
    assert abs(len(y) - 48000) <= 2 and y.dtype == np.float32


@pytest.fixture
def no_portaudio(monkeypatch):
    """`import sounddevice` fails as it does on a machine without libportaudio2."""
    import builtins

    real_import = builtins.__import__

    def no_sd(name, *a, **k):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_sd)


def test_player_without_portaudio_says_how_to_fix(no_portaudio):
    from gsvd.clients import playback

    with pytest.raises(PlaybackUnavailable, match="libportaudio2"):
        playback.Player(32000)


def test_say_play_without_portaudio_fails_before_connecting(no_portaudio):
    """`say --play` checks for PortAudio first: the message names libportaudio2 (not a connection
    error from a daemon that is not even asked, and not after a synthesis has started)."""
    from typer.testing import CliRunner

    from gsvd.cli import app

    r = CliRunner().invoke(app, ["say", "Hello.", "--voice", "alice", "--play", "--server", "127.0.0.1:1"])
    assert r.exit_code == 1
    out = " ".join(r.output.split())
    assert "apt-get install libportaudio2" in out and "UNAVAILABLE" not in out
    assert isinstance(r.exception, SystemExit)  # a clean exit, no traceback
