"""The ``stemclean`` command: ``run``, ``batch``, ``track`` and ``info``. It parses, calls the engine, and reports.

Exit codes: 0 ok, 1 a file failed (bad audio, missing model, ...), 2 a usage error. Every error is one red line on
stderr; ``--debug`` shows the traceback instead. Only audio (``-o -``) or ``--json`` ever goes to stdout.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stemclean import __version__, audio, batch, engine, files, interrupts, modelinfo, progress, schedule, track
from stemclean.stems import STEM_TYPES, guess_stem_type


class _FlagsWithoutTypes:
    """typer 0.29's help shows every flag with a type, ``--quiet <bool>``; a flag takes no value, so show none."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


class _Group(_FlagsWithoutTypes, typer.core.TyperGroup):
    """The ``stemclean`` command group, with plain flags in its help."""


class _Command(_FlagsWithoutTypes, typer.core.TyperCommand):
    """A subcommand, with plain flags and a plain usage line in its help."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        """``run [OPTIONS] STEM``, where typer 0.29 writes a required argument as ``{stem}``."""
        arguments = [p for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return [self.options_metavar, *(p.name.upper() if p.required else f"[{p.name.upper()}]" for p in arguments)]


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
stderr = Console(stderr=True, soft_wrap=True, highlight=False)
StemTypeChoice = Enum("StemTypeChoice", {name: name for name in ("auto", *STEM_TYPES)}, type=str)
ClipMode = Enum("ClipMode", {name: name for name in audio.CLIP_MODES}, type=str)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"stemclean {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Clean stems from music source separators (demucs, Spleeter, UVR) using the original mixture."""


class UsageProblem(Exception):
    """A command line that cannot work as given (exit code 2)."""


@contextmanager
def _reported(debug: bool):
    """Turn failures into one red line and the documented exit code, unless ``--debug`` asks for the traceback.

    SIGINT, SIGTERM and SIGHUP stop the command the same way (see :mod:`stemclean.interrupts`), so each one removes
    the command's temporary files and workers before the process exits with 128 + the signal's number.
    """
    previous = {signum: signal.getsignal(signum) for signum in interrupts.SIGNALS}
    interrupts.install()
    stopping = False
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except (KeyboardInterrupt, interrupts.Interrupted) as err:
        stopped = err if isinstance(err, interrupts.Interrupted) else interrupts.Interrupted(signal.SIGINT)
        stopping = True
        interrupts.ignore_further()
        stderr.print(f"[red]interrupted ({stopped}); unfinished outputs were removed[/red]")
        raise typer.Exit(stopped.exit_code) from None
    except Exception as err:
        if debug:
            raise
        code = 2 if isinstance(err, UsageProblem) else 1
        if isinstance(err, OSError):
            message = files.plain_os_error(err)
        elif isinstance(err, (UsageProblem, audio.AudioError, engine.ModelError, ValueError)):
            message = str(err)
        else:
            message = f"{type(err).__name__}: {err} (rerun with --debug for details)"
        stderr.print(f"[bold red]error:[/bold red] {escape(message)}")
        raise typer.Exit(code) from None
    finally:
        # After a stop signal the handlers stay ignoring: a second Ctrl-C that lands while the interpreter shuts down
        # would otherwise meet Python's own handler and end the process by SIGINT instead of with the promised code.
        if not stopping:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextmanager
def _usage_errors():
    """An option value that the engine or the audio writer refuses is the user's to fix: a usage error (exit 2)."""
    try:
        yield
    except (ValueError, audio.AudioError) as err:
        raise UsageProblem(str(err)) from None


def _check_options(strength: float, device: str) -> None:
    """Check the options shared by ``run`` and ``batch`` before any file is touched."""
    with _usage_errors():
        engine.check_strength(strength)
        engine.providers_for(device)


def _stem_type(choice: str, stem: str, output: str | None) -> str:
    """``--stem-type``, else read from the stem's name, or from ``-o``'s when the stem comes on stdin; else unknown."""
    if choice != "auto":
        return choice
    return guess_stem_type(output if stem == "-" and output else stem)


def _parse_steps(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and 1 <= int(text) <= schedule.MAX_STEPS:
        return int(text)
    raise UsageProblem(f"--steps must be auto or 1..{schedule.MAX_STEPS}, got {text!r}")


def _parse_size(text: str) -> int:
    """``4G``, ``500M``, ``64k`` or a plain number of bytes (powers of 1000, as disks are sold)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?\s*", text)
    if not match:
        raise UsageProblem(f"--max-stdin must be a size such as 4G, 500M or 100000, got {text!r}")
    return int(float(match[1]) * 1000 ** " kmgt".index(match[2].lower() or " "))


def _check_output(output: Path, inputs: list[Path], overwrite: bool) -> None:
    """Refuse outputs that would overwrite an input, land in a missing folder, or replace a file silently."""
    if output.is_dir():
        raise UsageProblem(f"output {output} is a folder; give a file name such as {output / 'vocals_clean.wav'}")
    if not output.parent.is_dir():
        raise UsageProblem(f"output directory {output.parent} does not exist; create it first")
    if any(p.exists() and output.exists() and os.path.samefile(p, output) for p in inputs):
        raise UsageProblem(f"output {output} is one of the inputs; choose another -o")
    if output.exists() and not overwrite:
        raise UsageProblem(f"{output} already exists; pass --overwrite to replace it")


@contextmanager
def _opened_stem(stem: str, max_stdin: int):
    """The stem as a Source; ``-`` spools stdin to a temporary file (soundfile must seek), removed afterwards."""
    if stem != "-":
        yield audio.file_source(stem)
        return
    with audio.stdin_spool(max_stdin) as copy:
        yield audio.file_source(copy, name="<stdin>")


def _output_path(
    stem: str, output: str | None, fmt: str | None, source: audio.Source, mix: Path, overwrite: bool
) -> Path | None:
    """Where ``run`` writes: ``None`` (stdout) for ``-o -`` or a stem from stdin, else ``-o`` or <stem>_clean.<ext>."""
    if output == "-" or (output is None and stem == "-"):
        return None
    if output is None:
        ext = audio.output_format(fmt, None, source.format).lower()
        output = str(Path(stem).with_name(f"{Path(stem).stem}_clean.{ext}"))
    _check_output(Path(output), [Path(stem), mix], overwrite)
    return Path(output)


def _summary_line(summary: dict) -> str:
    """What was done, truthfully: the steps, or why there were none, and any gain the clip mode applied."""
    where = "stdout" if summary["output"] == "-" else summary["output"]
    stem_type = summary["stem_type"]
    what = f"{stem_type} (set it with --stem-type)" if stem_type == "unknown" else stem_type
    gain = (
        f"; turned down {-20 * math.log10(summary['gain']):.1f} dB so that it does not clip (--clip-mode)"
        if summary["gain"] < 1.0
        else ""
    )
    if summary["steps"]:
        return (
            f"{where}: {what}; {summary['steps']} step(s) from level {summary['start_level']:.2f}, "
            f"{summary['realtime_factor']:.1f}x real time{gain}"
        )
    why = "strength 0" if summary["strength"] == 0 else f"input looks clean (level {summary['start_level']:.2f})"
    return f"{where}: {what}; {why}; copied{gain or ' unchanged'}"


def _json(value) -> str:
    """Strict JSON: a NaN or infinity is a bug to report, not a bare ``NaN`` that no JSON parser accepts."""
    return json.dumps(value, allow_nan=False)


Steps = Annotated[str, typer.Option("--steps", "-s", help="Sampler steps: auto (as many as the input needs) or 1..8.")]
Strength = Annotated[float, typer.Option(help="0 keeps the input, 1 the cleaned stem; in between blends them.")]
Device = Annotated[str, typer.Option("--device", "-d", help="auto, cpu, cuda or cuda:N.")]
ModelPath = Annotated[
    Optional[Path],
    typer.Option(help=f"ONNX model. Default: ${engine.MODEL_ENV}, else the shipped {engine.DEFAULT_MODEL.name}."),
]
Format = Annotated[
    Optional[str], typer.Option("--format", help="Output container (wav, flac, ...). Default: the input's.")
]
Subtype = Annotated[
    Optional[str], typer.Option(help="Sample encoding (PCM_16, PCM_24, FLOAT, ...). Default: the input's.")
]
Clip = Annotated[ClipMode, typer.Option(help="Peaks over full scale: rescale the file, clamp samples, or none.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace existing outputs (inputs are never overwritten).")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a JSON summary (to stdout, or stderr when -o -).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]
MaxStdin = Annotated[
    str, typer.Option("--max-stdin", help="Largest stream accepted on stdin (it is spooled to $TMPDIR), e.g. 4G, 500M.")
]


@app.command(cls=_Command)
def run(
    stem: Annotated[
        str, typer.Argument(help="The separated stem (WAV, FLAC, ...), or - for a WAV/FLAC stream on stdin.")
    ],
    mix: Annotated[Path, typer.Option("--mix", "-m", help="The mixture the stem was separated from.")],
    output: Annotated[
        Optional[str],
        typer.Option(
            "--output", "-o", help="Output file, or - for stdout. Default: <stem>_clean.<ext> beside the stem."
        ),
    ] = None,
    steps: Steps = "auto",
    strength: Strength = 1.0,
    stem_type: Annotated[
        StemTypeChoice,
        typer.Option(help="What the stem holds; auto reads it from the stem's file name, or -o's for stdin."),
    ] = StemTypeChoice.auto,
    device: Device = "auto",
    model: ModelPath = None,
    fmt: Format = None,
    subtype: Subtype = None,
    clip_mode: Clip = ClipMode.rescale,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
    max_stdin: MaxStdin = "4G",
) -> None:
    """Clean one stem using its mix.

    [dim]Examples:[/dim]
      stemclean run separated/htdemucs/song/vocals.wav --mix song.wav
      stemclean run vocals.flac -m mix.flac -o vocals_clean.flac --steps 2
      cat vocals.wav | stemclean run - -m mix.wav --stem-type vocals -o - > vocals_clean.wav
    """
    with _reported(debug):
        steps_value = _parse_steps(steps)
        _check_options(strength, device)
        with _opened_stem(stem, _parse_size(max_stdin)) as stem_source:
            with _usage_errors():
                out_path = _output_path(stem, output, fmt, stem_source, mix, overwrite)
                to_stdout_as = "WAV" if out_path is None else None
                out_fmt = audio.output_format(fmt or to_stdout_as, out_path, stem_source.format)
                audio.output_subtype(out_fmt, subtype, stem_source)
            mix_source = audio.file_source(mix)
            resolved_type = _stem_type(stem_type.value, stem, output)
            loaded = engine.Model(model, device=device)
            with progress.display(stderr, quiet) as shown:
                task = shown.add_task(f"cleaning {stem_source.name}", total=None)
                summary = engine.clean_file(
                    stem_source,
                    mix_source,
                    out_path,
                    loaded,
                    steps=steps_value,
                    strength=strength,
                    stem_type=resolved_type,
                    fmt=out_fmt,
                    subtype=subtype,
                    clip_mode=clip_mode.value,
                    overwrite=overwrite,
                    on_progress=lambda done, total: shown.update(task, completed=done, total=total),
                )
    if json_out:
        (stderr.file if out_path is None else sys.stdout).write(_json(summary) + "\n")
    elif not quiet:
        stderr.print(_summary_line(summary))


@app.command(name="batch", cls=_Command)
def batch_command(
    root: Annotated[Path, typer.Argument(help="Folder with separated stems (demucs or audio-separator layout).")],
    outdir: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Output root; the input tree is mirrored. Default: beside.")
    ] = None,
    mix_dir: Annotated[
        Optional[Path], typer.Option(help="Folder with the mixes, found as <track>.wav or <track>/mixture.wav.")
    ] = None,
    mix_from_stems: Annotated[
        bool, typer.Option("--mix-from-stems", help="Use the sum of each track's stems as its mix.")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Files (tracks with --joint) cleaned in parallel.")
    ] = batch.DEFAULT_JOBS,
    joint: Annotated[
        bool, typer.Option("--joint", help="Clean each track's stems together so they add up to its mix (as track).")
    ] = False,
    steps: Steps = "auto",
    strength: Strength = 1.0,
    device: Device = "auto",
    model: ModelPath = None,
    fmt: Format = None,
    subtype: Subtype = None,
    clip_mode: Clip = ClipMode.rescale,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Clean every stem under ROOT. Outputs: <output>/<path under ROOT>/<name>_clean.<ext>; existing ones are skipped.

    [dim]Examples:[/dim]
      stemclean batch separated --mix-dir songs -j 2
      stemclean batch separated --mix-from-stems -o cleaned --format flac
      stemclean batch --joint separated --mix-dir songs
    """
    with _reported(debug):
        steps_value = _parse_steps(steps)
        if (mix_dir is None) == (not mix_from_stems):
            raise UsageProblem("give exactly one of --mix-dir DIR or --mix-from-stems")
        for folder, label in ((root, "ROOT"), (mix_dir, "--mix-dir")):
            if folder is not None and not folder.is_dir():
                raise UsageProblem(f"{label} {folder} is not a folder")
        if jobs < 1:
            raise UsageProblem(f"--jobs must be at least 1, got {jobs}")
        _check_options(strength, device)
        workers = batch.worker_limit(jobs)
        if workers < jobs and not quiet:
            stderr.print(f"-j {jobs}: running {workers} at once (the cores and memory of this machine allow no more)")
        with _usage_errors():
            suffix = f".{audio.output_format(fmt, None, 'WAV').lower()}" if fmt else None
        planned = batch.plan(root, outdir, mix_dir, suffix)
        if not planned:
            raise audio.AudioError(
                f"no stems found under {root} (expected <model>/<track>/<stem>.wav or <track>_(Stem)_<model>.wav)"
            )
        if joint:
            units = batch.tracks(planned)
            todo = [u for u in units if overwrite or not all(job.output.exists() for job in u)]
            skipped = [batch.track_result(u, "skipped", reason=batch.ALL_EXIST) for u in units if u not in todo]
        else:
            todo = [job for job in planned if overwrite or not job.output.exists()]
            skipped = [batch.result(j, "skipped", reason=batch.EXISTS) for j in planned if j not in todo]
        loaded = engine.Model(model, device=device)
        options = {
            "steps": steps_value,
            "strength": strength,
            "fmt": fmt,
            "subtype": subtype,
            "clip_mode": clip_mode.value,
            "overwrite": overwrite,
        }
        with progress.display(stderr, quiet) as shown:
            task = shown.add_task(f"cleaning {len(todo)} {'track' if joint else 'stem'}(s)", total=len(todo))
            results = batch.run(todo, loaded, mix_dir, options, workers, lambda _: shown.advance(task), joint)
    results = sorted(skipped + results, key=lambda r: r["folder" if joint else "stem"])
    if json_out:
        sys.stdout.write(_json(results) + "\n")
    elif not quiet:
        stderr.print(_joint_table(results, mix_from_stems) if joint else _batch_table(results))
    if any(r["status"] == "failed" for r in results):
        raise typer.Exit(1)


def _batch_table(results: list[dict]) -> Table:
    table = Table(title="stemclean batch", title_justify="left")
    for column in ("stem", "status", "steps", "detail"):
        table.add_column(column, overflow="fold")  # long paths wrap whole instead of ending in an ellipsis
    styles = {"cleaned": "green", "skipped": "dim", "failed": "bold red"}
    for r in results:
        if r["status"] == "cleaned":
            detail = f"{r['output']} ({r['realtime_factor']:.1f}x real time)"
        else:
            detail = r.get("error") or f"{r['output']}: {r['reason']}"
        steps = str(r["steps"]) if "steps" in r else ""
        table.add_row(r["stem"], f"[{styles[r['status']]}]{r['status']}[/]", steps, escape(detail))
    counts = {s: sum(r["status"] == s for r in results) for s in styles}
    table.caption = ", ".join(f"{n} {s}" for s, n in counts.items())
    return table


def _sum_line(summary: dict, mix_from_stems: bool) -> str:
    """What the cleaned stems add up to, for ``track`` and ``batch --joint``."""
    before, after = summary["sum_error_before_db"], summary["sum_error_after_db"]
    if before is None:
        line = "the mix is silent, so no sum-to-mix error can be measured"
    else:
        line = f"sum-to-mix error {before:.1f} dB before, {after:.1f} dB after"
    if not summary["consistency"]:
        line += " (--consistency off: each stem cleaned on its own)"
    elif not any(stem["steps"] for stem in summary["stems"]):
        line += " (no stem needed cleaning; all copied unchanged)"
    if mix_from_stems:
        line += (
            "; the mix is the sum of the stems, so consistency holds trivially: the outputs add up to the input stems,"
            " not to the original song (pass --mix for that)"
        )
    if summary["gain"] != 1.0:
        line += f"; every output was scaled by {summary['gain']:.3f} to fit full scale, so they add up to that x the mix"
    return line


def _track_lines(summary: dict, mix_from_stems: bool) -> list[str]:
    lines = []
    for stem in summary["stems"]:
        if stem["silent"]:
            lines.append(f"{stem['output']}: silent stem; copied unchanged")
        elif not stem["levels"]:
            lines.append(f"{stem['output']}: input looks clean (level {stem['start_level']:.2f}); copied unchanged")
        else:
            lines.append(f"{stem['output']}: {stem['steps']} step(s) from level {stem['start_level']:.2f}")
    return lines + [_sum_line(summary, mix_from_stems), f"{summary['realtime_factor']:.1f}x real time"]


def _joint_table(results: list[dict], mix_from_stems: bool) -> Table:
    table = Table(title="stemclean batch --joint", title_justify="left")
    for column in ("track", "status", "stems", "detail"):
        table.add_column(column, overflow="fold")
    styles = {"cleaned": "green", "skipped": "dim", "failed": "bold red"}
    for r in results:
        cleaned = r["status"] == "cleaned"
        detail = _sum_line(r, mix_from_stems) if cleaned else r.get("error") or r["reason"]
        stems = str(len(r["stems"])) if cleaned else ""
        table.add_row(r["folder"], f"[{styles[r['status']]}]{r['status']}[/]", stems, escape(detail))
    counts = {s: sum(r["status"] == s for r in results) for s in styles}
    table.caption = ", ".join(f"{n} {s}" for s, n in counts.items())
    return table


ConsistencyChoice = Enum("ConsistencyChoice", {"on": "on", "off": "off"}, type=str)


@app.command(name="track", cls=_Command)
def track_command(
    folder: Annotated[
        Path, typer.Argument(help="One track's stems: demucs' <model>/<track> folder, or audio-separator/UVR files.")
    ],
    mix: Annotated[
        Optional[Path], typer.Option("--mix", "-m", help="The mixture the stems were separated from.")
    ] = None,
    mix_from_stems: Annotated[
        bool, typer.Option("--mix-from-stems", help="No mix at hand: use the sum of the stems (consistency is then "
                           "trivial).")
    ] = False,
    outdir: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Output folder, mirrored as in batch. Default: beside.")
    ] = None,
    consistency: Annotated[
        ConsistencyChoice,
        typer.Option(help="on: make the cleaned stems add up to the mix; off: clean each on its own, as run does."),
    ] = ConsistencyChoice.on,
    steps: Steps = "auto",
    strength: Strength = 1.0,
    device: Device = "auto",
    model: ModelPath = None,
    fmt: Format = None,
    subtype: Subtype = None,
    clip_mode: Clip = ClipMode.rescale,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    json_out: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Clean every stem of one track together, so that they still add up to the mix.

    Outputs are named as in batch: <output>/<name>_clean.<ext>.

    [dim]Examples:[/dim]
      stemclean track separated/htdemucs/song --mix song.wav
      stemclean track separated/htdemucs/song --mix-from-stems -o cleaned --format flac
    """
    with _reported(debug):
        steps_value = _parse_steps(steps)
        if (mix is None) == (not mix_from_stems):
            raise UsageProblem("give exactly one of --mix MIX or --mix-from-stems")
        if not folder.is_dir():
            raise UsageProblem(f"{folder} is not a folder")
        _check_options(strength, device)
        with _usage_errors():
            suffix = f".{audio.output_format(fmt, None, 'WAV').lower()}" if fmt else None
        stems = _one_track(folder, outdir, suffix, mix)
        for job in stems:
            job.output.parent.mkdir(parents=True, exist_ok=True)
            _check_output(job.output, [j.stem for j in stems] + ([mix] if mix else []), overwrite)
        mix_source = audio.file_source(mix) if mix else batch.mix_source(stems[0], None)
        loaded = engine.Model(model, device=device)
        with progress.display(stderr, quiet) as shown:
            task = shown.add_task(f"cleaning {folder}", total=None)
            summary = track.clean_files(
                [audio.file_source(job.stem) for job in stems],
                mix_source,
                [job.output for job in stems],
                loaded,
                names=[batch.stem_name(job.stem) for job in stems],
                stem_types=[job.stem_type for job in stems],
                steps=steps_value,
                strength=strength,
                consistency_on=consistency.value == "on",
                fmt=fmt,
                subtype=subtype,
                clip_mode=clip_mode.value,
                overwrite=overwrite,
                on_progress=lambda done, total: shown.update(task, completed=done, total=total),
            )
    if json_out:
        sys.stdout.write(_json({**summary, "mix_from_stems": mix_from_stems}) + "\n")
    elif not quiet:
        for line in _track_lines(summary, mix_from_stems):
            stderr.print(escape(line))


def _one_track(folder: Path, outdir: Path | None, suffix: str | None, mix: Path | None) -> tuple[batch.Job, ...]:
    """The stems of the one separation in ``folder`` (the mix file itself never counts as a stem)."""
    planned = [
        job for job in batch.plan(folder, outdir, None, suffix)
        if mix is None or not (mix.exists() and os.path.samefile(job.stem, mix))
    ]
    separations = batch.tracks(planned)
    if not separations:
        raise audio.AudioError(
            f"no stems found in {folder} (expected <stem>.wav such as vocals.wav, or <track>_(Stem)_<model>.wav)"
        )
    if len(separations) > 1:
        found = ", ".join(sorted({f"{group[0].track} ({group[0].stem.parent})" for group in separations}))
        raise UsageProblem(
            f"{folder} holds {len(separations)} separations ({found}); give one track's folder, or clean them all "
            "with batch --joint"
        )
    return separations[0]


@app.command(cls=_Command)
def info(
    model: ModelPath = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print everything, the whole model card included, as JSON.")
    ] = False,
) -> None:
    """Show the model and a summary of its card, the device auto picks, and the versions in use."""
    with _reported(debug=False):
        found = modelinfo.details(model or engine.default_model_path())
    text = json.dumps(found, indent=2) if json_out else "\n".join(modelinfo.summary(found))
    with _reader_may_leave():
        sys.stdout.write(text + "\n")


@contextmanager
def _reader_may_leave():
    """A reader that stops early (``stemclean info | head -1``) is no failure: exit 0 quietly, as head expects."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit; pointing it at devnull keeps that flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
