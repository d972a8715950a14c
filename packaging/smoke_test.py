"""Smoke test of the frozen bundle (dist/lipdub-studio), run headless.

    .venv/bin/python packaging/smoke_test.py [--dist dist/lipdub-studio] [--keep DIR]

0. Checks that every library a bundled binary links against is in the bundle or is a system library
   (what trimming could break without any run noticing).
1. Generates a two-second clip with PyAV: frames and speech from a real clip in ../shared/media/video
   when that folder is present (so the analysis has a face to find), else a synthetic picture and tone
   (then an empty face analysis is accepted).
2. Runs ``lipdub-studio --smoke-test CLIP --dub AUDIO`` with ``QT_QPA_PLATFORM=offscreen``: the frozen
   app finds its model files inside the bundle, loads every native library, opens the clip in its
   main window (probe, thumbnails, face analysis), renders the preview frame, then adds a two-second
   dub, assigns it to the person found and waits for the lip-synced preview frame (screenshots saved as
   PNG); it also detects speech and computes Whisper features. Must exit 0; with a real face the
   preview must come back lip-synced.
3. Runs the frozen ``lipdub`` command line on the clip: ``--version``, ``probe``, and ``analyse`` /
   ``render`` when the build has them; a render must write a playable video of the clip's length.

The frozen programs run from a scratch folder with a scrubbed environment (no PYTHONPATH, no virtual
environment) and private cache/data folders, so they can only use what the bundle holds.
Prints one line per step with its wall time; exits 1 on the first failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIPDUB_SHARED_MEDIA", ROOT.parent / "shared" / "media"))
SHARED_VIDEO = SHARED / "video"
DUB_AUDIO = SHARED / "audio" / "dub_german1.wav"
#: frontal single-face clips, best first
FACE_CLIPS = ("retalking_face_1.mp4", "retalking_face_2.mp4", "hdtf_katiehill.mp4", "radio_glasses.mp4")
CLIP_SECONDS = 2.0
EXE_SUFFIX = ".exe" if sys.platform == "win32" else ""


class SmokeFailure(Exception):
    pass


# --- the clip ---------------------------------------------------------------------------------------


def _source_clip() -> Path | None:
    for name in FACE_CLIPS:
        p = SHARED_VIDEO / name
        if p.is_file():
            return p
    return None


def make_clip(out: Path, seconds: float = CLIP_SECONDS, fps: int = 25, size: int = 256) -> bool:
    """Write an H.264 + AAC clip; True when its frames come from a real face clip."""
    import av

    src = _source_clip()
    n_frames = round(seconds * fps)
    frames: list[np.ndarray] = []
    audio = np.zeros(0, np.float32)
    rate = 16000
    if src is not None:
        with av.open(str(src)) as c:
            vs = c.streams.video[0]
            for f in c.decode(vs):
                frames.append(f.to_ndarray(format="rgb24", width=size, height=size))
                if len(frames) >= n_frames:
                    break
        with av.open(str(src)) as c:
            if c.streams.audio:
                res = av.AudioResampler(format="flt", layout="mono", rate=rate)
                chunks = []
                for f in c.decode(c.streams.audio[0]):
                    chunks += [r.to_ndarray().reshape(-1) for r in res.resample(f)]
                    if sum(len(x) for x in chunks) >= seconds * rate:
                        break
                audio = np.concatenate(chunks)[: int(seconds * rate)] if chunks else audio
    if not frames:
        yy, xx = np.mgrid[0:size, 0:size]
        for i in range(n_frames):
            rgb = np.stack([(xx + 4 * i) % 256, yy % 256, np.full_like(xx, 96)], axis=-1)
            frames.append(rgb.astype(np.uint8))
    if len(audio) < seconds * rate:
        t = np.arange(int(seconds * rate)) / rate
        audio = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)

    with av.open(str(out), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = size, size, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "20"}
        ast = c.add_stream("aac", rate=rate)
        ast.layout = "mono"
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            c.mux(vs.encode(vf))
        c.mux(vs.encode())
        block = 1024
        for i in range(0, len(audio), block):
            chunk = audio[i:i + block].reshape(1, -1)
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
            af.sample_rate = rate
            af.pts = i
            af.time_base = Fraction(1, rate)
            c.mux(ast.encode(af))
        c.mux(ast.encode())
    return src is not None


def make_dub(out: Path, fallback: Path, seconds: float = CLIP_SECONDS) -> Path:
    """A dubbed track for the render: the first seconds of a real dub as WAV, else the clip itself."""
    import av

    if not DUB_AUDIO.is_file():
        return fallback
    rate = 16000
    res = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks: list[np.ndarray] = []
    with av.open(str(DUB_AUDIO)) as c:
        for f in c.decode(c.streams.audio[0]):
            chunks += [r.to_ndarray().reshape(-1) for r in res.resample(f)]
            if sum(len(x) for x in chunks) >= seconds * rate:
                break
    pcm = np.concatenate(chunks)[: int(seconds * rate)]
    with av.open(str(out), "w") as c:
        st = c.add_stream("pcm_s16le", rate=rate)
        st.layout = "mono"
        af = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        af.sample_rate = rate
        af.pts = 0
        af.time_base = Fraction(1, rate)
        c.mux(st.encode(af))
        c.mux(st.encode())
    return out


# --- running the frozen programs -----------------------------------------------------------------------


def _env(scratch: Path) -> dict[str, str]:
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        LIPDUB_CACHE_DIR=str(scratch / "cache"),
        LIPDUB_DATA_DIR=str(scratch / "data"),
        XDG_CONFIG_HOME=str(scratch / "config"),  # the app's QSettings
        XDG_CACHE_HOME=str(scratch / "xdg-cache"),
        LIPDUB_TORCH_THREADS=env.get("LIPDUB_TORCH_THREADS", "1"),
        PYTHONNOUSERSITE="1",
    )
    return env


def run(step: str, cmd: list[str], scratch: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=scratch, env=_env(scratch), capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t0
    status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
    print(f"[{dt:6.1f} s] {step}: {status}", flush=True)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        sys.stdout.write(proc.stderr[-4000:])
        raise SmokeFailure(f"{step} exited {proc.returncode}")
    return proc


def _result_line(proc: subprocess.CompletedProcess[str]) -> dict:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("SMOKE-RESULT "):
            return dict(json.loads(line[len("SMOKE-RESULT "):]))
    raise SmokeFailure("the frozen app printed no SMOKE-RESULT line")


#: libraries the bundle expects from the target system, which this build machine may lack
DESKTOP_SYSTEM_LIBS = ("libpulse", "libxcb-", "libxkbcommon", "libwayland-", "libEGL", "libGL", "libgtk-3",
                       "libgdk-3", "libatk-", "libpango", "libcairo", "libgdk_pixbuf", "libdbus-", "libfontconfig",
                       "libfreetype", "libX", "libva", "libdrm", "libgbm", "libvulkan", "libproxy", "libgssapi")


def unresolved_libraries(dist: Path) -> dict[str, list[str]]:
    """Shared libraries that bundled binaries link against but that are neither in the bundle nor known
    to this system's loader, other than the desktop libraries a target provides. Linux only."""
    if sys.platform != "linux" or shutil.which("readelf") is None:
        return {}
    bundled = {p.name for p in dist.rglob("*.so*")}
    system = set()
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        system.add(line.strip().split(" ", 1)[0])
    missing: dict[str, list[str]] = {}
    for lib in sorted(p for p in dist.rglob("*.so*") if p.is_file()):
        dyn = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
        for line in dyn.splitlines():
            if "(NEEDED)" not in line:
                continue
            name = line.rsplit("[", 1)[-1].rstrip("]")
            if name in bundled or name in system or name.startswith(DESKTOP_SYSTEM_LIBS):
                continue
            missing.setdefault(name, []).append(str(lib.relative_to(dist)))
    return missing


def _subcommands(cli: Path, scratch: Path) -> set[str]:
    text = run("lipdub --help", [str(cli), "--help"], scratch).stdout
    found = set()
    for word in ("probe", "analyse", "render", "export", "eval"):
        if f" {word} " in text or f"{{{word}" in text or f",{word}" in text or f"{word}," in text:
            found.add(word)
    return found


def _video_seconds(path: Path) -> tuple[float, int]:
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        n = sum(1 for _ in c.decode(vs))
        rate = float(vs.average_rate or 25)
    return n / rate, n


def smoke(dist: Path, scratch: Path) -> None:
    gui = dist / f"lipdub-studio{EXE_SUFFIX}"
    cli = dist / f"lipdub{EXE_SUFFIX}"
    for exe in (gui, cli):
        if not exe.is_file():
            raise SmokeFailure(f"{exe} does not exist: build it with packaging/build.sh")

    t0 = time.perf_counter()
    missing = unresolved_libraries(dist)
    print(f"[{time.perf_counter() - t0:6.1f} s] linked libraries resolve: {'ok' if not missing else 'FAILED'}")
    if missing:
        for name, users in missing.items():
            print(f"    {name} is needed by {', '.join(users[:3])}{' ...' if len(users) > 3 else ''}")
        raise SmokeFailure("bundled binaries link against libraries that are neither bundled nor on the system")

    clip = scratch / "clip.mp4"
    real_face = make_clip(clip)
    print(f"clip: {clip} ({'frames from ' + str(_source_clip()) if real_face else 'synthetic, no face'})")

    dub = make_dub(scratch / "dub.wav", clip)
    print(f"dub track: {dub.name}" + (f" (first {CLIP_SECONDS:.0f} s of {DUB_AUDIO.name})" if dub != clip else ""))
    proc = run("lipdub-studio --smoke-test (start, open, analyse, preview frame, assign a dub)",
               [str(gui), "--smoke-test", str(clip), "--dub", str(dub), "--out", str(scratch / "gui")], scratch)
    result = _result_line(proc)
    for key in ("qt_platform", "analysis", "audio", "preview", "lipsync_preview", "screenshots"):
        print(f"    {key}: {json.dumps(result.get(key))}")
    if not result.get("ok"):
        raise SmokeFailure(f"smoke test reported failure: {result}")
    if real_face and result["analysis"]["identities"] < 1:
        raise SmokeFailure("the frozen app found no face in a clip of a frontal face")
    for png in result["screenshots"]:
        if not Path(png).is_file():
            raise SmokeFailure(f"{png} was not written")
    lips = result.get("lipsync_preview") or {}
    if real_face and not lips.get("lip_synced"):
        raise SmokeFailure(f"the preview shows no lip-synced frame after assigning the dub: {lips.get('note')}")

    cmds = _subcommands(cli, scratch)
    print(f"    CLI subcommands in this build: {', '.join(sorted(cmds)) or 'none'}")
    print("   ", run("lipdub --version", [str(cli), "--version"], scratch).stdout.strip())
    if "probe" in cmds:
        run("lipdub probe", [str(cli), "probe", str(clip)], scratch)
    if "analyse" in cmds:
        run("lipdub analyse", [str(cli), "analyse", str(clip)], scratch)
    if "render" in cmds:
        out = scratch / "rendered.mp4"
        run("lipdub render (two-second clip)", [str(cli), "render", str(clip), "--track", str(dub),
                                                "--out", str(out), "--no-library"], scratch)
        seconds, n = _video_seconds(out)
        print(f"    rendered {out.name}: {n} frames, {seconds:.2f} s")
        if abs(seconds - CLIP_SECONDS) > 0.2:
            raise SmokeFailure(f"the rendered clip lasts {seconds:.2f} s, expected {CLIP_SECONDS}")
    else:
        print("    (this build has no `lipdub render` yet: the CLI render step was skipped)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist" / "lipdub-studio")
    parser.add_argument("--keep", type=Path, help="keep the clip, PNG and outputs in this folder")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="lipdub-smoke-"))
    t0 = time.perf_counter()
    try:
        smoke(args.dist.resolve(), scratch)
    except (SmokeFailure, subprocess.TimeoutExpired) as exc:
        print(f"SMOKE TEST FAILED: {exc}")
        return 1
    finally:
        if args.keep:
            shutil.copytree(scratch, args.keep, dirs_exist_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"SMOKE TEST PASSED in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
