"""Channel coding of the watermark payload: CRC-16 for error detection, a rate-1/2 convolutional code
(constraint length 7, the 133/171 octal pair used by 802.11 and many others) with a soft-decision
Viterbi decoder for correction.

Why these: the watermark's bits arrive as noisy correlations, not hard 0/1, and a soft Viterbi decoder
uses that reliability (about 5 dB better than repeating bits). The CRC then tells a real payload from the
decoder's best guess on unmarked audio: a false payload must pass a 16-bit check (1 in 65,536) on top of
the detector's sync threshold. numpy only; a 64-state trellis over ~50 steps costs well under a
millisecond.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171)
CRC_BITS = 16
_CRC_POLY = 0x1021  # CRC-16/CCITT
_STATES = 1 << (CONSTRAINT - 1)


def crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT (init 0xFFFF) of a bit sequence, most significant bit first."""
    reg = 0xFFFF
    for bit in np.asarray(bits, dtype=np.uint8):
        top = ((reg >> 15) & 1) ^ int(bit)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= _CRC_POLY
    return reg


def int_to_bits(value: int, width: int) -> np.ndarray:
    """``value`` as ``width`` bits, most significant first."""
    return np.array([(value >> (width - 1 - i)) & 1 for i in range(width)], dtype=np.uint8)


def bits_to_int(bits: np.ndarray) -> int:
    out = 0
    for bit in np.asarray(bits, dtype=np.uint8):
        out = (out << 1) | int(bit)
    return out


def with_crc(bits: np.ndarray) -> np.ndarray:
    """The message followed by its 16 CRC bits."""
    bits = np.asarray(bits, dtype=np.uint8)
    return np.concatenate([bits, int_to_bits(crc16(bits), CRC_BITS)])


def check_crc(bits: np.ndarray) -> np.ndarray | None:
    """The message without its CRC if the CRC matches, else None."""
    bits = np.asarray(bits, dtype=np.uint8)
    msg, tail = bits[:-CRC_BITS], bits[-CRC_BITS:]
    return msg if crc16(msg) == bits_to_int(tail) else None


def coded_length(message_bits: int) -> int:
    """Number of coded bits for a message (the encoder is flushed with K-1 zero bits)."""
    return 2 * (message_bits + CONSTRAINT - 1)


def _outputs() -> np.ndarray:
    """[state, input] -> the two coded bits as 0/1 (state = the last K-1 inputs, newest in the high bit)."""
    out = np.zeros((_STATES, 2, 2), dtype=np.uint8)
    for state in range(_STATES):
        for bit in (0, 1):
            reg = (bit << (CONSTRAINT - 1)) | state
            for g, gen in enumerate(GENERATORS):
                out[state, bit, g] = bin(reg & gen).count("1") & 1
    return out


_OUT = _outputs()
_NEXT = np.array([[((bit << (CONSTRAINT - 1)) | s) >> 1 for bit in (0, 1)] for s in range(_STATES)])


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 convolutional code of ``bits`` followed by K-1 flush zeros (0/1 array)."""
    state, out = 0, []
    for bit in np.concatenate([np.asarray(bits, dtype=np.uint8), np.zeros(CONSTRAINT - 1, np.uint8)]):
        out.extend(_OUT[state, bit])
        state = _NEXT[state, bit]
    return np.array(out, dtype=np.uint8)


# predecessor table: for each next state, the two (previous state, input bit) pairs that lead to it
_PREV = np.zeros((_STATES, 2), dtype=np.int64)
_PREV_BIT = np.zeros(_STATES, dtype=np.int64)
for _s in range(_STATES):
    _b = _s >> (CONSTRAINT - 2)
    _low = (_s << 1) & (_STATES - 1)
    _PREV[_s] = (_low, _low | 1)
    _PREV_BIT[_s] = _b
# the two coded symbols (+1 for bit 0, -1 for bit 1) on each branch into a state
_BRANCH = np.stack([1.0 - 2.0 * _OUT[_PREV[:, j], _PREV_BIT] for j in range(2)], axis=1)  # [S, 2, 2]


def viterbi_decode(soft: np.ndarray, message_bits: int) -> np.ndarray:
    """Most likely message for soft coded symbols (positive: bit 0, negative: bit 1; magnitude: reliability)."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    steps = message_bits + CONSTRAINT - 1
    if soft.shape[0] != steps:
        raise ValueError(f"expected {2 * steps} soft symbols, got {soft.size}")
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, _STATES), dtype=np.int8)
    for t in range(steps):
        cand = metric[_PREV] + _BRANCH @ soft[t]  # [S, 2]
        pick = np.argmax(cand, axis=1)
        choice[t] = pick
        metric = cand[np.arange(_STATES), pick]
    state, bits = 0, np.zeros(steps, dtype=np.uint8)  # flushed: the path ends in state 0
    for t in range(steps - 1, -1, -1):
        bits[t] = _PREV_BIT[state]
        state = _PREV[state, choice[t, state]]
    return bits[:message_bits]


def viterbi_list(soft: np.ndarray, message_bits: int, size: int) -> list[np.ndarray]:
    """The ``size`` most likely messages, best first (a list Viterbi: each state keeps its ``size`` best
    paths). With a CRC on the message, trying them in order finds a payload the single best path misses
    when a few symbols are wrong (each extra path is one more 1-in-65,536 chance for noise to pass)."""
    soft = np.asarray(soft, dtype=np.float64).reshape(-1, 2)
    steps = message_bits + CONSTRAINT - 1
    if soft.shape[0] != steps:
        raise ValueError(f"expected {2 * steps} soft symbols, got {soft.size}")
    metric = np.full((_STATES, size), -np.inf)
    metric[0, 0] = 0.0
    choice = np.zeros((steps, _STATES, size), dtype=np.int32)
    for t in range(steps):
        branch = _BRANCH @ soft[t]  # [S, 2]
        cand = (metric[_PREV] + branch[:, :, None]).reshape(_STATES, 2 * size)  # [S, 2 * size]
        pick = np.argsort(-cand, axis=1, kind="stable")[:, :size]
        choice[t] = pick
        metric = np.take_along_axis(cand, pick, axis=1)
    out = []
    for rank in range(size):
        if not np.isfinite(metric[0, rank]):
            break
        state, bits = 0, np.zeros(steps, dtype=np.uint8)
        for t in range(steps - 1, -1, -1):
            pick = choice[t, state, rank]
            bits[t] = _PREV_BIT[state]
            state, rank = _PREV[state, pick // size], pick % size
        out.append(bits[:message_bits])
    return out
