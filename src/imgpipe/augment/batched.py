"""Augmentation in batches on a torch device: ``augment.device: cuda``, or ``auto`` with a GPU.

The albumentations pipeline built from params is read transform by transform, so every
argument means here what albumentations made of it (``rotate: 10`` is ``(-10, 10)``
in both), and each transform becomes a batched equivalent on a float NCHW batch of uint8
values on the device:

- ``Affine``: one matrix per image, composed as albumentations composes it, applied with
  ``affine_grid`` + ``grid_sample`` (bilinear or nearest; constant, replicate or reflect
  borders). Rounded to the nearest level, as OpenCV's warp does.
- ``RandomBrightnessContrast``: ``x * alpha + beta`` per image, clipped and truncated, as
  its lookup table does. ``GaussNoise``: per-pixel noise, each image its own mean and std,
  truncated to whole levels before it is added, as albucore does.
- ``HorizontalFlip``, ``VerticalFlip``; ``PadIfNeeded`` and ``RandomCrop`` (per-image
  offsets; p must be 1, since a batch shares one size).

Anything else, or an argument with no equivalent (e.g. ``fit_output``), stops the stage
before any work, naming ``augment.transforms[i]``.

Randomness: every per-image draw (whether a transform applies, angle, scale, shift,
factors, crop offsets) is made up front for all variants from a ``torch.Generator``
seeded with ``augment.seed``, on the CPU, so it depends on neither the batch size nor the
device. GaussNoise's pixel noise is drawn a batch at a time on the device, from seeds
drawn the same way (so it alone depends on ``BATCH_SIZE``). Same images, params and
device: the same bytes (grid_sample's forward pass is deterministic on CUDA too). CUDA
and CPU may differ by a rounding at the odd pixel. Memory: one batch on the device, and
a few numbers per variant for the draws.

How close to ``augment.device: cpu``: the two paths draw different random numbers, so
their variants are not pixel-equal; each draw has albumentations' distribution. With the
draws pinned (ranges of zero width, p 0 or 1) they agree: p = 0 everywhere, flips,
RandomBrightnessContrast and PadIfNeeded + RandomCrop give identical pixels, and a fixed
rotation + scale + shear + shift differs from OpenCV's fixed-point warp by at most 1 gray
level at under 0.01% of pixels. With the shipped random pipeline on digit scans, the
per-image changes of mean, std and mean absolute difference have matching distributions
(Kolmogorov-Smirnov distance 0.03 to 0.04 over 1,800 variants a side; tests/test_augment_device.py
checks all of these).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from imgpipe.errors import ParamsError
from imgpipe.params.augment import BATCHED_TRANSFORMS

BATCH_SIZE = 256  # variants per batch: big enough to fill a GPU for small images, small for big ones
Params = dict[str, torch.Tensor]


def batched_steps(pipeline: Any, entries: list[dict[str, Any]]) -> list[Step]:
    """The batched equivalent of each transform of the albumentations ``pipeline`` built
    from ``entries``, or a ParamsError naming the first one that has none."""
    steps = []
    for i, (transform, entry) in enumerate(zip(pipeline.transforms, entries)):
        name = next(iter(entry))
        where = f"augment.transforms[{i}] ({name})"
        if name not in BATCHED_TRANSFORMS:  # params refuse these already; a direct caller hears it here
            raise ParamsError(f"params.yaml: {where}: has no batched equivalent; use augment.device: cpu")
        steps.append(STEPS[name](transform, where))
    return steps


def batched_variants(
    images: Any, steps: list[Step], per_image: np.ndarray, seed: int, device: torch.device, batch_size: int = BATCH_SIZE
) -> Iterator[np.ndarray]:
    """``per_image[i]`` variants of image ``i``, image-major, as ``augment_variants`` yields
    them, made ``batch_size`` at a time on ``device``. ``images``: uint8 (N, H, W, C), an
    array or a ``Stacked``."""
    parent = np.repeat(np.arange(len(images)), per_image)
    generator = torch.Generator().manual_seed(seed)
    drawn = [step.draw(len(parent), generator) for step in steps]
    starts = range(0, len(parent), batch_size)
    noise_seeds = torch.randint(0, 2**62, (len(starts),), generator=generator).tolist()
    with tqdm(total=len(parent), desc="augment", unit="img", mininterval=1.0, disable=not len(parent)) as bar:
        for start, noise_seed in zip(starts, noise_seeds):
            rows = parent[start : start + batch_size]
            # The rows of a batch are a run of images, each repeated: read the run once.
            first = int(rows[0])
            x = torch.from_numpy(np.ascontiguousarray(images[first : int(rows[-1]) + 1])).to(device)
            x = x[torch.from_numpy(rows - first).to(device)].permute(0, 3, 1, 2).float().contiguous()
            noise = torch.Generator(device=device).manual_seed(noise_seed)
            for step, params in zip(steps, drawn):
                x = step.run(x, {k: v[start : start + len(rows)] for k, v in params.items()}, noise)
            yield from x.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
            bar.update(len(rows))


class Step:
    """One transform on a float NCHW batch holding uint8 values: its random parameters for
    every variant are drawn up front (``draw``), then applied a batch at a time (``run``)."""

    def __init__(self, transform: Any, where: str):
        self.t, self.where = transform, where

    def refuse(self, what: str) -> None:
        raise ParamsError(f"params.yaml: {self.where}: {what} has no batched equivalent; use augment.device: cpu")

    def draw(self, n: int, g: torch.Generator) -> Params:
        # Albumentations: p <= 0 never, p >= 1 always, else when random() < p.
        return {"on": torch.rand(n, generator=g, dtype=torch.float64) < self.t.p}

    def run(self, x: torch.Tensor, params: Params, noise: torch.Generator) -> torch.Tensor:
        on = params["on"]  # on the CPU, like every draw: no wait for the device to decide
        if bool(on.all()):
            return self.apply(x, params, noise)
        if bool(on.any()):  # only the images it applies to: at p 0.5, half the work
            chosen = torch.nonzero(on).squeeze(1)
            rows = chosen.to(x.device)
            x[rows] = self.apply(x[rows], {k: v[chosen] for k, v in params.items()}, noise)
        return x

    def apply(self, x: torch.Tensor, params: Params, noise: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _uniform(n: int, g: torch.Generator, low_high: tuple[float, float]) -> torch.Tensor:
    low, high = (float(v) for v in low_high)
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)


class HorizontalFlip(Step):
    def apply(self, x, params, noise):
        return x.flip(3)


class VerticalFlip(Step):
    def apply(self, x, params, noise):
        return x.flip(2)


class RandomBrightnessContrast(Step):
    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        if transform.ensure_safe_range:
            self.refuse("ensure_safe_range=True")

    def draw(self, n, g):
        return {
            **super().draw(n, g),
            "alpha": 1.0 + _uniform(n, g, self.t.contrast_limit),
            "beta": _uniform(n, g, self.t.brightness_limit),
        }

    def apply(self, x, params, noise):
        alpha = params["alpha"].to(x.device, torch.float32)[:, None, None, None]
        scale = 255.0 if self.t.brightness_by_max else x.mean(dim=(1, 2, 3))[:, None, None, None]
        beta = params["beta"].to(x.device, torch.float32)[:, None, None, None] * scale
        # Albumentations' uint8 lookup table: clip, then truncate (astype), not round.
        return (x * alpha).add_(beta).clamp_(0, 255).floor_()


class GaussNoise(Step):
    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        if transform.noise_scale_factor != 1:
            self.refuse(f"noise_scale_factor={transform.noise_scale_factor}")

    def draw(self, n, g):
        return {
            **super().draw(n, g),
            "std": _uniform(n, g, self.t.std_range),
            "mean": _uniform(n, g, self.t.mean_range),
        }

    def apply(self, x, params, noise):
        n, c, h, w = x.shape
        shape = (n, c if self.t.per_channel else 1, h, w)  # shared: one noise map for every channel
        std, mean = (params[k].to(x.device, torch.float32)[:, None, None, None] * 255.0 for k in ("std", "mean"))
        z = torch.randn(shape, generator=noise, device=x.device) * std + mean
        # albucore adds float noise to uint8 truncated to whole levels first (towards zero), then clips.
        return z.trunc_().add_(x).clamp_(0, 255)


_INTERPOLATION = {0: "nearest", 1: "bilinear"}  # cv2.INTER_NEAREST, cv2.INTER_LINEAR
_WARP_BORDER = {0: "zeros", 1: "border", 2: "reflection"}  # cv2.BORDER_CONSTANT, REPLICATE, REFLECT


class Affine(Step):
    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        for flag in ("fit_output", "balanced_scale"):
            if getattr(transform, flag):
                self.refuse(f"{flag}=True")
        if transform.interpolation not in _INTERPOLATION:
            self.refuse(f"interpolation={transform.interpolation} (only 0, nearest, and 1, linear)")
        if transform.border_mode not in _WARP_BORDER:
            self.refuse(f"border_mode={transform.border_mode} (only 0, constant, 1, replicate, and 2, reflect)")

    def draw(self, n, g):
        t = self.t
        p = super().draw(n, g)
        p["sx"], p["sy"] = _uniform(n, g, t.scale["x"]), _uniform(n, g, t.scale["y"])
        if t.keep_ratio:
            p["sy"] = p["sx"]
        p["rotate"] = _uniform(n, g, t.rotate)
        p["shx"], p["shy"] = -_uniform(n, g, t.shear["x"]), -_uniform(n, g, t.shear["y"])
        if t.translate_px is not None:  # whole pixels, both ends included, as py_random.randint
            p["tx"], p["ty"] = (
                torch.randint(int(t.translate_px[k][0]), int(t.translate_px[k][1]) + 1, (n,), generator=g).double()
                for k in ("x", "y")
            )
        else:  # fractions of the size, truncated to whole pixels when applied, as albumentations does
            p["fx"], p["fy"] = _uniform(n, g, t.translate_percent["x"]), _uniform(n, g, t.translate_percent["y"])
        return p

    def apply(self, x, params, noise):
        n, c, h, w = x.shape
        theta = _normalised_inverse(_affine_matrices(params, h, w), h, w)
        grid = F.affine_grid(theta.to(x.device, torch.float32), [n, c, h, w], align_corners=False)
        fill = _fill(self.t.fill, c, x.device)
        filled = any(float(v) for v in np.ravel(self.t.fill))  # a fill of 0 needs no shift: skip two passes
        # Sampling x - fill with zero padding is sampling x with `fill` outside: interpolation is linear.
        out = F.grid_sample(
            x - fill if filled else x,
            grid,
            mode=_INTERPOLATION[self.t.interpolation],
            padding_mode=_WARP_BORDER[self.t.border_mode],
            align_corners=False,
        )
        return (out.add_(fill) if filled else out).round_().clamp_(0, 255)


def _affine_matrices(p: Params, h: int, w: int) -> torch.Tensor:
    """Albumentations' ``create_affine_transformation_matrix`` for every image at once:
    centre, scale, rotate, shear, translate, centre back. (n, 3, 3), float64, source to output."""
    n = len(p["sx"])
    tx = p["tx"] if "tx" in p else torch.trunc(p["fx"] * w)
    ty = p["ty"] if "ty" in p else torch.trunc(p["fy"] * h)
    rad = torch.deg2rad(torch.remainder(p["rotate"], 360))
    cos, sin = torch.cos(rad), torch.sin(rad)
    tan_x, tan_y = torch.tan(torch.deg2rad(p["shx"])), torch.tan(torch.deg2rad(p["shy"]))
    linear = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # rotate
    linear = (
        torch.stack(
            [
                torch.stack([torch.ones(n, dtype=torch.float64), tan_x], -1),
                torch.stack([tan_y, torch.ones(n, dtype=torch.float64)], -1),
            ],
            -2,
        )
        @ linear
    )  # shear
    linear = linear * torch.stack([p["sx"], p["sy"]], -1)[:, None, :]  # scale first: its columns
    centre = torch.tensor([w / 2 - 0.5, h / 2 - 0.5], dtype=torch.float64)
    m = torch.zeros(n, 3, 3, dtype=torch.float64)
    m[:, :2, :2] = linear
    m[:, :2, 2] = centre + torch.stack([tx, ty], -1) - linear @ centre
    m[:, 2, 2] = 1.0
    return m


def _normalised_inverse(m: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The (n, 2, 3) ``affine_grid`` theta for source-to-output pixel matrices ``m``: output
    to source (OpenCV inverts the same way), in grid_sample's [-1, 1] coordinates, where
    pixel ``i``'s centre is at ``(2i + 1) / size - 1``."""
    to_unit = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]], dtype=torch.float64)
    return (to_unit @ torch.linalg.inv(m) @ torch.linalg.inv(to_unit))[:, :2]


def _fill(fill: Any, channels: int, device: torch.device) -> torch.Tensor:
    values = torch.as_tensor(fill, dtype=torch.float32, device=device).reshape(-1)
    return values.reshape(1, -1, 1, 1) if len(values) == channels else values[:1].reshape(1, 1, 1, 1)


_PAD_MODE = {0: "constant", 1: "replicate", 3: "circular", 4: "reflect"}  # cv2 WRAP = circular, REFLECT_101 = reflect


class _SameSize(Step):
    """A transform that changes the size: every image of a batch must take it, or the batch
    would hold two sizes."""

    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        if transform.p < 1:
            self.refuse(f"p={transform.p} (a batch shares one size, so p must be 1)")

    def run(self, x, params, noise):
        return self.apply(x, params, noise)  # p is 1: every image, and a new size for all of them


class PadIfNeeded(_SameSize):
    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        if transform.position == "random":
            self.refuse("position=random")
        if transform.border_mode not in _PAD_MODE:
            self.refuse(
                f"border_mode={transform.border_mode} (only 0, constant, 1, replicate, 3, wrap, and 4, reflect_101)"
            )

    def apply(self, x, params, noise):
        from albumentations.augmentations.geometric import functional as fgeometric

        t = self.t
        pads = fgeometric.get_padding_params(
            tuple(x.shape[2:]), t.min_height, t.min_width, t.pad_height_divisor, t.pad_width_divisor
        )
        top, bottom, left, right = fgeometric.adjust_padding_by_position(*pads, t.position, None)
        if not any((top, bottom, left, right)):
            return x
        fill = _fill(t.fill, x.shape[1], x.device)
        # As for Affine: padding x - fill with zeros pads x with `fill`, per channel if need be.
        return F.pad(x - fill, (left, right, top, bottom), mode=_PAD_MODE[t.border_mode]) + fill


class RandomCrop(_SameSize):
    def __init__(self, transform: Any, where: str):
        super().__init__(transform, where)
        if transform.pad_if_needed:
            self.refuse("pad_if_needed=True (pad with PadIfNeeded before it)")

    def draw(self, n, g):
        return {
            **super().draw(n, g),
            "h_start": torch.rand(n, generator=g, dtype=torch.float64),
            "w_start": torch.rand(n, generator=g, dtype=torch.float64),
        }

    def apply(self, x, params, noise):
        n, _, h, w = x.shape
        ch, cw = min(self.t.height, h), min(self.t.width, w)
        # Albumentations' get_crop_coords: start in [0, size - crop], both ends included.
        y0 = (params["h_start"] * (h - ch + 1)).long().to(x.device)
        x0 = (params["w_start"] * (w - cw + 1)).long().to(x.device)
        rows = (y0[:, None] + torch.arange(ch, device=x.device))[:, None, :, None]
        cols = (x0[:, None] + torch.arange(cw, device=x.device))[:, None, None, :]
        index = torch.arange(n, device=x.device)[:, None, None, None]
        return x[index, torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]


STEPS: dict[str, type[Step]] = {
    cls.__name__: cls
    for cls in (Affine, RandomBrightnessContrast, GaussNoise, HorizontalFlip, VerticalFlip, PadIfNeeded, RandomCrop)
}
