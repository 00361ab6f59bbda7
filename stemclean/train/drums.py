"""Real recorded drum samples from Debian's hydrogen-drumkits, triggered by General MIDI drum notes.

Each kit's ``drumkit.xml`` names its instruments and their velocity layers. Instruments are matched to GM drum notes by
name (kick, snare, hats, toms, cymbals); a note whose kind the kit lacks is left to the soundfont.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from stemclean.spectral import SAMPLE_RATE
from stemclean.train.midi import Note

HYDROGEN_KITS = Path("/usr/share/hydrogen/data/drumkits")

# GM drum note -> kinds of instrument that may play it, best first.
_GM_KINDS = {
    35: ("kick",), 36: ("kick",), 37: ("stick", "snare"), 38: ("snare",), 40: ("snare",), 39: ("clap", "snare"),
    42: ("hat_closed",), 44: ("hat_pedal", "hat_closed"), 46: ("hat_open", "hat_closed"),
    41: ("tom_low", "tom_mid"), 43: ("tom_low", "tom_mid"), 45: ("tom_mid", "tom_low", "tom_high"),
    47: ("tom_mid", "tom_high"), 48: ("tom_high", "tom_mid"), 50: ("tom_high", "tom_mid"),
    49: ("crash",), 52: ("crash",), 55: ("crash",), 57: ("crash",), 51: ("ride", "crash"), 53: ("ride", "crash"),
    59: ("ride", "crash"), 54: ("tambourine",), 56: ("cowbell",),
}
# Instrument name patterns per kind, tried in this order (so "ride-crash" is a ride, "hat pedal" a pedal hat).
_KIND_PATTERNS = (
    ("hat_pedal", r"(h(i-?)?h|hat).*pedal|pedal.*(hh|hat)|hat.*\bpd\b"),
    ("hat_open", r"(h(i-?)?h|hat).*(open|\bop\b)|open.*(hh|hat)"),
    ("hat_closed", r"(h(i-?)?h|hat).*(closed|\bcl\b)|closed.*(hh|hat)"),
    ("kick", r"kick|bass ?drum|\bbd\b"),
    ("stick", r"stick|rim"),
    ("snare", r"snare(?!.*roll)"),
    ("clap", r"clap"),
    ("tom_low", r"floor|tom.*lo|lo.*tom"),
    ("tom_mid", r"tom.*mid|tom ?2"),
    ("tom_high", r"tom.*hi|tom ?1|^tom$"),
    ("ride", r"ride"),
    ("crash", r"crash|splash|china"),
    ("tambourine", r"tambourine"),
    ("cowbell", r"cowbell"),
)


@dataclass
class Kit:
    """A Hydrogen kit: for each instrument kind, its velocity layers as (min, max, sample file)."""

    name: str
    layers: dict[str, list[tuple[float, float, Path]]] = field(default_factory=dict)

    def kind_for(self, pitch: int) -> str | None:
        """The kit's instrument kind that plays GM drum note ``pitch``, or None when it has none."""
        return next((k for k in _GM_KINDS.get(pitch, ()) if k in self.layers), None)


def _strip_namespace(root: ET.Element) -> None:
    for element in root.iter():
        element.tag = element.tag.split("}", 1)[-1]


def load_kit(directory: Path) -> Kit:
    """Parse ``drumkit.xml``; the first instrument whose name matches a kind provides that kind."""
    root = ET.parse(directory / "drumkit.xml").getroot()
    _strip_namespace(root)
    kit = Kit(directory.name)
    for instrument in root.iter("instrument"):
        name = (instrument.findtext("name") or "").lower()
        kind = next((k for k, pattern in _KIND_PATTERNS if re.search(pattern, name)), None)
        layers = [
            (float(layer.findtext("min", "0")), float(layer.findtext("max", "1")), directory / layer.findtext("filename"))
            for layer in instrument.iter("layer")
            if layer.findtext("filename") and (directory / layer.findtext("filename")).exists()
        ]
        if kind and layers and kind not in kit.layers:
            kit.layers[kind] = layers
    return kit


def usable_kits(root: Path = HYDROGEN_KITS) -> list[str]:
    """Names of installed kits that have at least a kick, a snare and a closed hi-hat with samples, sorted."""
    if not root.is_dir():
        return []
    names = []
    for directory in sorted(p for p in root.iterdir() if (p / "drumkit.xml").exists()):
        kit = load_kit(directory)
        if {"kick", "snare", "hat_closed"} <= kit.layers.keys():
            names.append(directory.name)
    return names


@lru_cache(maxsize=64)
def _sample(path: Path) -> np.ndarray:
    """A drum sample as float32 (2, samples) at SAMPLE_RATE."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    if audio.shape[1] == 1:
        audio = np.repeat(audio, 2, axis=1)
    return np.ascontiguousarray(audio[:, :2].T, dtype=np.float32)


def play(kit: Kit, notes: list[Note], length: int) -> np.ndarray:
    """Stereo float32 (2, length): each note triggers the kit's layer for its velocity, scaled by velocity."""
    out = np.zeros((2, length), dtype=np.float32)
    for note in notes:
        kind = kit.kind_for(note.pitch)
        if kind is None:
            continue
        level = note.velocity / 127.0
        layers = kit.layers[kind]
        path = next((p for lo, hi, p in layers if lo <= level <= hi), layers[0][2])
        sample = _sample(path)
        start = round(note.start * SAMPLE_RATE)
        if start >= length:
            continue
        n = min(sample.shape[1], length - start)
        out[:, start : start + n] += sample[:, :n] * level
    return out
