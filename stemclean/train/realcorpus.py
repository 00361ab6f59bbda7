"""The real-recordings corpus: real speech (sung or spoken) over real instrumental soundtracks, with Spleeter pairs.

Run ``python -m stemclean.train.realcorpus --out data/real``. It is seeded, resumable (finished mixes are skipped) and
rewrites its manifest after every mix. Layout::

    OUT/recordings.json                                       every installed recording, its length and its split
    OUT/melodies.json                                         the melody lines voices sing, by song split
    OUT/corpus/manifest.json                                  per mix: sources, packages, licences, groups, levels
    OUT/corpus/{train,val,test}/<id>/{vocals,accompaniment}.flac        16-bit, 44.1 kHz, stereo
    OUT/spleeter/{train,val,test}/<id>/{vocals,accompaniment}.flac      Spleeter 2stems estimates, same length

No mixture is stored: it is exactly ``vocals + accompaniment`` as read back (``mixture()``), and that sum is what
Spleeter separated. Splits are cut by speaker and by soundtrack, so test voices and test music are never heard in
training; the melodies keep the split of the song they come from.

Training code lists the material with ``load_pairs(root, split)``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import mido
import numpy as np
import soundfile as sf
import typer

from stemclean.files import write_text_atomic
from stemclean.spectral import SAMPLE_RATE
from stemclean.train import corpus, midi, recordings, realmix, separators, songs

STEMS = ("vocals", "accompaniment")
EXT, SUBTYPE = "flac", "PCM_16"
SHARES = {"test": 0.1, "val": 0.1}  # of each role's total duration; the rest is train
HELD_OUT = tuple(SHARES)
_MIN_LINE_NOTES = 8
DEFAULT_HOURS = 8.0
DEFAULT_SONG_HOURS = 2.0


def split_groups(seconds: dict[str, float], seed: int) -> dict[str, str]:
    """Group -> split. In a seeded order, test and then val take groups until they hold their share of the total
    duration, never overshooting it by more than a quarter; the rest is train. Each split gets at least one group."""
    total = sum(seconds.values())
    names = sorted(seconds)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    split_of: dict[str, str] = {}
    for split, share in SHARES.items():
        filled = 0.0
        for group in order:
            if filled >= share * total:
                break
            if group not in split_of and filled + seconds[group] <= 1.25 * share * total:
                split_of[group] = split
                filled += seconds[group]
        if not filled:
            split_of[min((g for g in names if g not in split_of), key=seconds.get)] = split
    return {g: split_of.get(g, "train") for g in names}


def catalog(out: Path, seed: int, packages: list[str] | None = None) -> list[dict]:
    """Every installed recording of ``packages`` (default all) with its length, group and split; cached in
    ``OUT/recordings.json`` because reading twenty thousand file headers takes a while. A package pinned to a split
    (``Package.split``) keeps it, and the other groups are cut without it, so adding one moves no other group."""
    path = out / "recordings.json"
    names = [name for name in recordings.PACKAGES if packages is None or name in packages]
    if path.exists() and json.loads(path.read_text()).get("packages") == names:
        return json.loads(path.read_text())["recordings"]
    rows = []
    for role in (recordings.SPEECH, recordings.MUSIC):
        found = recordings.recordings(role, names)
        if not found:
            raise FileNotFoundError(f"no {role} recordings installed: apt-get install the packages in docs/TRAINING.md")
        lengths = [recordings.duration(r) for r in found]
        pinned = {rec.group: recordings.PACKAGES[rec.package].split for rec in found
                  if recordings.PACKAGES[rec.package].split}
        seconds: dict[str, float] = {}
        for rec, length in zip(found, lengths):
            if rec.group not in pinned:
                seconds[rec.group] = seconds.get(rec.group, 0.0) + length
        split_of = split_groups(seconds, songs.song_seed(seed, role)) | pinned
        rows += [{"role": role, "package": r.package, "path": r.path, "member": r.member, "group": r.group,
                  "seconds": round(length, 3), "split": split_of[r.group]} for r, length in zip(found, lengths)]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"seed": seed, "packages": names, "recordings": rows}, indent=0))
    return rows


def melody_lines(out: Path, seed: int, chorales: int = corpus.DEFAULT_CHORALES) -> list[dict]:
    """Monophonic lines to sing, each with its song's split: the sung line of every openmsx song, and the four voices
    of every chorale, on the clock of the song as the corpus renders it (``sung`` marks the line the rendered song's
    vocals sing). Cached in ``OUT/melodies.json``."""
    path = out / "melodies.json"
    if path.exists():
        return json.loads(path.read_text())
    everything = corpus.catalog(chorales)
    split_of = songs.assign_splits(everything, seed)
    lines = []
    for song in everything:
        if song.source == "openmsx":
            mid = mido.MidiFile(song.ref)
            parts = [midi.plan_stems(mid, midi.read_notes(mid)).sung]
        else:
            notes = midi.read_notes(songs.chorale_midi(song, np.random.default_rng(songs.song_seed(seed, song.id))))
            parts = [midi.skyline([n for n in notes if n.channel == channel]) for channel in range(4)]
        for index, part in enumerate(parts):  # the first part is the line the rendered song sings
            if len(part) >= _MIN_LINE_NOTES:
                lines.append({"song": song.id, "split": split_of[song.id], "sung": index == 0,
                              "notes": [[round(n.start, 4), round(n.end, 4), n.pitch] for n in part]})
    write_text_atomic(path, json.dumps(lines))
    return lines


def mix_ids(hours: float, mix_seconds: tuple[float, float], kind: str = "real") -> list[tuple[str, str]]:
    """(id, split) of every mix of ``kind`` for about ``hours`` of audio in all, test first, then val, then train."""
    if hours <= 0:
        return []
    count = max(3, int(np.ceil(hours * 3600 / np.mean(mix_seconds))))
    sizes = {split: max(1, round(count * share)) for split, share in SHARES.items()}
    sizes["train"] = max(1, count - sum(sizes.values()))
    return [(f"{kind}-{split}-{i:04d}", split) for split in ("test", "val", "train") for i in range(sizes[split])]


def rendered_songs(rendered: Path, lines: list[dict]) -> dict[str, dict]:
    """Song id -> manifest entry of the rendered corpus at ``rendered``, once every song with a melody line is
    rendered there; empty before, so which songs the mixes draw from never depends on how far a render has got."""
    entries = {i: e for i, e in corpus.load_manifest(rendered).items() if e.get("seconds_limit") is None
               and all(p.exists() for p in corpus.song_files(rendered, e["split"], i))}
    return entries if {line["song"] for line in lines} <= set(entries) else {}


def _clips(rows: list[dict], role: str, split: str) -> dict[str, list[realmix.Clip]]:
    """Group -> its clips, for one role and split."""
    groups: dict[str, list[realmix.Clip]] = {}
    for row in rows:
        if row["role"] == role and row["split"] == split and row["seconds"] > 0.2:
            rec = recordings.Recording(row["package"], row["path"], row["group"], row["member"])
            groups.setdefault(row["group"], []).append(realmix.Clip(rec, row["seconds"]))
    return groups


def mixture(pair: dict, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The mixture of a pair from ``load_pairs`` (or a manifest entry with paths): vocals + accompaniment as float32
    (samples, 2), optionally frames ``start:stop`` only. The sum is exact: both are 16-bit samples read as float32."""
    return sum(sf.read(pair[stem], start=start, stop=stop, dtype="float32", always_2d=True)[0] for stem in STEMS)


# A stretch whose voice has less than this share (-40 dB) of the music's energy has no voice: an intro, a break, an
# outro, where the true accompaniment is the whole mixture.
VOICE_FREE = 1e-4


def voice_share(vocals: np.ndarray, music: np.ndarray, length: int) -> np.ndarray:
    """The voice's energy over the music's in every window of ``length`` samples (all channels), by first sample."""
    def window_energy(signal: np.ndarray) -> np.ndarray:
        sums = np.concatenate([[0.0], np.cumsum(np.sum(signal.astype(np.float64) ** 2, axis=1))])
        return sums[length:] - sums[:-length]

    return window_energy(vocals) / np.maximum(window_energy(music), 1e-20)


def _write_manifest(out: Path, entries: dict[str, dict], seed: int) -> None:
    hours = {s: round(sum(e["duration_s"] for e in entries.values() if e["split"] == s) / 3600, 3) for s in songs.SPLITS}
    packages = {name: {"role": p.role, "licence": p.licence, "copyright": p.copyright}
                for name, p in recordings.PACKAGES.items()}
    write_text_atomic(out / corpus.MANIFEST, json.dumps({
        "seed": seed, "sample_rate": SAMPLE_RATE, "stems": list(STEMS), "format": f"{EXT} {SUBTYPE}",
        "hours": hours, "packages": packages, "songs": [entries[k] for k in sorted(entries)]}, indent=1))


def build(out: Path, hours: float = DEFAULT_HOURS, seed: int = 0, packages: list[str] | None = None,
          mix_seconds: tuple[float, float] = realmix.MIX_SECONDS, chorales: int = corpus.DEFAULT_CHORALES,
          rendered: Path | None = None, song_hours: float = DEFAULT_SONG_HOURS,
          splits: tuple[str, ...] | None = None) -> dict[str, dict]:
    """Make every planned mix not yet under ``out/corpus``; returns the manifest entries.

    ``hours`` of mixes go over real soundtracks; ``song_hours`` more over the rendered corpus at ``rendered``, once it
    is complete. ``packages`` limits the catalog (default: every package in ``recordings.PACKAGES``), ``chorales`` the
    chorales whose voices are sung, ``splits`` the splits made (default all)."""
    rows = catalog(out, seed, packages)
    lines = melody_lines(out, seed, chorales)
    songs_rendered = rendered_songs(rendered, lines) if rendered is not None and song_hours > 0 else {}
    if rendered is not None and song_hours > 0 and not songs_rendered:
        corpus.console.print(f"[yellow]{rendered} is not fully rendered: mixes over its songs wait for a later run")
    folder = out / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    entries = corpus.load_manifest(folder)
    planned = mix_ids(hours, mix_seconds) + (mix_ids(song_hours, mix_seconds, "song") if songs_rendered else [])
    todo = [(i, s) for i, s in planned if (splits is None or s in splits)
            and not (i in entries and all((folder / s / i / f"{n}.{EXT}").exists() for n in STEMS))]
    failed = []
    with corpus.progress_bar() as progress:
        task = progress.add_task("mixing", total=len(todo))
        for mix_id, split in todo:
            progress.update(task, description=f"{mix_id:<20}")
            rng = np.random.default_rng(songs.song_seed(seed, mix_id))
            speakers = _clips(rows, recordings.SPEECH, split)
            names = sorted(speakers)
            weights = np.array([sum(c.seconds for c in speakers[g]) for g in names])
            speaker = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            began = time.perf_counter()
            try:
                if mix_id.startswith("song-"):
                    stems, info = _over_song(speakers[speaker], rendered, songs_rendered, lines, split, rng,
                                             mix_seconds)
                else:
                    tracks = [c for group in _clips(rows, recordings.MUSIC, split).values() for c in group]
                    split_lines = [line for line in lines if line["split"] == split]
                    # held-out mixes draw each soundtrack evenly (test has one soundtrack, so only val's changed)
                    stems, info = realmix.render(speakers[speaker], tracks, split_lines, rng, mix_seconds,
                                                 even_groups=split != "train")
            except RuntimeError as error:  # one unlucky draw must not stop a long run
                failed.append(mix_id)
                progress.console.log(f"[red]{mix_id} failed:[/red] {error}")
                progress.advance(task)
                continue
            corpus.write_folder(folder / split / mix_id, stems, EXT, SUBTYPE)
            info.update(id=mix_id, split=split, render_s=round(time.perf_counter() - began, 2))
            entries[mix_id] = info
            _write_manifest(folder, entries, seed)
            progress.console.log(f"{mix_id} {info['vocals']['mode']} {info['duration_s']:.0f} s "
                                 f"in {info['render_s']:.1f} s")
            progress.advance(task)
    _write_manifest(folder, entries, seed)
    if failed:
        corpus.console.print(f"[yellow]{len(failed)} mix(es) failed and will be retried next run:[/yellow] "
                             + ", ".join(failed))
    return entries


def _over_song(speaker: list[realmix.Clip], rendered: Path, songs_rendered: dict[str, dict], lines: list[dict],
               split: str, rng: np.random.Generator, mix_seconds: tuple[float, float]):
    """A mix of ``speaker`` singing a rendered song of ``split`` (drawn by duration) in time over its band."""
    sung = {line["song"]: line for line in lines if line["sung"] and line["split"] == split}
    names = sorted(i for i in songs_rendered if i in sung and songs_rendered[i]["split"] == split)
    weights = np.array([songs_rendered[i]["duration_s"] for i in names])
    song = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return realmix.render_over_song(speaker, rendered / split / song, sung[song], rng, mix_seconds)


def _read_mixture(folder: Path, entry: dict) -> np.ndarray:
    return mixture({stem: folder / entry["split"] / entry["id"] / f"{stem}.{EXT}" for stem in STEMS})


def separate(out: Path, venv: Path = separators.DEFAULT_VENV, splits: tuple[str, ...] | None = None) -> int:
    """Spleeter 2stems pairs for every mix (of ``splits``, default all) under ``out/corpus`` lacking them; returns how
    many were separated."""
    return separators.build_pairs(out / "corpus", out / "spleeter", venv, splits, read_mixture=_read_mixture,
                                  ext=EXT, subtype=SUBTYPE)


def load_pairs(root: Path | str, split: str) -> list[dict]:
    """The real-recording mixes of ``split`` under ``root`` (the ``--out`` folder, e.g. ``data/real``).

    Each is a dict with ``id``, ``split``, ``duration_s``, ``mode`` ('sung' or 'spoken'), ``accompaniment_kind``
    ('soundtrack' or 'rendered song'), ``speaker`` and ``soundtrack`` (their groups: a speaker, and a soundtrack
    package or a rendered song id), the paths ``vocals`` and ``accompaniment`` (true stems), and
    ``spleeter_vocals`` and ``spleeter_accompaniment`` (Spleeter's estimates, or None while not made yet). Read the
    mixture with ``mixture(pair, start, stop)``. Only finished mixes are listed; the manifest is re-read on each call.
    """
    root = Path(root)
    pairs = []
    for entry in corpus.load_manifest(root / "corpus").values():
        if entry["split"] != split:
            continue
        paths = {stem: root / "corpus" / split / entry["id"] / f"{stem}.{EXT}" for stem in STEMS}
        if not all(p.exists() for p in paths.values()):
            continue
        estimates = separators.pair_files(root / "spleeter", split, entry["id"], EXT)
        done = all(p.exists() for p in estimates)
        pairs.append({
            "id": entry["id"], "split": split, "duration_s": entry["duration_s"], "mode": entry["vocals"]["mode"],
            "accompaniment_kind": "rendered song" if entry["id"].startswith("song-") else "soundtrack",
            "speaker": entry["vocals"]["group"], "soundtrack": entry["accompaniment"]["group"], **paths,
            **{f"spleeter_{stem}": (path if done else None) for stem, path in zip(separators.SPLEETER_STEMS, estimates)},
        })
    return pairs


def first_separated(pairs: list[dict], count: int) -> list[dict]:
    """The first ``count`` of ``pairs`` (from ``load_pairs``), by id, whose Spleeter estimates are made: the mixes
    that validation scores and that an overfit sweep fits, chosen by one rule so the two always agree."""
    return sorted((p for p in pairs if p["spleeter_vocals"] is not None), key=lambda p: p["id"])[:count]


def _size_gb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9 if folder.exists() else 0.0


def summary(out: Path) -> str:
    """What is made under ``out`` and what it cost, summed over every run that made it: hours of mixes per split, the
    sung mixes' median f0 error, hours spent mixing and separating (as recorded per mix), and gigabytes on disk."""
    entries = corpus.load_manifest(out / "corpus").values()
    timings_path = out / "spleeter" / separators.TIMINGS
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    hours = {s: sum(e["duration_s"] for e in entries if e["split"] == s) / 3600 for s in songs.SPLITS}
    errors = [e["vocals"]["f0_error_cents"] for e in entries if e["vocals"].get("f0_error_cents") is not None]
    return (f"{len(entries)} mixes, {sum(hours.values()):.2f} h of audio "
            f"({', '.join(f'{s} {h:.2f} h' for s, h in hours.items())}); "
            f"{len(errors)} sung, median f0 error {np.median(errors) if errors else float('nan'):.1f} cents; "
            f"mixing took {sum(e['render_s'] for e in entries) / 3600:.2f} h, corpus {_size_gb(out / 'corpus'):.2f} GB; "
            f"{len(timings)} Spleeter pairs took {sum(t['separate_s'] for t in timings.values()) / 3600:.2f} h, "
            f"{_size_gb(out / 'spleeter'):.2f} GB")


def main(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (corpus/ and spleeter/ go in it).")] = Path(
        "data/real"),
    hours: Annotated[float, typer.Option(help="Hours of mixes over real soundtracks, all splits.")] = DEFAULT_HOURS,
    seed: Annotated[int, typer.Option(help="Seed: splits, mixes, singers.")] = 0,
    rendered: Annotated[Path, typer.Option(help="The rendered corpus whose bands real voices sing over.")] = Path(
        "data/corpus"),
    song_hours: Annotated[float, typer.Option(help="Hours of real voices over rendered songs.")] = DEFAULT_SONG_HOURS,
    spleeter: Annotated[bool, typer.Option(help="Also make the Spleeter 2stems pairs.")] = True,
    venv: Annotated[Path, typer.Option(help="Spleeter venv (scripts/setup_spleeter_venv.sh).")] = separators.DEFAULT_VENV,
    report: Annotated[bool, typer.Option("--report", help="Only print what is made and what it cost.")] = False,
) -> None:
    """Make the real-recordings corpus and its Spleeter pairs (skips what is already made); prints time and size."""
    if report:
        corpus.console.print(f"real corpus at {out}: {summary(out)}")
        return
    began = time.perf_counter()
    try:
        for splits in (HELD_OUT, None):  # the held-out pairs first, so benchmarks can start before training data ends
            build(out, hours, seed, rendered=rendered, song_hours=song_hours, splits=splits)
            if spleeter:
                separate(out, venv, splits)
    except (FileNotFoundError, RuntimeError, ValueError) as error:
        corpus.console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    corpus.console.print(f"real corpus at {out}: {summary(out)}; this run took "
                         f"{(time.perf_counter() - began) / 3600:.2f} h")


if __name__ == "__main__":
    typer.run(main)
