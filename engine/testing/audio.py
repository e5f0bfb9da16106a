"""Is it audible? What tests of synthesized audio assert, even for a tiny random voice's babble.

A voice that "speaks" must not be near-silence, a DC offset, clipped noise or hiss: its level
is that of speech at a normal recording level, its mean is small next to it, most of its energy
lies in the speech band and it is not mostly quiet frames. `make demo` once wrote a -71.5 dBFS
hum on a -47 dBFS DC offset and every test still passed, because they only checked shapes.
"""

from __future__ import annotations

import numpy as np

from gsvd.wavio import measure_level

# speech is recorded around -35..-15 dBFS. The tiny voices that `make demo` and the e2e test of
# `gsvd train` fine-tune for a few steps land at about -31 and -38 dBFS (a few steps of the mel
# loss on band-limited clips lower the untrained -20 dBFS), still plainly audible
RMS_DBFS = (-42.0, -10.0)
MAX_DC_DBFS = -40.0  # and at least DC_BELOW_DB under the signal
# the silent demo had its DC 24 dB ABOVE the signal; a few fine-tuning steps of a tiny voice leave
# -52..-54 dBFS of DC under a -35..-39 dBFS signal (15-17 dB below: an inaudible 0.2 % offset)
DC_BELOW_DB = 12.0
MIN_SPEECH_BAND_SHARE = 0.5  # of the energy at 100-4000 Hz
MIN_ACTIVE_SHARE = 0.5  # of 50 ms frames within 40 dB of the loudest


def audibility_problems(pcm: np.ndarray, rate: int) -> list[str]:
    """What a listener would object to; empty when the audio is plainly audible."""
    lv = measure_level(pcm, rate)
    problems = []
    if not RMS_DBFS[0] <= lv.rms_dbfs <= RMS_DBFS[1]:
        problems.append(f"level {lv.rms_dbfs:.1f} dBFS outside {RMS_DBFS}")
    if lv.dc_dbfs > MAX_DC_DBFS or lv.dc_dbfs > lv.rms_dbfs - DC_BELOW_DB:
        problems.append(f"DC offset {lv.dc_dbfs:.1f} dBFS (signal {lv.rms_dbfs:.1f} dBFS)")
    if lv.speech_band_share < MIN_SPEECH_BAND_SHARE:
        problems.append(f"only {lv.speech_band_share:.0%} of the energy at 100-4000 Hz")
    if lv.active_share < MIN_ACTIVE_SHARE:
        problems.append(f"only {lv.active_share:.0%} of the frames are not silence")
    return problems
