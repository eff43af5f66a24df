"""Bad files and folders (issue 23, "nothing silently wrong"): FIFOs, symlink loops, image folders with images
that cannot be read faithfully. Each is one ``Error:`` line with a pinned message, never a hang or traceback,
and nothing is written or left behind (no ``.partial``) -- the machinery of ``test_bad_inputs.py``.

Images are also read at their bit depth: a 16-bit PNG is divided by 65535, not clipped at 255.
"""

import json
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sensprune.data import load_dataset
from sensprune.data.images import IMG_EXTENSIONS, ImageError, scan_split
from sensprune.errors import ValidationError
from sensprune.reproduce.settings import load_settings
from test_bad_inputs import (SCORE, _fill, _snapshot, base, fifo, loop, nothing, run_case,  # noqa: F401 (base: fixture)
                             run_cli)

LIMIT = Image.MAX_IMAGE_PIXELS  # PIL's decompression-bomb limit, never raised by sensprune
TINY = load_settings().scales["tiny"]  # the counts of benchmarks/paper/settings.toml [scale.tiny]


# -- image folders: d/train/{a,b}/0..2.png and d/test/{a,b}/0.png, 6x6 8-bit grayscale --------------------

def images(w, name="d"):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 1)):
        for c in ("a", "b"):
            (w / name / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (6, 6), dtype=np.uint8), "L").save(w / name / split / c /
                                                                                        f"{i}.png")


def png_header(width, height):
    """A PNG whose header claims ``width`` x ``height`` 8-bit gray pixels (and holds none)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def with_image(make):
    """Set-up: the image folder d plus whatever ``make(w)`` adds."""
    def setup(w, b):
        images(w)
        make(w)
    return setup


def truncated(w):
    whole = (w / "d" / "train" / "a" / "0.png").read_bytes()
    (w / "d" / "train" / "a" / "x.png").write_bytes(whole[:-30])


def save(array, name, mode=None):
    return lambda w: Image.fromarray(array, mode).save(w / "d" / "train" / "a" / name)


D = "imagefolder:d"
IMG = [*SCORE[:2], D, *SCORE[3:], "--out", "o"]
STREAM = [*IMG, "--stream"]  # two DataLoader workers: their errors too are one line
FIFO_MSG = "the path must be a regular file; got a FIFO."
MIXED = ("imagefolder:d: images have different sizes; every image must be 6x6 like the first, d/train/a/0.png; "
         "got 7x7 for d/train/b/zz.png. Resize them all to one size first (e.g. with PIL or ImageMagick "
         "'mogrify -resize WxH!').")
READABLE = "8-bit (1, L, P, RGB, CMYK, YCbCr), 16-bit grayscale (I;16, or I from PNG/PGM) or opaque LA, PA, RGBA"
SEL = ["bench", "--selection"]
DROP = ["prune", "--scores", "{S}", "--by", "el2n", "--rule", "random", "--fraction", "0.2"]


def in_copy(folder, change, name=None):
    """Set-up: a copy ``<folder>2`` of the base score (S) or prune (P) folder, then ``change(w, path)`` of its file
    ``name`` (removed first), or ``change(w, copy)`` of the whole copy."""
    def setup(w, b):
        shutil.copytree(b / folder, w / f"{folder}2")
        if name is None:
            return change(w, w / f"{folder}2")
        os.remove(w / f"{folder}2" / name)
        change(w, f"{folder}2/{name}")
    return setup


#: command -> (its args reading the folder copy <folder>2, the prefix of its message)
READS = {"prune": (lambda folder: [*DROP[:2], f"{folder}2", *DROP[3:], "--out", "o"], ""),
         "report": (lambda folder: ["report", f"{folder}2"], ""),
         "info": (lambda folder: ["info", f"{folder}2"], ""),
         "bench --selection": (lambda folder: [*SEL, f"{folder}2", "--out", "o"],
                               "--selection P2 is not a prune folder (made by `sensprune prune --out`): ")}


def recorded_fifo(w, copy):
    """The copy's meta.json records its data at p.npz (as typed, and relative to it), a FIFO."""
    meta = json.loads((copy / "meta.json").read_text())
    meta["dataset"].update(spec="npz:p.npz", location={"absolute": "p.npz", "relative": "../p.npz"})
    (copy / "meta.json").write_text(json.dumps(meta))
    fifo(w, "p.npz")


# id -> (set-up(w, base), args with {S} {P} {D} {B} {DEMO} placeholders, exit code, pinned message)
CASES = {
    # an image folder: special files and links, each refused naming the file (in memory and streamed)
    **{f"score{' --stream' if args is STREAM else ''} {what}": (setup, args, 1, message)
       for args in (IMG, STREAM) for what, setup, message in [
           ("FIFO x.png", with_image(lambda w: fifo(w, "d/train/a/x.png")),
            f"imagefolder:d: d/train/a/x.png: {FIFO_MSG}"),
           ("symlink loop to its own folder", with_image(lambda w: os.symlink(".", w / "d/train/a/again")),
            "imagefolder:d: d/train/a/again is a symlink loop (it leads back to a folder holding it); remove the "
            "link."),
           ("symlink loop to the data root", with_image(lambda w: os.symlink("../..", w / "d/train/a/up")),
            "imagefolder:d: d/train/a/up is a symlink loop (it leads back to a folder holding it); remove the link."),
           ("link to another class folder", with_image(lambda w: os.symlink("../b", w / "d/train/a/bb")),
            "imagefolder:d: every folder must be read once; got d/train/b again through d/train/a/bb (its images "
            "would count twice; remove the link)."),
           ("class folder linked twice", with_image(lambda w: (os.symlink("a", w / "d/train/c"),
                                                               os.symlink("a", w / "d/test/c"))),
            "imagefolder:d: every folder must be read once; got d/train/a again through d/train/c (its images would "
            "count twice; remove the link)."),
           ("image symlink loop", with_image(lambda w: os.symlink("x.png", w / "d/train/a/x.png")),
            "imagefolder:d: d/train/a/x.png: the path is a symlink loop; point it at a file."),
           ("dangling image link", with_image(lambda w: os.symlink("nope.png", w / "d/train/a/x.png")),
            "imagefolder:d: d/train/a/x.png: file not found."),
           ("empty image file", with_image(lambda w: (w / "d/train/a/x.png").write_bytes(b"")),
            "imagefolder:d: image d/train/a/x.png must not be empty; got a file of 0 bytes."),
           ("not an image", with_image(lambda w: (w / "d/train/a/x.png").write_bytes(b"not a png")),
            "imagefolder:d: cannot read image d/train/a/x.png (cannot identify image file 'd/train/a/x.png')."),
           ("truncated image", with_image(truncated),
            "imagefolder:d: cannot read image d/train/a/x.png (image file is truncated)."),
           ("decompression bomb", with_image(lambda w: (w / "d/train/a/x.png").write_bytes(png_header(30000, 30000))),
            f"imagefolder:d: image d/train/a/x.png must have at most {LIMIT} pixels (PIL's decompression-bomb "
            f"limit); got more than {2 * LIMIT}."),
           ("image over the pixel limit", with_image(lambda w: (w / "d/train/a/x.png").write_bytes(
               png_header(10000, 10000))),  # PIL itself only warns below twice its limit
            f"imagefolder:d: image d/train/a/x.png must have at most {LIMIT} pixels (PIL's decompression-bomb "
            "limit); got 10000x10000 = 100000000."),
           ("float image (mode F)", with_image(save(np.full((6, 6), 0.5, np.float32), "x.tif")),
            f"imagefolder:d: image d/train/a/x.tif must be {READABLE} to be read faithfully; got mode F."),
           ("32-bit TIFF (mode I)", with_image(save(np.full((6, 6), 70000, np.int32), "x.tif")),
            f"imagefolder:d: image d/train/a/x.tif must be {READABLE} to be read faithfully; got mode I (32-bit "
            "integers, TIFF)."),
           ("transparent RGBA", with_image(save(np.zeros((6, 6, 4), np.uint8), "x.png", "RGBA")),
            "imagefolder:d: image d/train/a/x.png (mode RGBA) must be opaque, as its alpha channel is not read; got "
            "36 transparent pixels (flatten it onto a background first)."),
           ("mixed image sizes", with_image(save(np.zeros((7, 7), np.uint8), "../b/zz.png")), MIXED),
           ("root is a FIFO", lambda w, b: fifo(w, "d"),
            "imagefolder:d: the path must be a folder holding train/ and test/; got a FIFO."),
           ("root is a symlink loop", lambda w, b: loop(w, "d"),
            "imagefolder:d: d is a symlink loop; point it at a folder."),
       ]},
    # TOML inputs
    "bench --config FIFO": (lambda w, b: fifo(w, "p.toml"), ["bench", "--config", "p.toml", "--out", "o"], 2,
                            f"Invalid value for '--config': File 'p.toml': {FIFO_MSG}"),
    "bench --config symlink loop": (lambda w, b: loop(w, "l.toml"), ["bench", "--config", "l.toml", "--out", "o"],
                                    2, "Invalid value for '--config': File 'l.toml': the path is a symlink loop; "
                                       "point it at a file."),
    "bench --selection --config FIFO": (lambda w, b: fifo(w, "p.toml"), [*SEL, "{P}", "--config", "p.toml",
                                                                         "--out", "o"], 2,
                                        f"Invalid value for '--config': File 'p.toml': {FIFO_MSG}"),
    "reproduce --settings FIFO": (lambda w, b: fifo(w, "p.toml"), ["reproduce", "--tiny", "--settings", "p.toml",
                                                                   "--out", "o"], 1,
                                  "--settings must be an existing TOML file; got 'p.toml'."),
    "reproduce --settings symlink loop": (lambda w, b: loop(w, "l.toml"), ["reproduce", "--tiny", "--settings",
                                                                           "l.toml", "--out", "o"], 1,
                                          "--settings must be an existing TOML file; got 'l.toml'."),
    # folders given as a FIFO or a symlink loop
    "prune --scores symlink loop": (lambda w, b: loop(w, "l"), ["prune", "--scores", "l", "--by", "el2n", "--rule",
                                                                "random", "--fraction", "0.2", "--out", "o"], 1,
                                    "l is a symlink loop; point it at a folder."),
    "prune --scores FIFO": (lambda w, b: fifo(w, "p"), ["prune", "--scores", "p", "--by", "el2n", "--rule",
                                                        "random", "--fraction", "0.2", "--out", "o"], 1,
                            "p must be a folder; got a FIFO."),
    "report symlink loop": (lambda w, b: loop(w, "l"), ["report", "l"], 1, "l is a symlink loop; point it at a "
                                                                           "folder."),
    "report FIFO": (lambda w, b: fifo(w, "p"), ["report", "p"], 1, "p must be a folder; got a FIFO."),
    "info symlink loop": (lambda w, b: loop(w, "l"), ["info", "l"], 1, "l is a symlink loop; point it at a folder."),
    "info FIFO": (lambda w, b: fifo(w, "p"), ["info", "p"], 1, "p must be a folder; got a FIFO."),
    "info a regular file": (lambda w, b: (w / "f").write_text("x"), ["info", "f"], 1,
                            "f must be a folder; got a regular file."),
    "bench --selection symlink loop": (lambda w, b: loop(w, "l"), [*SEL, "l", "--out", "o"], 1,
                                       "--selection l is not a prune folder (made by `sensprune prune --out`): l is "
                                       "a symlink loop; point it at a folder."),
    "bench --selection FIFO": (lambda w, b: fifo(w, "p"), [*SEL, "p", "--out", "o"], 1,
                               "--selection p is not a prune folder (made by `sensprune prune --out`): p must be "
                               "a folder; got a FIFO."),
    # a FIFO in place of a file of a score (S2) or prune (P2) folder: every reader checks first (reading would block)
    **{f"{command} with a FIFO {folder}/{name}": (in_copy(folder, lambda w, f: fifo(w, f), name),
                                                  READS[command][0](folder), 1,
                                                  f"{READS[command][1]}{folder}2/{name}: {FIFO_MSG}")
       for folder, name, commands in [
           ("S", "meta.json", ("prune", "report", "info")), ("S", "scores.npz", ("prune", "report")),
           ("S", "predicted.npy", ("prune", "report")), ("P", "keep.npy", ("bench --selection", "report")),
           ("P", "drop.npy", ("bench --selection", "report")),
           ("P", "meta.json", ("bench --selection", "report", "info")), ("P", "selection.csv", ("report",))]
       for command in commands},
    "prune --export-data, the recorded data a FIFO": (
        in_copy("S", recorded_fifo), [*DROP[:2], "S2", *DROP[3:], "--out", "o", "--export-data", "k.npz"], 1,
        f"was not found; tried p.npz (relative to S2: does not load: npz:p.npz: {FIFO_MSG[:-1]}). Pass --data-root"),
    "bench --selection, a model of the wrong width": (
        lambda w, b: ((w / "wide_sel_h23.py").write_text("import torch\n\n\ndef make(k, shape):\n    return "
                                                         "torch.nn.Linear(shape[0], k + 1)\n"),
                      (w / "m.toml").write_text('[score]\nmodel = "plugin:wide_sel_h23:make"\n')),
        [*SEL, "{P}", "--config", "m.toml", "--seeds", "1", "--epochs", "1", "--out", "o"], 1,
        "[score] model 'plugin:wide_sel_h23:make' must map one example of shape (1, 4) to logits of shape (1, 2); "
        "got (1, 3)."),
    # the base seed of reproduce: the bound of score and prune (a usage error)
    "reproduce --seed -1": (nothing, ["reproduce", "--tiny", "--seed", "-1", "--out", "o"], 2,
                            "Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295."),
    "reproduce --seed 2**32": (nothing, ["reproduce", "--tiny", "--seed", str(2**32), "--out", "o"], 2,
                               "Invalid value for '--seed': 4294967296 is not in the range 0<=x<=4294967295."),
    # ... and with the runs of the chosen experiments (seeded seed .. seed+n-1): the last one too (a usage error)
    "reproduce --seed MAX_SEED --seeds 2": (
        nothing, ["reproduce", "--tiny", "--only", "2,3", "--seed", str(2**32 - 1), "--seeds", "2", "--out", "o"], 2,
        "--seed + seeds per experiment - 1 (the last run's seed) must be at most 4294967295; got 4294967295 + 2 - 1 "
        "= 4294967296."),
    "reproduce --seed near MAX_SEED, experiment 1's runs": (
        nothing, ["reproduce", "--tiny", "--seed", str(2**32 - 2), "--out", "o"], 2,
        "--seed + seeds per experiment - 1 (the last run's seed) must be at most 4294967295; got 4294967294 + "
        f"{TINY.easy_runs} - 1 = {2**32 - 3 + TINY.easy_runs}."),
    "bench-merge symlink loop": (lambda w, b: loop(w, "l"), ["bench-merge", "l", "--out", "o"], 2,
                                 "Invalid value for 'DIRS': Directory 'l' does not exist."),
    # --out a symlink loop (the loop's own text, which names the absolute path, follows the parenthesis)
    "score --out symlink loop": (lambda w, b: loop(w, "l"), [*SCORE, "--out", "l"], 1,
                                 "--out l: the path is a symlink loop ("),
    "prune --out symlink loop": (lambda w, b: loop(w, "l"), ["prune", "--scores", "{S}", "--by", "el2n", "--rule",
                                                             "random", "--fraction", "0.2", "--out", "l"], 1,
                                 "--out l: the path is a symlink loop ("),
    "bench --selection --out symlink loop": (lambda w, b: loop(w, "l"), [*SEL, "{P}", "--out", "l"], 1,
                                             "--out l: the path is a symlink loop ("),
    "score nothing": (nothing, [*SCORE[:2], "imagefolder:nope", *SCORE[3:], "--out", "o"], 1,
                      "imagefolder:nope: folder nope not found."),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_file(case, base, tmp_path, monkeypatch):  # noqa: F811 (base: the fixture of test_bad_inputs)
    run_case(*CASES[case], base, tmp_path, monkeypatch)


# -- what an image folder reads ------------------------------------------------------------------------------

def gray16(w, values):
    """d/train/{a,b}/i.png and d/test/{a,b}/0.png, 16-bit grayscale (mode I;16) filled with ``values[i]``."""
    for split, vals in (("train", values), ("test", values[:1])):
        for c in ("a", "b"):
            (w / "d" / split / c).mkdir(parents=True)
            for i, v in enumerate(vals):
                Image.fromarray(np.full((4, 5), v, np.uint16)).save(w / "d" / split / c / f"{i}.png")
    assert Image.open(w / "d" / "train" / "a" / "0.png").mode == "I;16"
    return f"imagefolder:{w / 'd'}"


@pytest.mark.parametrize("stream", [False, True], ids=["in memory", "streamed"])
def test_a_16_bit_gray_png_is_read_at_its_depth(tmp_path, stream):
    spec = gray16(tmp_path, [0, 32768, 65535, 255])
    ds = load_dataset(spec, stream=stream)
    x = np.stack([ds.train[i][0].numpy() for i in range(ds.n_train)]) if stream else ds.x_train
    assert x.shape == (8, 4, 5) and x.dtype == np.float32 and ds.info["color"] == "grayscale"
    # value v is v / 65535: 32768 is one half (not 1.0, as when clipped at 255), 255 is 0.4% (not 1.0)
    np.testing.assert_allclose(x[:4, 0, 0], [0.0, 32768 / 65535, 1.0, 255 / 65535], rtol=1e-6)
    assert (x[:4] == x[:4, :1, :1]).all() and (x[4:] == x[:4]).all()


def test_a_16_bit_image_among_8_bit_rgb_ones(tmp_path):
    images(tmp_path)
    Image.fromarray(np.uint8([[[10, 20, 30]] * 6] * 6), "RGB").save(tmp_path / "d/train/b/rgb.png")
    Image.fromarray(np.full((6, 6), 32768, np.uint16)).save(tmp_path / "d/train/a/deep.png")
    mem, st = load_dataset(f"imagefolder:{tmp_path / 'd'}"), load_dataset(f"imagefolder:{tmp_path / 'd'}",
                                                                          stream=True)
    assert mem.x_train.shape == (8, 3, 6, 6) and mem.info["color"] == "rgb"
    deep, rgb = mem.train_files.index("train/a/deep.png"), mem.train_files.index("train/b/rgb.png")
    np.testing.assert_allclose(mem.x_train[deep], 32768 / 65535, rtol=1e-6)
    np.testing.assert_array_equal(mem.x_train[rgb, :, 0, 0], np.float32([10, 20, 30]) / np.float32(255))
    for i in range(mem.n_train):  # the streamed path reads the same values
        np.testing.assert_array_equal(st.train[i][0].numpy(), mem.x_train[i])


def test_8_bit_images_read_as_before(tmp_path):
    """uint8 / 255 exactly (the fingerprints of earlier score folders still match)."""
    images(tmp_path)
    Image.fromarray(np.uint8([[[200, 100, 50, 255]] * 6] * 6), "RGBA").save(tmp_path / "d/train/a/opaque.png")
    ds = load_dataset(f"imagefolder:{tmp_path / 'd'}")
    raw = [np.asarray(Image.open(tmp_path / "d" / f).convert("RGB"), np.uint8).transpose(2, 0, 1)
           for f in ds.train_files]
    np.testing.assert_array_equal(ds.x_train, np.stack(raw).astype(np.float32) / 255.0)


def test_the_walk_is_imagefolders_without_its_loops(tmp_path):
    """Same classes, files and order as torchvision's ImageFolder on a nested tree with a link to a folder
    outside, a folder named x.png (a sub-folder, read as such) and upper-case endings."""
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS as TV

    assert IMG_EXTENSIONS == tuple(TV)
    root = tmp_path / "train"
    for f in ["a/0.png", "a/sub/1.png", "a/sub-x/2.PNG", "a/sub/z/3.jpg", "a/sub.y/4.png", "a/B.png", "a/b.png",
              "a/x.png/5.png", "b/x/y/6.bmp", "b/7.tif", "b/notes.txt", ".h/8.png", "a/sub/z/.9.png",
              "../outside/q/10.png"]:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(root / f, format="PNG")
    os.symlink(tmp_path / "outside", root / "a" / "link")
    classes, samples = scan_split(str(root), "t")
    tv = ImageFolder(str(root), loader=lambda p: p)
    assert classes == tv.classes == [".h", "a", "b"] and samples == tv.samples
    assert (str(root / "a" / "x.png" / "5.png"), 1) in samples and len(samples) == 13


def test_the_issue_example_no_longer_multiplies_a_class(tmp_path):
    """`ln -s . d/train/a/again` made class a 21 times larger (420 examples instead of 20)."""
    images(tmp_path)
    os.symlink(".", tmp_path / "d" / "train" / "a" / "again")
    for stream in (False, True):
        with pytest.raises(ValidationError, match="again is a symlink loop"):
            load_dataset(f"imagefolder:{tmp_path / 'd'}", stream=stream)


def test_a_worker_error_is_rebuilt_as_its_own_line():
    """torch rebuilds a DataLoader worker's exception as ``type(text with the worker's traceback)``."""
    message = "imagefolder:d: cannot read image d/x.png (image file is truncated)."
    text = ("Caught ImageError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
            '  File "x.py", line 1, in f\n    g()\nsensprune.data.images.ImageError: ' + message + "\n")
    assert str(ImageError(text)) == message and str(ImageError(message)) == message
