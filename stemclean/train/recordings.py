"""Real recordings from Debian packages: which files are speech and which are music, who speaks or which soundtrack
each belongs to, their licence, and decoding of every format they come in.

The speech packages hold words and lines read or acted by real people; the music packages hold instrumental game
soundtracks. Each file gets a ``group``, the unit that train/val/test splits are cut by: a speaker for speech, a
soundtrack (the package) for music, so test speakers and soundtracks are never heard in training.

Speech read by volunteers (tuxpaint, klettres, ktuberling) is grouped by language across packages: the same
translator may have recorded several of them, and grouping by language keeps such a speaker in one split.

Formats: WAV, FLAC, Ogg Vorbis and Opus through libsndfile (soundfile); Ogg inside zip archives (``.pk3``); and
Drascula's raw unsigned 8-bit speech at 11025 Hz.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from debian.copyright import Copyright, Error as CopyrightError

from stemclean.spectral import SAMPLE_RATE

SPEECH, MUSIC = "speech", "music"
# Drascula's .ALS speech: unsigned 8-bit mono at 11025 Hz with a 32-byte header and 64 trailing bytes that are not
# audio (ScummVM's drascula engine reads them the same way).
DRASCULA_RATE = 11025
_DRASCULA_HEAD, _DRASCULA_TAIL = 32, 64


@dataclass(frozen=True)
class Recording:
    """One audio file: ``path`` on disk, or a ``member`` inside the zip archive at ``path``."""

    package: str
    path: str
    group: str  # speaker (speech) or soundtrack (music): splits never share one
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


@dataclass(frozen=True)
class Package:
    """A Debian package of real recordings: its role, licence (from its copyright file) and how to list its files.

    Where the licence differs from file to file, ``source_path`` maps a recording to its path in the package's source
    tree, the path that the copyright file's ``Files:`` lines name, and :func:`licence_of` looks it up there.

    ``split`` pins every group of a package added after the splits were cut: the other groups keep the splits they
    had. Packages added to train leave the held-out splits as they were; those added to val vary its music, after
    which val's mixes are made again (docs/TRAINING.md, "Val's music").
    """

    name: str
    role: str
    licence: str
    find: Callable[[], list[Recording]]
    source_path: Callable[[Recording], str] | None = None
    split: str | None = None

    @property
    def copyright(self) -> str:
        return f"/usr/share/doc/{self.name}/copyright"


@functools.cache
def _copyright(path: str) -> Copyright | None:
    """The machine-readable (DEP-5) copyright file at ``path``; None where it is missing or in free form."""
    try:
        with open(path, encoding="utf-8") as f:
            return Copyright(f, strict=False)
    except (OSError, CopyrightError):
        return None


def licence_of(recording: Recording, package: Package | None = None) -> str:
    """The licence of one recording: its ``Files:`` paragraph's where the package's licence varies per file (python-
    debian applies DEP-5's rule, the last matching paragraph wins), else the package's."""
    package = package or PACKAGES[recording.package]
    copyright = _copyright(package.copyright) if package.source_path else None
    paragraph = copyright.find_files_paragraph(package.source_path(recording)) if copyright else None
    return paragraph.license.synopsis if paragraph is not None and paragraph.license else package.licence


def _language(code: str) -> str:
    """Base language of a locale code (``en_GB`` -> ``en``, ``sr@latin`` -> ``sr``); empty means English."""
    return re.split(r"[_@.]", code)[0] or "en"


def _files(package: str, pattern: str, group: Callable[[Path], str], root: str = "/") -> list[Recording]:
    return [Recording(package, str(p), group(p)) for p in sorted(Path(root).glob(pattern.lstrip("/")))]


def _tuxpaint() -> list[Recording]:
    # stamps/<...>/<name>.ogg is the stamp's sound effect; <name>_desc[_<lang>].ogg is its name read aloud.
    def lang(p: Path) -> str:
        return "lang:" + _language(re.sub(r"^.*_desc_?", "", p.name.split(".")[0]))

    return _files("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/**/*_desc*.ogg", lang)


def _fillets(lang: str) -> list[Recording]:
    # <level>-m-*.ogg is the small fish, <level>-v-*.ogg the big fish, the rest the level's other characters.
    def character(p: Path) -> str:
        parts = p.stem.split("-")
        return f"fillets-{lang}:" + (parts[1] if len(parts) > 2 and parts[1] in ("m", "v") else "others")

    return _files(f"fillets-ng-data-{lang}", f"usr/share/games/fillets-ng/sound/**/{lang}/*.ogg", character)


def _klettres() -> list[Recording]:
    return _files("klettres-data", "usr/share/klettres/*/*/*.ogg", lambda p: "lang:" + _language(p.parts[-3]))


def _ktuberling() -> list[Recording]:
    files = []
    for ext in ("ogg", "wav", "opus"):
        files += _files("ktuberling-data", f"usr/share/ktuberling/sounds/*/*.{ext}",
                        lambda p: "lang:" + _language(p.parts[-2]))
    return sorted(files, key=lambda r: r.path)


def _drascula() -> list[Recording]:
    # S<n>.ALS are sound effects; the other prefixes are characters' lines. Its few actors may voice several
    # characters, so the whole game is one speaker group.
    return [r for r in _files("drascula", "usr/share/scummvm/drascula/en/*.ALS", lambda p: "drascula")
            if not re.fullmatch(r"S\d+", Path(r.path).stem)]


def _archive(package: str, archive: str, folder: str) -> list[Recording]:
    if not Path(archive).exists():
        return []
    with zipfile.ZipFile(archive) as z:
        members = sorted(m for m in z.namelist() if m.startswith(folder) and m.endswith(".ogg"))
    return [Recording(package, archive, package, m) for m in members]


def _soundtrack(package: str, *patterns: str) -> Callable[[], list[Recording]]:
    return lambda: sorted((r for pattern in patterns for r in _files(package, pattern, lambda p: package)),
                          key=lambda r: r.path)


PACKAGES = {p.name: p for p in (
    Package("tuxpaint-stamps-default", SPEECH, "GPL-2", _tuxpaint),
    Package("fillets-ng-data-cs", SPEECH, "GPL-2+", lambda: _fillets("cs")),
    Package("fillets-ng-data-nl", SPEECH, "GPL-2+", lambda: _fillets("nl")),
    Package("festvox-ru", SPEECH, "BSD-like",
            lambda: _files("festvox-ru", "usr/share/festival/voices/russian/*/wav/*.wav", lambda p: "festvox-ru")),
    Package("klettres-data", SPEECH, "GPL-2+", _klettres),
    Package("ktuberling-data", SPEECH, "GPL-2+", _ktuberling),
    Package("drascula", SPEECH, "Drascula-License (free redistribution)", _drascula),
    Package("gcin-voice", SPEECH, "GPL-3 or LGPL-3, CC-BY-3 (per file)",
            lambda: _files("gcin-voice", "usr/share/gcin-voice/ogg/*/*.ogg", lambda p: "gcin-voice"),
            source_path=lambda r: str(Path(r.path).relative_to("/usr/share/gcin-voice"))),
    Package("warzone2100-music", MUSIC, "GPL-2+", _soundtrack("warzone2100-music", "usr/share/games/warzone2100/**/*.opus")),
    Package("ufoai-music", MUSIC, "GPL-2, GPL-2+, CC-BY-3.0, CC-BY-SA-3.0 or public domain (per track)",
            lambda: _archive("ufoai-music", "/usr/share/games/ufoai/base/0music.pk3", "music/"),
            source_path=lambda r: f"base/{r.member}"),
    Package("wesnoth-1.16-music", MUSIC, "GPL-2+",
            _soundtrack("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music/*.ogg")),
    Package("nexuiz-music", MUSIC, "GPL-2+",
            lambda: _archive("nexuiz-music", "/usr/share/games/nexuiz/data/music.pk3", "sound/cdtracks/")),
    Package("singularity-music", MUSIC, "CC-BY-SA-3.0",
            _soundtrack("singularity-music", "usr/share/games/singularity/music/**/*.ogg")),
    Package("drascula-music", MUSIC, "Drascula-License (free redistribution)",
            _soundtrack("drascula-music", "usr/share/scummvm/drascula/audio/*.ogg")),
    # Added to the training split alone on 2026-12-07 (four soundtracks had carried all of training's music).
    Package("freedroidrpg-data", MUSIC, "GPL-2+",
            _soundtrack("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/music/*.ogg"), split="train"),
    Package("flare-game", MUSIC, "CC-BY-SA-3.0+",
            _soundtrack("flare-game", "usr/share/games/flare/mods/*/music/*.ogg"), split="train"),
    Package("supertux-data", MUSIC, "GPL-2+ (per track)",
            _soundtrack("supertux-data", "usr/share/games/supertux2/music/**/*.ogg"),
            source_path=lambda r: "data/" + str(Path(r.path).relative_to("/usr/share/games/supertux2")), split="train"),
    Package("megaglest-data", MUSIC, "CC-BY-SA-3.0",
            _soundtrack("megaglest-data", "usr/share/games/megaglest/data/core/menu/music/*.ogg",
                        "usr/share/games/megaglest/techs/*/factions/*/music/*.ogg"), split="train"),
    Package("extremetuxracer-data", MUSIC, "GPL-2+",
            _soundtrack("extremetuxracer-data", "usr/share/games/etr/music/*.ogg"), split="train"),
    Package("lincity-ng-data", MUSIC, "GPL-2+",
            _soundtrack("lincity-ng-data", "usr/share/games/lincity-ng/music/*/*.ogg"), split="train"),
    # Added to val alone on 2026-12-07: all of val's real mixes had been over one soundtrack (drascula-music).
    Package("planetblupi-music-ogg", MUSIC, "GPL-3+",
            _soundtrack("planetblupi-music-ogg", "usr/share/planetblupi/music/*.ogg"), split="val"),
    Package("xmoto-data", MUSIC, "GPL-2+", _soundtrack("xmoto-data", "usr/share/games/xmoto/Textures/Musics/*.ogg"),
            split="val"),
    Package("neverball-common", MUSIC, "GPL-2+", _soundtrack("neverball-common", "usr/share/games/neverball/bgm/*.ogg"),
            split="val"),
)}


def recordings(role: str, packages: list[str] | None = None) -> list[Recording]:
    """Every installed recording of ``role`` (SPEECH or MUSIC) in ``packages`` (default all); packages that are not
    installed contribute none."""
    return [r for name, p in PACKAGES.items() if p.role == role and (packages is None or name in packages)
            for r in p.find()]


def decode(rec: Recording, start_s: float = 0.0, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The recording (or ``seconds`` of it from ``start_s``) as float32 (channels, samples) at its own sample rate.

    libsndfile seeks in Ogg and Opus, so an excerpt of a long soundtrack costs only its own decoding.
    """
    if rec.path.endswith(".ALS"):
        raw = np.fromfile(rec.path, dtype=np.uint8)[_DRASCULA_HEAD:-_DRASCULA_TAIL]
        first = int(start_s * DRASCULA_RATE)
        raw = raw[first: None if seconds is None else first + int(seconds * DRASCULA_RATE)]
        return ((raw.astype(np.float32) - 128.0) / 128.0)[None, :], DRASCULA_RATE
    if rec.member is not None:
        with zipfile.ZipFile(rec.path) as z:
            source: str | io.BytesIO = io.BytesIO(z.read(rec.member))
    else:
        source = rec.path
    with sf.SoundFile(source) as f:
        f.seek(min(int(start_s * f.samplerate), f.frames))
        audio = f.read(-1 if seconds is None else int(seconds * f.samplerate), dtype="float32", always_2d=True)
        return np.ascontiguousarray(audio.T), f.samplerate


def duration(rec: Recording) -> float:
    """Seconds of audio in the recording, from its header (Drascula's from its size)."""
    if rec.path.endswith(".ALS"):
        return max(0, Path(rec.path).stat().st_size - _DRASCULA_HEAD - _DRASCULA_TAIL) / DRASCULA_RATE
    if rec.member is not None:
        with zipfile.ZipFile(rec.path) as z:
            return sf.info(io.BytesIO(z.read(rec.member))).duration
    return sf.info(rec.path).duration


def load(rec: Recording, channels: int, start_s: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """The recording (or an excerpt, as in ``decode``) as float32 (channels, samples) at SAMPLE_RATE: mono is
    averaged or copied, the rate converted."""
    audio, rate = decode(rec, start_s, seconds)
    audio = audio.mean(axis=0, keepdims=True) if channels == 1 else audio[:2]
    if audio.shape[0] < channels:
        audio = np.repeat(audio, channels, axis=0)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio.T, rate, SAMPLE_RATE, quality="HQ").T
    return np.ascontiguousarray(audio, dtype=np.float32)
