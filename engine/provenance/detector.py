"""Reading the watermark of ``watermark`` from an excerpt: where the frame grid is, where in the period it
starts, the payload, and (when nothing is found as recorded) a playback speed change (numpy only; soxr to
resample).

- The excerpt is resampled to 16 kHz and cut into 10 ms frames at each of the 160 integer sample offsets;
  a phase ramp across the band bins shifts each cut by ``1/SUB`` of a sample more (the measurement turns
  with the host's phase, so the grid must be found to a small fraction of a sample).
- Sync needs no pilot: every marked frame's measurement sits on the lattice of *either* bit, a lattice
  of step DELTA/2 shifted by the slot's keyed dither, so ``exp(4 pi i p / DELTA)`` turns with the dither
  whatever the bit. So does the product ``exp(2 pi i (p_f + p_g) / DELTA)`` of two copies of one slot a
  period apart (their bits are equal), and at low SNR these pairs carry much more than the single frames
  (their expected cosine is rho**2, a single frame's rho**4). For each grid position both are folded onto
  the period's slots, weighted by their expected cosines, and correlated with the dithers (an FFT over the
  slots), so every (offset, slot) pair is scored at once. The score is a z value: the sum over its standard
  deviation on unmarked audio. Positions are ranked by it; acceptance uses it over the larger of that
  deviation and the one the folded sums show (``Candidate.z``): frames that repeat (a tone's, a buzz's) are
  not independent and would otherwise inflate it.
- At the best few positions the frames' soft bits (log-likelihood ratios of a von Mises phase, their
  reliability from the frame's level over the excerpt's noise floor, then re-estimated from the decode
  per level decile) are summed per coded symbol and decoded by a list Viterbi (``LIST`` paths, best
  first) whose paths are tried against the CRC.
- Speed: a resampler's speed change stretches the frame grid, which must line up to a fraction of a
  sample over the whole excerpt (within about 1e-5 of the true speed), so no search over a continuous
  range fits in a second. ``Detector.detect`` tries the common changes in ``SPEEDS`` (undone by resampling),
  decoding there only sync positions of ``SPEED_MIN_Z`` or more.

A payload is reported only when its CRC matches (1 in 65,536 by chance) and its path's score reaches
``MIN_SCORE``: the path's agreement with the frames' phases (`_agreement`: a generalized likelihood ratio
that fits each level decile's reliability, divided by how much the copies of one symbol agree beyond that,
so audio whose frames repeat (tones, hum, a vocoder's buzz) cannot inflate it) plus the sync z. Fitting the
reliabilities is what reads marks that only some deciles still carry (20 dB noise leaves the loudest
frames); the benchmark measures the rate, with and without the speed search.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from gsvd.engine.provenance import ecc
from gsvd.engine.provenance.watermark import (
    BAND_BINS,
    DELTA,
    MESSAGE_BITS,
    PUBLIC_KEY,
    SLOTS,
    SYMBOLS,
    KeyPattern,
    Payload,
    hann,
)

DETECT_RATE = 16000
FRAME = 160
SUB = 16
"""Sub-sample steps of the grid search (1/16 sample at 16 kHz)."""
CANDIDATES = 3
"""Grid positions decoded per excerpt (the best sync scores)."""
LIST = 8
"""Paths of the list Viterbi tried against the CRC per decode."""
LEVELS = 10
"""Groups of frames by level (deciles) whose reliability is estimated together."""
SYNC_WEIGHT = 1.0
"""Weight of the sync z in a path's score (0.5-2 read the same marks; 1 keeps tones furthest under the line)."""
SIGMA_REL = 0.15
"""Measurement noise assumed in every frame before the first decode (codecs), in units of DELTA."""
MIN_SCORE = 14.3
"""A decoded payload counts only if its score (``Detection.score``) reaches this. Calibrated on 4,000 tries
of unmarked excerpts (speech, music and noise mixes, white noise, silence, the tiny model's output) x keys
with every path tried recorded: 0.175 paths per try scored this much (unmarked audio's best path per try
13.4 in the median, 15.4 at most), so with the CRC about 2.7e-6 false payloads per excerpt and key; 900
tries of tones, two-tone chords, buzzes and mains hum: 0.34 paths per try. The payloads decoded from 900
en/zh/ja excerpts after MP3, Opus or 20 dB noise scored 16.1 or more in 95% (23 in the median); the line at
14.3 loses none of them against 14.1 (where unmarked audio's paths reach 0.39 per try)."""
MIN_EXCERPT_S = 3.0
SPEEDS = (1.1, 0.9, 1.05, 0.95, 48000 / 44100, 44100 / 48000)
"""Playback speed changes (by resampling: tempo and pitch together) tried after none when nothing is found:
10% and 5% faster and slower, and 44.1 kHz audio played at 48 kHz and back. Each is undone by resampling the
excerpt; the frame grid must then line up to a small fraction of a sample, so a speed reads only within
about 1e-5 of one of these (the benchmark measures it)."""
SPEED_MIN_Z = 6.0
"""At a tried speed only sync positions of at least this z are decoded: unmarked audio's best was 4.8 in
the median and 7.5 at most in 1,050 searches; a marked excerpt at its speed scored 8.4-30 (median 25-28), so
trying six speeds adds few candidates, each still needing the CRC and MIN_SCORE."""
_OFFSET_BLOCK = 40


@dataclass(frozen=True)
class Detection:
    """The outcome of reading one excerpt under one key."""

    found: bool
    payload: Payload | None
    confidence: float
    """How well the decoded code word agrees with the coded symbols' evidence: sum(E * c) / |E|, E the
    symbols' summed frame cosines weighted by each frame's expected cos if marked, c the code word (+-1).
    At most sqrt(108) = 10.4; unmarked audio's best code word scores 6.5-7.5, clean marked audio 9-10.4."""
    sync_z: float
    """The sync score (``Candidate.z``) of the grid position decoded (4-5.3 at best on unmarked audio)."""
    symbol_errors: int
    """Coded symbols whose summed soft value disagrees with the decoded code word (of SYMBOLS)."""
    start_s: float = 0.0
    """Where in the audio the excerpt that gave this result starts."""
    speed: float = 1.0
    """The playback speed change the mark was read at (1: none)."""
    score: float = 0.0
    """What acceptance compares with MIN_SCORE: the decoded path's agreement with the frames (`_agreement`, a
    z value) plus SYNC_WEIGHT times ``sync_z``; when nothing is found, the best of the paths tried."""


class Candidate(NamedTuple):
    """A grid position and slot the sync search found."""

    rank: float
    """Its sync z (the weighted phasors' sum over their standard deviation if independent): ranks positions."""
    z: float
    """The same over the larger of that deviation and the one seen (frames that repeat, like a tone's, are
    not independent): the score a payload's acceptance and the speed floor use."""
    offset: int
    shift: int
    slot: int


@dataclass(frozen=True)
class Prepared:
    """An excerpt ready for decoding under any key: at DETECT_RATE, with its noise floor."""

    audio: np.ndarray
    noise: float
    """Per band bin: the excerpt's noise power (a low percentile of the bins' power over frames)."""
    speed: float = 1.0
    """The speed change undone when resampling (the excerpt played ``speed`` times faster than made)."""
    frames: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frames", max(0, (len(self.audio) - (FRAME - 1)) // FRAME))


def prepare(audio: np.ndarray, rate: int, speed: float = 1.0) -> Prepared:
    """Resample to DETECT_RATE (soxr HQ), undoing a playback ``speed`` change, and estimate the noise floor;
    key-independent."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if rate != DETECT_RATE or speed != 1.0:
        import soxr

        x = soxr.resample(x, rate / speed, DETECT_RATE, quality="HQ")
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    noise = 0.0
    frames = len(x) // FRAME
    if frames >= 4:
        band = _spectra(x, 0, frames)
        power = band.real**2 + band.imag**2
        # the 5th percentile of an exponential (one complex bin of noise) is 0.0513 of its mean
        noise = float(np.median(np.percentile(power, 5, axis=0))) / 0.0513
    return Prepared(x, noise, speed)


def _spectra(x: np.ndarray, offset: int, frames: int) -> np.ndarray:
    """Band spectra ``[frames, K]`` of the Hann-windowed 10 ms frames starting at ``offset``."""
    view = np.lib.stride_tricks.sliding_window_view(x[offset : offset + frames * FRAME], FRAME)[::FRAME]
    return np.fft.rfft(view * hann(FRAME), axis=1)[:, BAND_BINS[0] : BAND_BINS[1]]


def detect_keys(audio: np.ndarray, rate: int, detectors: list[Detector],
                speeds: tuple[float, ...] = SPEEDS) -> list[Detection]:
    """Read one excerpt under several keys: as it is, then at each of ``speeds`` for the keys not found yet."""
    got = decode_keys(prepare(audio, rate), detectors)
    for speed in speeds:
        todo = [i for i, d in enumerate(got) if not d.found]
        if not todo:
            break
        again = decode_keys(prepare(audio, rate, speed), [detectors[i] for i in todo])
        for i, d in zip(todo, again):
            if d.found:
                got[i] = d
    return got


def decode_keys(prepared: Prepared, detectors: list[Detector]) -> list[Detection]:
    """Read one prepared excerpt under several keys (the frames' spectra are computed once for all)."""
    frames = prepared.frames
    if frames < 4:
        return [Detection(False, None, 0.0, 0.0, SYMBOLS) for _ in detectors]
    found: list[list[Candidate]] = [[] for _ in detectors]
    block = max(1, min(_OFFSET_BLOCK, 400_000 // (frames * (BAND_BINS[1] - BAND_BINS[0]))))
    # every 10 ms frame at every integer offset: windows starting at o + FRAME * f, as a [F, FRAME, FRAME] view
    grid = np.lib.stride_tricks.sliding_window_view(prepared.audio, FRAME)
    grid = grid[: frames * FRAME].reshape(frames, FRAME, FRAME)
    window = hann(FRAME)
    for first in range(0, FRAME, block):
        offsets = range(first, min(FRAME, first + block))
        cut = grid[:, first : first + len(offsets)] * window  # [F, B, FRAME]
        band = np.fft.rfft(cut, axis=2)[:, :, BAND_BINS[0] : BAND_BINS[1]].transpose(1, 0, 2)  # [B, F, K]
        energy = np.sum(band.real**2 + band.imag**2, axis=2)
        for det, out in zip(detectors, found):
            z, damp = det._score(band, energy, prepared.noise)
            for flat in np.argpartition(z.ravel(), -CANDIDATES)[-CANDIDATES:]:
                b, lag, s = np.unravel_index(flat, z.shape)
                # corr[lag] = sum_r folded[r] conj(ref[r - lag]): the excerpt's frame 0 is slot -lag
                rank = float(z[b, lag, s])
                out.append(Candidate(rank, rank * float(damp[b, s]), offsets[b], int(s), int(-lag % SLOTS)))
    return [det._finish(prepared, out) for det, out in zip(detectors, found)]


def _log_i0(x: np.ndarray) -> np.ndarray:
    """log I0(x) for x >= 0 (Abramowitz and Stegun 9.8.1-2, relative error under 2e-7; np.i0 costs ~20x more)."""
    x = np.asarray(x, dtype=np.float64)
    t2 = (np.minimum(x, 3.75) / 3.75) ** 2
    small = np.log(1 + t2 * (3.5156229 + t2 * (3.0899424 + t2 * (1.2067492 + t2 * (0.2659732 + t2 * (0.0360768
                                                                                            + t2 * 0.0045813))))))
    u = 3.75 / np.maximum(x, 3.75)
    series = 0.39894228 + u * (0.01328592 + u * (0.00225319 + u * (-0.00157565 + u * (0.00916281 + u * (
        -0.02057706 + u * (0.02635537 + u * (-0.01647633 + u * 0.00392377)))))))
    large = x - 0.5 * np.log(np.maximum(x, 3.75)) + np.log(series)
    return np.where(x < 3.75, small, large)


def _a1inv(r: np.ndarray) -> np.ndarray:
    """The von Mises concentration whose mean resultant length is ``r`` (Best and Fisher's approximation)."""
    r = np.clip(r, 0.0, 0.995)
    small = 2 * r + r**3 + 5 * r**5 / 6
    mid = -0.4 + 1.39 * r + 0.43 / (1 - r)
    large = 1.0 / np.maximum(r**3 - 4 * r**2 + 3 * r, 1e-12)
    return np.where(r < 0.53, small, np.where(r < 0.85, mid, large))


class Detector:
    """Reads marks under one key; thread-safe after construction."""

    def __init__(self, key: str = PUBLIC_KEY) -> None:
        self.key = key
        self.pattern = KeyPattern.build(key)
        bins = np.arange(*BAND_BINS)
        shifts = (np.arange(SUB) - SUB // 2) / SUB
        # Re(Y . conj(u) . exp(2 pi i k s / FRAME)): the measurement of the frame shifted by s samples
        ramps = np.conj(self.pattern.direction)[:, None] * np.exp(2j * np.pi * np.outer(bins, shifts) / FRAME)
        self._ramps = ramps
        self._sync_ref = np.conj(np.fft.fft(np.exp(4j * np.pi * self.pattern.dither)))

    def detect(self, audio: np.ndarray, rate: int, speeds: tuple[float, ...] = SPEEDS) -> Detection:
        """Read one excerpt (mono float; >= 3 s is reliable, less may do), also at ``speeds`` if need be."""
        return detect_keys(audio, rate, [self], speeds)[0]

    def decode(self, prepared: Prepared) -> Detection:
        return decode_keys(prepared, [self])[0]

    def _finish(self, prepared: Prepared, found: list[Candidate]) -> Detection:
        """Decode the best positions found by the sync search; the first that yields a payload wins."""
        found.sort(reverse=True)
        picked: list[Candidate] = []
        min_z = -np.inf if prepared.speed == 1.0 else SPEED_MIN_Z
        for cand in (c for c in found if c.z >= min_z):
            # neighbouring sub-sample shifts of one position are one candidate
            if all(cand.slot != c.slot or abs((cand.offset - c.offset) * SUB + cand.shift - c.shift) > 2 for c in picked):
                picked.append(cand)
            if len(picked) == CANDIDATES:
                break
        best: Detection | None = None
        for cand in picked:
            got = replace(self._read(prepared, cand.offset, cand.shift, cand.slot, cand.z), speed=prepared.speed)
            if got.found:
                return got
            if best is None or got.score > best.score:
                best = got
        top = max((c.z for c in found), default=0.0)
        return best or Detection(False, None, 0.0, top, SYMBOLS, speed=prepared.speed)

    # ---------------------------------------------------------------- sync

    def _score(self, band: np.ndarray, energy: np.ndarray, noise: float) -> np.ndarray:
        """Sync z values ``[B, SLOTS, SUB]`` of a block of B integer offsets: for each sub-sample shift and
        each lag, the weighted phasors of the frames folded onto the slots, against the dithers."""
        blocks, frames, k = band.shape
        p = (band.reshape(-1, k) @ self._ramps).real.reshape(blocks, frames, SUB)
        p /= np.sqrt(np.maximum(energy, 1e-30))[:, :, None]
        rho = np.exp(-0.5 * self._phase_var(energy, noise, SIGMA_REL))  # E[cos phi] if marked, [B, F]
        phase = (2.0 * np.pi / DELTA) * p
        z = np.cos(phase) + 1j * np.sin(phase)
        # terms whose phase is 4 pi (dither + noise) whatever the bit: each frame squared, and the products of
        # the copies of one slot a period apart (their bits are equal); weighted by their expected cosines
        terms = [(rho**4)[:, :, None] * z * z]
        weight2 = np.sum(rho**8, axis=1)
        for gap in range(SLOTS, frames, SLOTS):
            pair = rho[:, :-gap] * rho[:, gap:]
            terms.append(pair[:, :, None] * z[:, :-gap] * z[:, gap:])
            weight2 += np.sum(pair**2, axis=1)
        folded = np.zeros((blocks, SLOTS, SUB), dtype=z.dtype)
        for phasors in terms:
            n = phasors.shape[1]
            for start in range(0, n, SLOTS):
                stop = min(n, start + SLOTS)
                folded[:, : stop - start] += phasors[:, start:stop]
        corr = np.fft.ifft(np.fft.fft(folded, axis=1) * self._sync_ref[None, :, None], axis=1).real
        weight2 = np.maximum(weight2, 1e-30)
        seen = np.sum(folded.real**2 + folded.imag**2, axis=1)  # [B, SUB]: weight2 if the terms are independent
        return corr / np.sqrt(weight2 / 2.0)[:, None, None], np.sqrt(weight2[:, None] / np.maximum(seen, weight2[:, None]))

    @staticmethod
    def _phase_var(energy: np.ndarray, noise: float, sigma_rel: float) -> np.ndarray:
        """Variance of ``2 pi p / DELTA`` per frame: a floor (codecs) plus the excerpt's noise over the frame."""
        sigma2 = (sigma_rel * DELTA) ** 2 + noise / (2.0 * np.maximum(energy, 1e-30))
        return (2.0 * np.pi / DELTA) ** 2 * sigma2

    # ---------------------------------------------------------------- decoding

    def _read(self, prepared: Prepared, offset: int, shift: int, slot: int, sync_z: float) -> Detection:
        """Decode one grid position: the first path whose CRC matches and whose score reaches MIN_SCORE wins."""
        best_z, best_errors, best_score = -np.inf, SYMBOLS, -np.inf
        for path in self._paths(prepared, offset, shift, slot, sync_z):
            if path.message is not None and path.score >= MIN_SCORE:
                return Detection(True, Payload.from_bits(path.message), path.data_z, sync_z, path.errors,
                                 score=path.score)
            if path.data_z > best_z:
                best_z, best_errors = path.data_z, path.errors
            best_score = max(best_score, path.score)
        return Detection(False, None, best_z, sync_z, best_errors, score=best_score)

    def _paths(self, prepared: Prepared, offset: int, shift: int, slot: int, sync_z: float) -> Iterator[Path]:
        """Every path the list Viterbi gives at one grid position, in the order they are tried: LIST paths from
        the soft bits of the noise model, then LIST more after each of two re-estimates of each level decile's
        reliability from how well its frames agree with the best path so far."""
        frames = prepared.frames
        band = _spectra(prepared.audio, offset, frames)
        energy = np.sum(band.real**2 + band.imag**2, axis=1)
        p = (band @ self._ramps[:, shift]).real / np.sqrt(np.maximum(energy, 1e-30))
        slots = (slot + np.arange(frames)) % SLOTS
        cos = np.cos(2.0 * np.pi * (p / DELTA - self.pattern.dither[slots]))
        live = energy > 1e-12 * max(float(energy.max()), 1e-30)
        var = self._phase_var(energy, prepared.noise, SIGMA_REL)
        llr = np.where(live, 2.0 * _a1inv(np.exp(-var / 2.0)), 0.0) * cos
        symbols = self.pattern.symbol[slots]
        prior = np.bincount(symbols, weights=llr, minlength=SYMBOLS)
        levels = np.array_split(np.argsort(energy, kind="stable"), LEVELS)
        level = np.empty(frames, dtype=np.int64)
        for i, group in enumerate(levels):
            level[group] = i
        weight = np.where(live, np.exp(-var / 2.0), 0.0)  # each frame's expected cos if marked
        evidence = np.bincount(symbols, weights=weight * cos, minlength=SYMBOLS)
        norm = max(float(np.sqrt(np.sum(evidence**2))), 1e-30)
        for _ in range(3):
            soft = np.bincount(symbols, weights=llr, minlength=SYMBOLS)
            codes = []
            for bits in ecc.viterbi_list(soft, MESSAGE_BITS, LIST):
                code = 1.0 - 2.0 * ecc.conv_encode(bits)
                codes.append(code)
                # how well the code word agrees with the symbols' evidence: sum(E * c) / |E| (at most
                # sqrt(SYMBOLS)); scale-free, so frames that repeat (tones, buzz) do not inflate it
                data_z = float(np.sum(evidence * code)) / norm
                errors = int(np.sum((prior * code) < 0))
                agreement = _agreement(cos * code[symbols], live, level, symbols)
                yield Path(ecc.check_crc(bits), data_z, errors, agreement + SYNC_WEIGHT * sync_z)
            # re-estimate each level decile's reliability from how well its frames agree with the best path
            agree = cos * codes[0][symbols]
            for group in levels:
                r = np.clip(np.mean(agree[group]), 0.0, 0.98)
                llr[group] = np.where(live[group], 2.0 * _a1inv(np.full(len(group), r)), 0.0) * cos[group]


class Path(NamedTuple):
    """One decoded path of the list Viterbi at one grid position."""

    message: np.ndarray | None
    """The payload's bits if the path's CRC matches, else None."""
    data_z: float
    """``Detection.confidence`` of the path."""
    errors: int
    score: float
    """``Detection.score`` of the path."""


def _agreement(agree: np.ndarray, live: np.ndarray, level: np.ndarray, symbols: np.ndarray) -> float:
    """How much more likely the frames' phases are if marked with a code word than if not, as a z value.

    ``agree`` is each frame's cosine times the code word's sign for its symbol. Per level decile (frames of
    like level, so like reliability), the marked model is a von Mises phase whose concentration is fitted to
    the decile's mean agreement ``r``: its log-likelihood ratio against uniform phases is
    ``n (kappa r - log I0(kappa))``, summed over the deciles (a generalized likelihood ratio, GLR). Reliable
    deciles count in full and noisy ones for nothing, whatever the noise model assumed, which is where it
    beats ``data_z`` (fixed weights). Frames that repeat (tones, hum, a buzz of constant pitch) are not
    independent and would inflate it: the copies of one symbol then agree beyond what their deciles'
    fit explains, and the GLR is divided by that design effect (the residuals' variance summed per symbol
    over their variance summed per frame, about 1 for independent frames). Returned as ``sqrt(2 GLR)``."""
    groups = int(level.max()) + 1 if len(level) else 0
    count = np.bincount(level, weights=live, minlength=groups)
    mean = np.bincount(level, weights=np.where(live, agree, 0.0), minlength=groups) / np.maximum(count, 1.0)
    r = np.clip(mean, 0.0, 0.98)
    kappa = _a1inv(r)
    glr = float(np.sum(count * (kappa * r - _log_i0(kappa))))
    resid = np.where(live, agree - r[level], 0.0)
    clusters = np.bincount(symbols, weights=resid, minlength=SYMBOLS)
    design = float(np.sum(clusters**2)) / max(float(np.sum(resid**2)), 1e-30)
    return float(np.sqrt(2.0 * max(glr, 0.0) / max(design, 1.0)))
