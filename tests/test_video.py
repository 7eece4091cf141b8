"""Videos through `ptm zebrafy`: every frame, its time stamp and the audio kept; GIFs; hostile files.

Clips are made here (tests/video_helpers.py). The generator is a tiny random one, whose output
is colour noise: H.264 stores colour at half resolution (yuv420p), so frames are compared after
the same yuv420p conversion, where --crf 0 must be exact and the default CRF close.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("av")

from conftest import EXAMPLES, ptm_command
from video_helpers import audio_packets, frames_of, make_clip
from zebra_helpers import save_generator


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    return save_generator(tmp_path_factory.mktemp("w") / "small.pth", "book", ngf=4, n_blocks=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s at 25 fps, 160 x 96, with an AAC tone."""
    return make_clip(tmp_path_factory.mktemp("clips") / "ride.mp4", size=(160, 96))


def zebrafy(run_ptm, *args, **kwargs):
    return run_ptm("zebrafy", *map(str, args), **kwargs)


def yuv420(picture):
    import av

    frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
    return frame.reformat(format="yuv420p").reformat(format="rgb24").to_ndarray()


def test_mp4_keeps_every_frame_its_time_and_the_audio_packets(run_ptm, tmp_path, clip, small_weights):
    import av
    import numpy as np
    from PIL import Image

    out, exact = tmp_path / "ride_zebra.mp4", tmp_path / "exact.mp4"
    done = zebrafy(run_ptm, clip, "-o", out, "--weights", small_weights)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{clip}\t{out}\n" and done.stderr == ""
    assert zebrafy(run_ptm, clip, "-o", exact, "--weights", small_weights, "--crf", "0").returncode == 0

    source, written, lossless = frames_of(clip), frames_of(out), frames_of(exact)
    assert [t for _, t in written] == [t for _, t in source] == [t for _, t in lossless]
    assert len(written) == 50
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate == 25
        assert b.streams.video[0].codec_context.name == "h264"
        assert b.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert audio_packets(out) == audio_packets(clip) and len(audio_packets(clip)) > 80

    # The same frames as PNGs through `ptm zebrafy`, the photo path.
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    for i, (picture, _) in enumerate(source):
        Image.fromarray(picture).save(pngs / f"f{i:03d}.png")
    assert zebrafy(run_ptm, pngs, "-o", f"{tmp_path / 'photos'}/", "--weights", small_weights).returncode == 0
    for i, ((frame, _), (exact_frame, _)) in enumerate(zip(written, lossless)):
        photo = yuv420(np.asarray(Image.open(tmp_path / "photos" / f"f{i:03d}_zebra.png").convert("RGB")))
        assert np.array_equal(exact_frame, photo), i
        # Default CRF 18 on colour noise: measured 4.6 levels on average, 5.1 for the worst frame.
        assert np.abs(frame.astype(int) - photo).mean() < 6, i


def test_gif_out_has_every_frame_and_the_durations(run_ptm, tmp_path, clip, small_weights):
    from PIL import Image

    gif = tmp_path / "ride.gif"
    assert zebrafy(run_ptm, clip, "-o", gif, "--weights", small_weights).returncode == 0
    with Image.open(gif) as image:
        assert image.n_frames == 50
        durations = [frame_duration(image, i) for i in range(image.n_frames)]
    assert durations == [40] * 50

    # Moving pictures with their own durations in: the same durations out, in the same kind of file.
    frames = [Image.effect_noise((48, 32), 60 + 40 * i).convert("RGB") for i in range(3)]
    for suffix in (".gif", ".webp", ".png"):
        moving = tmp_path / f"moving{suffix}"
        frames[0].save(moving, save_all=True, append_images=frames[1:], duration=[60, 120, 250], loop=0)
        done = zebrafy(run_ptm, moving, "-o", f"{tmp_path / 'out'}/", "--weights", small_weights)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{moving}\t{tmp_path / 'out' / f'moving_zebra{suffix}'}\n"
        with Image.open(tmp_path / "out" / f"moving_zebra{suffix}") as image:
            assert [frame_duration(image, i) for i in range(image.n_frames)] == [60, 120, 250], suffix


def frame_duration(image, index: int) -> int:
    image.seek(index)
    image.load()  # WebP sets the duration once the frame is decoded
    return image.info["duration"]


def test_frames_folder_and_a_short_piece(run_ptm, tmp_path, clip, small_weights):
    frames = tmp_path / "frames"
    done = zebrafy(run_ptm, clip, "-o", f"{frames}/", "--name", "{stem}_{frame:05d}.png", "--weights", small_weights,
                   "--frames", "3")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in frames.iterdir()) == ["ride_00000.png", "ride_00001.png", "ride_00002.png"]
    assert done.stdout.splitlines() == [f"{clip}\t{frames / name}" for name in sorted(os.listdir(frames))]

    piece = tmp_path / "piece.mp4"
    done = zebrafy(run_ptm, clip, "-o", piece, "--weights", small_weights, "--start", "0.4", "--duration", "0.4")
    assert done.returncode == 0, done.stderr
    assert [round(t, 2) for _, t in frames_of(piece)] == [round(0.4 + 0.04 * i, 2) for i in range(10)]
    assert all(0.4 - 0.03 <= t < 0.8 for t, _ in audio_packets(piece))


def test_webm_keeps_opus_and_an_mp4s_aac_is_left_out_with_a_note(run_ptm, tmp_path, clip, small_weights):
    import av

    webm = make_clip(tmp_path / "in.webm", seconds=1.0, size=(96, 64), codec="libvpx-vp9")
    out = tmp_path / "out.webm"
    done = zebrafy(run_ptm, webm, "-o", out, "--weights", small_weights)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
    assert len(frames_of(out)) == len(frames_of(webm)) == 25
    assert audio_packets(out) == audio_packets(webm)

    done = zebrafy(run_ptm, clip, "-o", tmp_path / "no_sound.webm", "--weights", small_weights)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (f"ptm: note: {clip}: its audio cannot go into .webm and was left out "
                           "(.mp4 or .mkv keep it)\n")
    assert audio_packets(tmp_path / "no_sound.webm") == []


@pytest.mark.skipif(shutil.which("ffmpeg") is None,
                    reason="the ffmpeg command (apt-get install ffmpeg) sets and cross-checks the rotation")
def test_rotation_metadata_is_honoured_as_ffmpeg_does(tmp_path):
    import numpy as np

    from ptmcli.pixels.video import Clip, video_frames

    for rotation in (90, -90, 180):
        plain = make_clip(tmp_path / "plain.mp4", seconds=0.2, size=(64, 48), audio=False)
        rotated = tmp_path / f"r{rotation}.mp4"
        # -metadata rotate= (ffmpeg 5, Debian 12) and -display_rotation (ffmpeg 6+) both write the display matrix.
        subprocess.run(["ffmpeg", "-v", "error", "-i", plain, "-c", "copy", "-metadata:s:v:0", f"rotate={rotation}",
                        rotated], check=True)
        reference = tmp_path / f"r{rotation}.png"
        subprocess.run(["ffmpeg", "-v", "error", "-i", rotated, "-frames:v", "1", reference], check=True)
        ours = next(video_frames(str(rotated), Clip(short_side=0)))[0].rgb
        from PIL import Image

        theirs = np.asarray(Image.open(reference).convert("RGB"))
        assert ours.shape == theirs.shape == ((48, 64, 3) if rotation == 180 else (64, 48, 3))
        assert np.abs(ours.astype(int) - theirs).mean() < 3, rotation


def test_hostile_videos_fail_one_line_each_and_the_rest_is_done(run_ptm, tmp_path, clip, small_weights):
    data = clip.read_bytes()
    hostile = tmp_path / "in"
    hostile.mkdir()
    (hostile / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (hostile / "empty.mp4").write_bytes(b"")
    (hostile / "junk.mkv").write_bytes(os.urandom(3000))
    make_clip(hostile / "header_only.mp4", seconds=0.4, size=(64, 48), audio=False)
    header_only = (hostile / "header_only.mp4").read_bytes()
    (hostile / "header_only.mp4").write_bytes(header_only[: header_only.index(b"mdat") + 4])
    (hostile / "photo.png").write_bytes((EXAMPLES / "coffee.png").read_bytes())
    out = tmp_path / "out"
    done = zebrafy(run_ptm, hostile, "-o", f"{out}/", "--weights", small_weights, "--size", "32")
    assert done.returncode == 1
    assert done.stdout == f"{hostile / 'photo.png'}\t{out / 'photo_zebra.png'}\n"
    lines = sorted(done.stderr.splitlines())
    assert [line.split(": ")[1] for line in lines] == [str(hostile / name) for name in
                                                        ("empty.mp4", "header_only.mp4", "junk.mkv", "truncated.mp4")]
    assert lines[0] == f"ptm: {hostile / 'empty.mp4'}: an empty file"
    assert all("cannot decode video" in line or "without a frame" in line for line in lines[1:]), lines
    assert sorted(p.name for p in out.iterdir()) == ["photo_zebra.png"]  # no temporary file left

    done = zebrafy(run_ptm, clip, "-o", tmp_path / "big.mp4", "--weights", small_weights,
                   env={"PTM_MAX_PIXELS": "10000"})
    assert done.returncode == 1
    assert done.stderr == (f"ptm: {clip}: 160x96 video frames are more than 10,000 pixels; "
                           "set PTM_MAX_PIXELS to allow them\n")
    assert not (tmp_path / "big.mp4").exists()


def test_photos_and_videos_refuse_the_wrong_kind_of_output(run_ptm, tmp_path, clip, small_weights):
    done = zebrafy(run_ptm, clip, "-o", tmp_path / "one.jpg", "--weights", small_weights)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"ptm: error: {tmp_path / 'one.jpg'}: a video cannot be written as '.jpg'"
    photo = EXAMPLES / "coffee.png"
    done = zebrafy(run_ptm, photo, clip, "-o", f"{tmp_path / 'out'}/", "--name", "{stem}.mp4", "--weights",
                   small_weights, "--size", "32")
    assert done.returncode == 1
    assert done.stderr == f"ptm: {photo}: a photo cannot be written as .mp4: give photos a .png, .jpg or .webp --name\n"
    assert done.stdout == f"{clip}\t{tmp_path / 'out' / 'ride.mp4'}\n"


def test_skip_existing_resumes_a_folder_of_videos(run_ptm, tmp_path, small_weights):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mov"):
        make_clip(folder / name, seconds=0.4, size=(64, 48))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_zebra.mp4").write_bytes(b"done before")
    done = zebrafy(run_ptm, folder, "-o", f"{out}/", "--weights", small_weights, "--skip-existing")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{folder / 'b.mov'}\t{out / 'b_zebra.mp4'}\n"
    assert (out / "a_zebra.mp4").read_bytes() == b"done before"
    assert len(frames_of(out / "b_zebra.mp4")) == 10


def test_an_interrupted_video_leaves_nothing_at_its_destination(isolated_env, tmp_path, small_weights):
    long_clip = make_clip(tmp_path / "long.mp4", seconds=20, size=(160, 96), audio=False)
    out = tmp_path / "out"
    process = subprocess.Popen([*ptm_command(), "zebrafy", str(long_clip), "-o", f"{out}/", "--weights",
                                str(small_weights), "--batch-size", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=isolated_env)
    deadline = time.monotonic() + 120
    while not (out.exists() and any(out.iterdir())) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # some frames into the video
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stdout == ""
    assert list(out.iterdir()) == []


def test_memory_does_not_grow_with_the_length_of_the_video(isolated_env, tmp_path, small_weights):
    peaks = []
    for seconds in (2, 8):
        source = make_clip(tmp_path / f"c{seconds}.mp4", seconds=seconds, size=(320, 192))
        measure = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
                   "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        done = subprocess.run([sys.executable, "-c", measure, *ptm_command(), "zebrafy", str(source), "-o",
                               str(tmp_path / f"o{seconds}.mp4"), "--weights", str(small_weights), "--size", "96"],
                              capture_output=True, text=True, env=isolated_env, timeout=600)
        assert done.returncode == 0, done.stderr
        peaks.append(int(done.stdout))
    assert peaks[1] < 1.25 * peaks[0], peaks


@pytest.mark.parametrize("engine", ["shards", pytest.param("ray", marks=[pytest.mark.slow, pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None, reason="Ray is not installed")])])
def test_a_folder_of_videos_is_split_by_video_and_gives_the_same_frames(run_ptm, tmp_path, small_weights, engine):
    import numpy as np

    folder = tmp_path / "clips"
    folder.mkdir()
    for name, seconds in (("a.mp4", 0.8), ("b.mp4", 0.4), ("c.webm", 0.4)):
        make_clip(folder / name, seconds=seconds, size=(64, 48), codec="libvpx-vp9" if name.endswith("webm") else
                  "libx264")
    (folder / "photo.png").write_bytes((EXAMPLES / "coffee.png").read_bytes())
    common = ["--weights", small_weights, "--crf", "0", "--size", "48"]
    assert zebrafy(run_ptm, folder, "-o", f"{tmp_path / 'local'}/", *common).returncode == 0
    if engine == "shards":
        for k in (1, 2):
            done = zebrafy(run_ptm, folder, "-o", f"{tmp_path / 'other'}/", *common, "--shard", f"{k}/2")
            assert done.returncode == 0, done.stderr
    else:
        done = zebrafy(run_ptm, folder, "-o", f"{tmp_path / 'other'}/", *common, "--engine", "ray", "--actors", "1")
        assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == ["a_zebra.mp4", "b_zebra.mp4", "c_zebra.mp4", "photo_zebra.png"]
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == names
    expected = (("a_zebra.mp4", "a.mp4", 20), ("b_zebra.mp4", "b.mp4", 10), ("c_zebra.mp4", "c.webm", 10))
    for name, source, count in expected:
        local, other = frames_of(tmp_path / "local" / name), frames_of(tmp_path / "other" / name)
        assert [t for _, t in local] == [t for _, t in other] and len(local) == count, name
        assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(local, other)), name
        assert audio_packets(tmp_path / "other" / name) == audio_packets(folder / source), name


def test_damaged_packets_in_the_middle_are_skipped_and_counted(run_ptm, tmp_path, small_weights):
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    clip = tmp_path / "mj.avi"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("mjpeg", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuvj420p"
        for _ in range(10):
            picture = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    data = bytearray(clip.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xd8"]  # each frame's JPEG
    for j in (3, 6):
        data[starts[j]:starts[j + 1] - 16] = bytes(starts[j + 1] - 16 - starts[j])
    clip.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    done = zebrafy(run_ptm, clip, "-o", out, "--weights", small_weights)
    assert done.returncode == 0
    assert done.stderr == (f"ptm: note: {clip}: 2 damaged video packets skipped "
                           "(the output has that many frames fewer)\n")
    assert [round(t, 1) for _, t in frames_of(out)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.7, 0.8, 0.9]


def test_a_video_url_is_translated_with_its_audio(run_ptm, tmp_path, clip, small_weights):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    shutil.copyfile(clip, tmp_path / "ride.mp4")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ride.mp4"
        done = zebrafy(run_ptm, url, "-o", f"{tmp_path / 'out'}/", "--weights", small_weights,
                       env={"PTM_OFFLINE": "0", "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"})
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{url}\t{tmp_path / 'out' / 'ride_zebra.mp4'}\n"
    assert len(frames_of(tmp_path / "out" / "ride_zebra.mp4")) == 50
    assert audio_packets(tmp_path / "out" / "ride_zebra.mp4") == audio_packets(clip)
