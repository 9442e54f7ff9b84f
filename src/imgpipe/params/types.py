"""Value types that params and the files made from them share, so both are checked alike.

``ingest`` settings become the decode settings a trained model carries in its spec;
a tampered ``models/model.json`` is refused by the very limits params.yaml is held to.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

ImageSize = Annotated[int, Field(ge=8, le=1024)]  # pixels per side after decoding
Channels = Literal[1, 3]  # 1 = grayscale, 3 = RGB
ResizeMode = Literal["squash", "center_crop", "letterbox"]
# Larger images are skipped as decompression bombs; a gigapixel is far beyond any photo.
PixelLimit = Annotated[int, Field(ge=1, le=1_000_000_000)]
# numpy's generators take seeds below 2**32; a larger one fails only when a stage draws.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]

# Upper bounds for counts: far above any real use, far below what would run for years or
# fill memory (YAML integers have no limit of their own).
Epochs = Annotated[int, Field(ge=1, le=10_000)]
BatchSize = Annotated[int, Field(ge=1, le=65_536)]
Workers = Annotated[int, Field(ge=0, le=1024)]  # processes; 0 = every core where it says so
Width = Annotated[int, Field(ge=1, le=65_536)]  # filters, units: a layer's width


def finite_data(value: Any) -> Any:
    """Refuse NaN and infinity anywhere inside free-form data (lists and mappings of numbers):
    pydantic's ``allow_inf_nan=False`` sees only fields typed float."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:  # a loop, not recursion: params nested deep are refused elsewhere, not here
        where, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{where or 'the value'} is {item}; use a finite number")
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
    return value


FiniteData = Annotated[Any, AfterValidator(finite_data)]
