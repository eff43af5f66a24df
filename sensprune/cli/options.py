"""Click options shared by several commands (dataset and training)."""

from __future__ import annotations

import os

import click

from sensprune.config import MAX_SEEDS  # noqa: F401 (the commands' --seeds bound, re-exported)
# torch-free, so --help stays fast; MAX_WIDTH is the one width bound (the TOML's [score] widths too)
from sensprune.config import AMP_MODES, AUGMENTS, MAX_SEED, MAX_WIDTH, OPTIMIZERS, SCHEDULES


class OneLineErrors(click.Command):
    """Report bad option values as a single "Error: ..." line (no usage block)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            prog = f"{parent.info_name} {info_name}" if parent is not None else info_name
            exc.message = f"{exc.message} (see '{prog} --help')"
            exc.ctx = None
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # raised by the command itself (e.g. contradictory options)
            if exc.ctx is not None:
                exc.message = f"{exc.message} (see '{ctx.command_path} --help')"
                exc.ctx = None
            raise


class RegularFile(click.Path):
    """An existing regular file (``click.Path(exists=True, dir_okay=False)`` also lets a FIFO or device through,
    and reading one blocks); a symlink loop, a FIFO, socket or device is a usage error (exit 2)."""

    def __init__(self, **kwargs):
        super().__init__(exists=True, dir_okay=False, **kwargs)

    def convert(self, value, param, ctx):
        from sensprune.errors import ValidationError
        from sensprune.io import regular_file  # the one check of every file read

        if os.path.lexists(value):  # a missing file: click's own message
            try:
                regular_file(str(value), f"File {str(value)!r}")
            except ValidationError as exc:
                self.fail(str(exc), param, ctx)
        return super().convert(value, param, ctx)


def int_list(ctx, param, value):
    if value is None or value == "":
        return None
    try:
        out = tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"the value must be comma-separated integers; got {value!r}.") from None
    if any(v <= 0 for v in out):
        raise click.BadParameter(f"each value must be a positive integer; got {value!r}.")
    if any(v > MAX_WIDTH for v in out):  # checked before any layer is allocated
        raise click.BadParameter(f"each width must be at most {MAX_WIDTH}; got {value!r}.")
    return out


def str_list(ctx, param, value):
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def dataset_options(f):
    opts = [
        click.option("--dataset", default="digits", show_default=True, metavar="SPEC",
                     help="digits | fashion-mnist | mnist1d | mnist | kmnist | cifar10 | cifar100 | svhn | "
                          "imagefolder:PATH | npz:PATH | csv:PATH | plugin:module:callable"),
        click.option("--data-root", default=None, metavar="DIR",
                     help="Folder holding torchvision datasets (never downloaded)."),
        click.option("--subsample", type=click.IntRange(1), default=None, metavar="N",
                     help="Stratified subset of N training examples (deterministic)."),
        click.option("--label-column", default=None, help="Label column of a csv: dataset (default 'label')."),
        click.option("--corrupt", default=None, metavar="KIND:Q",
                     help="Inject noise into the training set before scoring: randY:0.2, randY-asym:0.2, "
                          "randX:0.2 or unique (docs/measures.md §7). Corrupted indices are saved."),
        click.option("--stream", is_flag=True,
                     help="imagefolder:PATH only: read images batch by batch with DataLoader workers instead of "
                          "loading them into memory (for data larger than memory)."),
        click.option("--workers", type=click.IntRange(0), default=2, show_default=True,
                     help="DataLoader worker processes for --stream."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def train_options(f):
    opts = [
        click.option("--epochs", type=click.IntRange(1), default=None,
                     help="Warmup epochs [default: 80 when loss_sensitivity is measured, else 40: where the "
                          "measures level off in benchmarks/warmup_length/summary.md]."),
        click.option("--batch-size", type=click.IntRange(1), default=128, show_default=True),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", show_default=True,
                     help="torch.optim.SGD (with --momentum), Adam or AdamW (decoupled --weight-decay)."),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.05, show_default=True),
        click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9, show_default=True),
        click.option("--weight-decay", type=click.FloatRange(0), default=5e-4, show_default=True),
        click.option("--schedule", type=click.Choice(SCHEDULES), default="cosine", show_default=True),
        click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
                     help="Base seed (init, order, dropout)."),
        click.option("--device", default="auto", show_default=True,
                     help="auto (CUDA if available, else MPS, else CPU) | cpu | cuda | cuda:i | mps"),
        click.option("--amp", type=click.Choice(AMP_MODES), default="none", show_default=True,
                     help="Mixed precision autocast (fp16 needs CUDA)."),
        click.option("--compile", "compile_", is_flag=True, help="torch.compile the model."),
        click.option("--augment", type=click.Choice(AUGMENTS), default="none", show_default=True,
                     help="Training augmentation for image data: crop-flip = pad 4, random crop, random horizontal "
                          "flip, seeded per step (loss_sensitivity replays it and differentiates w.r.t. the "
                          "un-augmented input)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def model_options(f):
    opts = [
        click.option("--model", default="mlp", show_default=True, metavar="NAME",
                     help="mlp | cnn | resnet18 | plugin:module:callable"),
        click.option("--widths", default="256,128", show_default=True, callback=int_list,
                     help="Hidden widths of the mlp."),
        click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def load_data(dataset, data_root, subsample, label_column, corrupt, seed=0, stream=False):
    """Load the dataset and apply ``--corrupt``; returns (Dataset, corrupted indices or None)."""
    from sensprune.config import parse_corruption
    from sensprune.data import load_dataset
    from sensprune.data.noise import apply_corruption
    from sensprune.errors import ValidationError

    parsed = parse_corruption(corrupt) if corrupt else None  # checked before anything loads
    if parsed and stream:
        raise ValidationError("--corrupt cannot be combined with --stream.")
    data = load_dataset(dataset, data_root=data_root, subsample=subsample, label_column=label_column, stream=stream)
    if not parsed:
        return data, None
    return apply_corruption(data, *parsed, seed)
